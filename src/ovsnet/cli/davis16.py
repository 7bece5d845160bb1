"""``make davis16`` / ``python -m ovsnet.cli.davis16``: the paper's DAVIS 2016 protocol on a CPU, then its score.

1. train ``experiment=davis16`` in three stages chained by checkpoint, each budgeted by time: Mask R-CNN alone,
   then + Re-ID and MGA, then per-dataset fine-tuning on the first frames (and their Lucid Data Dreaming
   samples) of the videos to be segmented (``--adapt-to``: a DAVIS-layout folder whose ``val`` split lists them;
   only frame 0's annotation of each is read; default: the held-out training videos);
2. measure ρ_reid for the trained embeddings on training videos (:mod:`ovsnet.inference.calibration`) and
   store it in the final checkpoint ``<out>/davis16.ckpt``;
3. segment the held-out DAVIS 2016 training videos (named in ``conf/experiment/davis16.yaml``, never trained
   on) with the final model, again without MGA and without Re-ID, and with **no network** (flow and the
   appearance memory alone), beside copying the first mask and flow propagation;
4. print the table (J&F, paths, lost-while-visible object-frames), the final checkpoint and the
   ``evaluate.py`` command that reproduces the first row.

Finished stages are kept (``<out>/<stage>/.done``): running the same command again resumes after the last one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ovsnet.cli import stages
from ovsnet.data.davis import detect_davis_layout
from ovsnet.data.io import atomic_path
from ovsnet.hydra_utils import CONF_DIR, compose_config

__all__ = ["EVALUATIONS", "STAGES", "main", "run_davis16"]

log = logging.getLogger(__name__)
console = Console(width=None if sys.stdout.isatty() else 160)

EXPERIMENT = "davis16"
DEFAULT_DAVIS = CONF_DIR.parent.parent / "shared" / "data" / "davis2016-train"

# (stage, share of the time budget, overrides): the paper's chain (4.1 and 4.2)
STAGES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("detector", 0.5, ("model.model_config.reid=false", "model.model_config.mga=false")),
    ("reid_mga", 0.25, ("model.warmup_steps=10",)),
    ("adapt", 0.25, ("model.warmup_steps=10", "data.per_dataset_finetune=true")),
)

# rows of the table: (label, stage folder, evaluate.py overrides)
EVALUATIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("OVS-Net (trained here)", "evaluate", ()),
    ("OVS-Net without MGA", "evaluate_no_mga", ("inference.mga.enabled=false",)),
    ("OVS-Net without Re-ID", "evaluate_no_reid", ("inference.reid.enabled=false",)),
    ("no network (flow + appearance memory)", "evaluate_no_network", ("network=false",)),
)
COLUMNS = ("J&F-Mean", "J-Mean", "F-Mean", "J-Recall", "J-Decay")


def holdout_videos(davis: Path, train_overrides: Sequence[str] = ()) -> list[str]:
    """The held-out videos of ``conf/experiment/davis16.yaml`` (or ``data.holdout=`` among the training
    overrides): one source for what training leaves out and what is scored."""
    cfg = compose_config("train.yaml", [f"experiment={EXPERIMENT}", f"data.root={davis}", *train_overrides])
    return [str(name) for name in cfg.data.holdout]


def data_overrides(davis: Path, holdout: Sequence[str], resolution: str | None = None) -> list[str]:
    """The held-out videos of DAVIS 2016 train (at ``resolution``, default: the one the folder has), as
    ``evaluate.py`` overrides."""
    resolution = resolution or detect_davis_layout(davis, "train")[1]
    return [
        "data=davis16",
        f"data.root={davis}",
        f"data.resolution={resolution}",
        "split=train",
        f"sequences=[{','.join(holdout)}]",
    ]


def adapt_to_overrides(adapt_to: Path) -> list[str]:
    """``evaluate.py`` overrides that segment the ``val`` videos of a folder adapted to (layout detected)."""
    year, resolution = detect_davis_layout(adapt_to, "val")
    return [
        f"data=davis{str(year)[2:]}",
        f"data.root={adapt_to}",
        f"data.resolution={resolution}",
        "split=val",
    ]


def _stage_done(out: Path, stage: str) -> Path | None:
    marker = out / stage / ".done"
    if not marker.is_file():
        return None
    ckpt = Path(json.loads(marker.read_text())["checkpoint"])
    return ckpt if ckpt.is_file() else None


def train_stages(
    out: Path, davis: Path, resolution: str, minutes: float, adapt_to: Path | None, extra: Sequence[str]
) -> tuple[Path, dict[str, float]]:
    """Run :data:`STAGES` in order (each from the previous one's checkpoint, finished ones skipped); returns
    the final checkpoint and each stage's minutes."""
    ckpt: Path | None = None
    spent: dict[str, float] = {}
    common = [f"data.root={davis}", f"data.resolution={resolution}"]
    if adapt_to is not None:
        common.append(f"data.adapt_root={adapt_to}")
    for index, (stage, share, overrides) in enumerate(STAGES, start=1):
        done = _stage_done(out, stage)
        if done is not None:
            console.print(f"  stage {index}/{len(STAGES)} {stage}: done before ({done})")
            ckpt = done
            continue
        init = [f"model.init_checkpoint={ckpt}"] if ckpt is not None else []
        console.print(
            f"  stage {index}/{len(STAGES)} {stage}: {share * minutes:.1f} min ({' '.join(overrides)})"
        )
        start = time.perf_counter()
        ckpt, _ = stages.train_stage(
            out,
            stage,
            [stages.max_time_override(share * minutes), *common, *overrides, *init, *extra],
            EXPERIMENT,
        )
        spent[stage] = (time.perf_counter() - start) / 60
        with atomic_path(out / stage / ".done") as tmp:
            tmp.write_text(json.dumps({"checkpoint": str(ckpt), "minutes": spent[stage]}))
    assert ckpt is not None
    return ckpt, spent


def calibrate(out: Path, davis: Path, ckpt: Path, holdout: Sequence[str], resolution: str) -> Path:
    """ρ_reid measured on training videos (every third of those trained on; never the held-out ones) and
    written with the weights into ``<out>/davis16.ckpt``, the final model; ``calibration.json`` keeps the
    evidence. Done once: a later run reuses the file while it is newer than ``ckpt``."""
    from ovsnet.data.davis import load_davis
    from ovsnet.inference.calibration import calibrate_rho_reid, reid_distances
    from ovsnet.inference.settings import with_inference_settings
    from ovsnet.models.loading import load_model
    from ovsnet.utils import write_json_atomic

    final = out / f"{EXPERIMENT}.ckpt"
    if final.is_file() and final.stat().st_mtime_ns >= ckpt.stat().st_mtime_ns:
        return final
    videos = [s for s in load_davis(davis, 2016, "train", resolution) if s.name not in set(holdout)][::3]
    positives, negatives = reid_distances(load_model(ckpt), videos)
    if not len(positives):  # a detector that never finds the objects: nothing to measure
        console.print(
            "  rho_reid not calibrated: the detector found no training object; the stored value stays"
        )
        write_json_atomic(out / "calibration.json", {"rho_reid": None, "videos": [v.name for v in videos]})
        return with_inference_settings(ckpt, final, {})
    result = calibrate_rho_reid(positives, negatives)
    console.print(
        f"  rho_reid {result.rho_reid:.3f} from {len(videos)} training videos ({result.positives} same-object and "
        f"{result.negatives} other distances; {result.true_positive_rate:.0%} of same-object distances below it, "
        f"{result.false_positive_rate:.0%} of others)"
    )
    write_json_atomic(out / "calibration.json", {**result.as_dict(), "videos": [v.name for v in videos]})
    return with_inference_settings(ckpt, final, {"reid.rho": round(result.rho_reid, 4)})


def evaluate_rows(
    out: Path, data: Sequence[str], ckpt: Path, extra: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Every row of :data:`EVALUATIONS` on the held-out videos (``data``: their evaluate.py overrides; one
    shared baselines folder)."""
    rows = {}
    for label, stage, overrides in EVALUATIONS:
        console.print(f"  {label} ...")
        rows[label] = stages.evaluate_stage(
            out,
            stage,
            ckpt,
            [*data, f"baselines_dir={out}/baselines", "media.enabled=false", *overrides, *extra],
        )
    return rows


def show_table(rows: dict[str, dict[str, Any]]) -> None:
    """J&F beside the baselines, with the paths each row took and the objects it lost while in view."""
    table = Table(title="DAVIS 2016: held-out training videos (never trained on), official metrics")
    table.add_column("method")
    for column in COLUMNS:
        table.add_column(column, justify="right")
    table.add_column("paths iou/reid/flow/absent", justify="right")
    table.add_column("lost while visible", justify="right")
    table.add_column("fps", justify="right")
    first = next(iter(rows.values()))
    for label, summary in rows.items():
        metrics = summary.get("metrics") or {}
        counts = summary.get("path_counts") or {}
        lost = summary.get("lost_while_visible") or {}
        table.add_row(
            label,
            *(f"{metrics.get(c, float('nan')):.3f}" for c in COLUMNS),
            "/".join(str(counts.get(p, 0)) for p in ("iou", "reid", "flow", "absent")),
            f"{lost.get('object_frames', 0)} of {lost.get('visible_object_frames', 0)}",
            f"{summary.get('fps', 0.0):.1f}",
        )
    for key, metrics in (first.get("baselines") or {}).items():
        table.add_row(
            stages.BASELINE_LABELS.get(key, key),
            *(f"{metrics.get(c, float('nan')):.3f}" for c in COLUMNS),
            "",
            "",
            "",
        )
    console.print(table)


def run_davis16(
    out: Path,
    davis: Path,
    minutes: float,
    adapt_to: Path | None = None,
    train_overrides: Sequence[str] = (),
    eval_overrides: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """Train, evaluate and print; returns the summaries of every row (by label)."""
    start = time.perf_counter()
    out, davis = out.resolve(), davis.resolve()
    adapt_to = adapt_to.resolve() if adapt_to is not None else None
    os.environ.setdefault("PROJECT_ROOT", str(CONF_DIR.parent))
    console.rule("[bold]ovsnet davis16[/]: DAVIS 2016 train -> three CPU stages -> held-out videos")
    target = adapt_to if adapt_to is not None else "the held-out training videos"
    console.print(f"1/3 training {EXPERIMENT} for {minutes:g} min on {davis} (adapting to {target}) ...")
    resolution = detect_davis_layout(davis, "train")[1]
    ckpt, spent = train_stages(out, davis, resolution, minutes, adapt_to, train_overrides)
    holdout = holdout_videos(davis, train_overrides)
    console.print("2/3 calibrating rho_reid on training videos ...")
    ckpt = calibrate(out, davis, ckpt, holdout, resolution)
    console.print(f"3/3 segmenting the held-out videos with {ckpt.name}, its ablations and no network ...")
    data = data_overrides(davis, holdout, resolution)
    rows = evaluate_rows(out, data, ckpt, eval_overrides)
    show_table(rows)
    best = rows[EVALUATIONS[0][0]]
    none = rows[EVALUATIONS[-1][0]]
    flow = (best.get("baselines") or {}).get("flow", {}).get("J&F-Mean", float("nan"))
    jf = (best.get("metrics") or {}).get("J&F-Mean", float("nan"))
    bare = (none.get("metrics") or {}).get("J&F-Mean", float("nan"))
    console.print(
        f"trained minus no network: [bold]{jf - bare:+.3f}[/] J&F; minus flow propagation: {jf - flow:+.3f}"
    )
    if spent:
        console.print("training minutes: " + ", ".join(f"{k} {v:.1f}" for k, v in spent.items()))
    console.rule(f"done in {(time.perf_counter() - start) / 60:.1f} min")
    console.print(f"results          {out}/evaluate*/ (summary.json, CSVs, result PNGs)")
    # commands and paths stay on one line each, whatever the terminal's width, so they can be copied
    # ([...] in a command is Hydra's list syntax, not rich markup)
    plain = {"soft_wrap": True, "markup": False, "highlight": False}
    console.print(f"reproduce        python evaluate.py {' '.join(data)} ckpt_path={ckpt}", **plain)
    if adapt_to is not None:
        command = f"python evaluate.py {' '.join(adapt_to_overrides(adapt_to))} ckpt_path={ckpt}"
        console.print(f"adapted videos   {command}", **plain)
    console.print(f"checkpoint {ckpt}", **plain)
    return rows


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--davis",
        type=Path,
        default=DEFAULT_DAVIS,
        help="DAVIS 2016 train root (JPEGImages/240p, Annotations/240p, ImageSets/2016/train.txt)",
    )
    parser.add_argument(
        "--adapt-to",
        type=Path,
        default=None,
        help="DAVIS-layout folder (2016 or 2017, 240p or 480p) whose val split lists the videos to segment; "
        "only the first frame's annotation of each is read (default: the held-out training videos)",
    )
    parser.add_argument("--out", type=Path, default=Path("davis16_output"))
    parser.add_argument("--minutes", type=float, default=60.0, help="training time budget, all stages")
    stages.add_override_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.davis.is_dir():
        parser.error(
            f"--davis {args.davis}: no such folder (DAVIS 2016 train root; see the README, 'Train on DAVIS')"
        )
    if args.adapt_to is not None and not args.adapt_to.is_dir():
        parser.error(f"--adapt-to {args.adapt_to}: no such folder")
    return run_davis16(args.out, args.davis, args.minutes, args.adapt_to, args.train, args.eval)


if __name__ == "__main__":
    main()
