"""``make demo`` / ``python -m ovsnet.demo``: the whole job on the embedded synthetic videos, on the CPU.

1. generate photo-realistic DAVIS-layout videos (real photographs as backgrounds and textures, articulated
   objects that occlude each other, leave and re-enter; validation photos never seen in training);
2. train the ``demo_photo`` experiment (OVS-Net on an ImageNet-pretrained EfficientNet-Lite0-FPN, a fixed time
   budget) in the paper's two stages: Mask R-CNN + Re-ID, then + MGA from that checkpoint
   (``--experiment demo``: the toy videos and a tiny ResNet-18 from scratch);
3. segment the validation videos online in one pass and score them with the official-protocol metrics (and
   again with MGA, with Re-ID and with the whole network switched off, to show what each adds), beside the
   model-free baselines (copy the first mask; propagate it with optical flow) on the same videos;
4. print the J&F table with fps and per-path counts; write overlay videos, path timelines and a contact sheet.

Everything goes under ``--out`` (default ``demo_output/``); the last lines say where.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from ovsnet.cli import stages
from ovsnet.hydra_utils import CONF_DIR

__all__ = ["main", "run_demo"]

log = logging.getLogger(__name__)
# a log file or CI gets a table wide enough for every column (rich assumes 80 columns off a terminal)
console = Console(width=None if sys.stdout.isatty() else 150)


# The paper's chain (4.1) in miniature: Mask R-CNN + Re-ID first, then the whole network with MGA from that
# checkpoint. MGA learns from the detector's masks, which are noise for the first minutes of a from-scratch
# run; training it from the start spends a third of every step on a head with nothing useful to refine.
STAGES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("train_detector", 0.7, ("model.model_config.mga=false",)),
    ("train_mga", 0.3, ("model.warmup_steps=10",)),
)


# the demo experiments: conf/experiment/<name>.yaml -> (its data group, its data folder under <out>/data)
EXPERIMENTS: dict[str, tuple[str, str]] = {
    "demo": ("synthetic", "synthetic_demo"),
    "demo_photo": ("synthetic_photo", "synthetic_photo"),
}


def _experiment(name: str) -> tuple[str, str]:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown demo experiment {name!r}; choose one of {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name]


# what `make demo` trains and scores
DEFAULT_EXPERIMENT = "demo_photo"


def train_stages(out: Path, minutes: float, extra: list[str], experiment: str = DEFAULT_EXPERIMENT) -> Path:
    """Run :data:`STAGES` in order (:func:`ovsnet.cli.stages.train_stage`, each its share of ``minutes``),
    each from the previous one's checkpoint; returns the final checkpoint."""
    ckpt: Path | None = None
    for index, (stage, share, overrides) in enumerate(STAGES, start=1):
        init = [f"model.init_checkpoint={ckpt}"] if ckpt is not None else []
        console.print(
            f"  stage {index}/{len(STAGES)} {stage}: {share * minutes:.1f} min ({' '.join(overrides)})"
        )
        budget = stages.max_time_override(share * minutes)
        ckpt, _ = stages.train_stage(out, stage, [budget, *overrides, *init, *extra], experiment)
    assert ckpt is not None
    return ckpt


# The same checkpoint scored with MGA switched off (the Mask R-CNN mask is the output), with the Re-ID path
# switched off, and with no network at all: what each adds (Table 6) and what training bought, at the cost of
# one more pass over the videos each.
# name -> (output folder, evaluate.py overrides)
ABLATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "without MGA": ("evaluate_no_mga", ("inference=no_mga", "media.enabled=false")),
    "without Re-ID": ("evaluate_no_reid", ("inference=no_reid", "media.enabled=false")),
    # the same inference without the network (flow + appearance memory): what training bought
    "no network": ("evaluate_no_network", ("network=false", "media.enabled=false")),
}
SCORE_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


def data_overrides(out: Path, experiment: str = DEFAULT_EXPERIMENT) -> list[str]:
    """evaluate.yaml overrides that score the demo's own validation videos (baselines shared by every row)."""
    data_group, folder = _experiment(experiment)
    return [f"data={data_group}", f"data.root={out}/data/{folder}", f"baselines_dir={out}/baselines"]


def write_videos(out: Path, summary: dict, experiment: str = DEFAULT_EXPERIMENT) -> list[Path]:
    """Overlay video and path timeline per validation sequence (from the written results)."""
    from ovsnet.data.io import read_label_map
    from ovsnet.data.loading import load_sequences
    from ovsnet.viz import path_timeline, write_overlay_video

    results = Path(summary["results_dir"])
    written = []
    for seq in load_sequences(out / "data" / _experiment(experiment)[1], summary["split"]):
        folder = results / seq.name
        labels = (read_label_map(folder / f"{name}.png") for name in seq.frame_names)
        video = out / "videos" / f"{seq.name}.mp4"
        write_overlay_video(seq.frames(), labels, video, fps=8)
        written.append(video)
        marker = folder / ".done"
        if marker.is_file():
            decisions = [
                {int(k): v for k, v in d.items()} for d in json.loads(marker.read_text())["decisions"]
            ]
            if decisions:
                path_timeline(decisions, out / "videos" / f"{seq.name}_paths.png", title=seq.name)
    return written


def show_results(summary: dict, per_object: pd.DataFrame | None, ablations: dict[str, dict]) -> None:
    """The J&F table: OVS-Net, its ablations and the model-free baselines on the same videos."""
    table = Table(title="DAVIS metrics on the synthetic validation videos (official protocol)")
    table.add_column("method")
    for column in SCORE_COLUMNS:
        table.add_column(column, justify="right")
    rows = {"OVS-Net": summary.get("metrics") or {}}
    rows.update(
        {
            (f"OVS-Net {name}" if name.startswith("without") else f"{name} (flow + appearance memory)"): (
                s.get("metrics") or {}
            )
            for name, s in ablations.items()
        }
    )
    labels = stages.BASELINE_LABELS
    rows.update({labels.get(k, k): v for k, v in (summary.get("baselines") or {}).items()})
    for name, metrics in rows.items():
        table.add_row(name, *(f"{metrics.get(c, float('nan')):.3f}" for c in SCORE_COLUMNS))
    console.print(table)
    if per_object is not None and len(per_object):
        objects = Table(title="per object (OVS-Net)")
        for column in per_object.columns[:3]:
            objects.add_column(str(column), justify="right")
        for row in per_object.itertuples(index=False):
            objects.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row[:3]))
        console.print(objects)
    flow = (summary.get("baselines") or {}).get("flow", {}).get("J&F-Mean")
    if flow is not None:
        gain = (summary.get("metrics") or {}).get("J&F-Mean", float("nan")) - flow
        console.print(f"OVS-Net minus flow propagation: [bold]{gain:+.3f}[/] J&F")
    counts = summary.get("path_counts", {})
    console.print(
        f"[bold]{summary.get('fps', 0):.1f} fps[/] over {summary.get('num_frames', 0)} frames; "
        f"paths taken (object-frames): " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )


def run_demo(
    out: Path,
    minutes: float,
    train_overrides: list[str],
    eval_overrides: list[str],
    experiment: str = DEFAULT_EXPERIMENT,
) -> dict:
    start = time.perf_counter()
    out = out.resolve()
    os.environ.setdefault("PROJECT_ROOT", str(CONF_DIR.parent))
    console.rule("[bold]ovsnet demo[/]: synthetic videos -> CPU training -> one-pass inference -> J&F")
    _experiment(experiment)
    console.print(
        f"1/3 training experiment={experiment} for {minutes:g} min (data generated on first use) ..."
    )
    ckpt = train_stages(out, minutes, train_overrides, experiment)
    console.print(
        f"2/3 segmenting the validation videos with {ckpt.name} (then without MGA, without Re-ID, without the "
        "network, and the model-free baselines) ..."
    )
    data = data_overrides(out, experiment)
    summary = stages.evaluate_stage(out, "evaluate", ckpt, [*data, *eval_overrides])
    ablations = {
        name: stages.evaluate_stage(out, folder, ckpt, [*data, *overrides, *eval_overrides])
        for name, (folder, overrides) in ABLATIONS.items()
    }
    csv = out / "evaluate" / f"per-object_results-{summary['split']}.csv"
    per_object = pd.read_csv(csv) if csv.is_file() else None
    console.print("3/3 writing overlay videos ...")
    videos = write_videos(out, summary, experiment)
    show_results(summary, per_object, ablations)
    minutes_taken = (time.perf_counter() - start) / 60
    console.rule(f"done in {minutes_taken:.1f} min")
    console.print(f"checkpoint       {ckpt}")
    console.print(f"result masks     {summary['results_dir']}  (indexed PNGs, DAVIS results layout)")
    console.print(f"metrics          {out / 'evaluate'}  (summary.json, metrics.json, CSVs)")
    console.print(f"contact sheet    {out / 'evaluate' / 'overlays.png'}")
    console.print(f"overlay videos   {out / 'videos'}  ({len(videos)} mp4 + path timelines)")
    console.print(f"training logs    {', '.join(str(out / stage) for stage, _, _ in STAGES)}")
    data_group, folder = _experiment(experiment)
    console.print(
        "same numbers     python evaluate.py "
        f"data={data_group} data.root={out / 'data' / folder} ckpt_path={ckpt}  (settings come from the checkpoint)"
    )
    return {
        **summary,
        "without_mga": ablations["without MGA"].get("metrics") or {},
        "without_reid": ablations["without Re-ID"].get("metrics") or {},
        "no_network": ablations["no network"].get("metrics") or {},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("demo_output"))
    parser.add_argument("--minutes", type=float, default=9.0, help="training time budget")
    parser.add_argument(
        "--experiment",
        default=DEFAULT_EXPERIMENT,
        choices=sorted(EXPERIMENTS),
        help="demo: toy videos, ResNet-18 from scratch; demo_photo: photo videos, pretrained EfficientNet-Lite0",
    )
    stages.add_override_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return run_demo(args.out, args.minutes, args.train, args.eval, args.experiment)


if __name__ == "__main__":
    main()
