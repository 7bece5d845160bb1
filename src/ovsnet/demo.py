"""``make demo`` / ``python -m ovsnet.demo``: the whole job on the embedded synthetic videos, on the CPU.

1. generate synthetic DAVIS-layout videos (objects that deform, occlude each other, leave and re-enter);
2. train the ``demo`` experiment (tiny ResNet-18 OVS-Net from scratch, a fixed time budget) in the paper's two
   stages: Mask R-CNN + Re-ID, then + MGA from that checkpoint;
3. segment the validation videos online in one pass and score them with the official-protocol metrics (and
   once more with MGA switched off, to show what it adds);
4. print the J&F table with fps and per-path counts; write overlay videos, path timelines and a contact sheet.

Everything goes under ``--out`` (default ``demo_output/``); the last lines say where.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from ovsnet.training import CONF_DIR, compose_config, finish_wandb, progress_bar_overrides, run_dir_overrides

__all__ = ["main", "run_demo"]

log = logging.getLogger(__name__)
console = Console()


# The paper's chain (4.1) in miniature: Mask R-CNN + Re-ID first, then the whole network with MGA from that
# checkpoint. MGA learns from the detector's masks, which are noise for the first minutes of a from-scratch
# run; training it from the start spends a third of every step on a head with nothing useful to refine.
STAGES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("train_detector", 0.7, ("model.model_config.mga=false",)),
    ("train_mga", 0.3, ("model.warmup_steps=10",)),
)

# ρ_reid for this small model's embedding: the paper's 2.3 sits at its different-object median distance;
# docs/ablations.md measures the scale on separately generated videos and finds 1.0-1.5 best.
DEMO_EVAL_OVERRIDES: tuple[str, ...] = ("inference.rho_reid=1.5",)


def train_stage(out: Path, stage: str, minutes: float, extra: list[str]) -> Path:
    """Train the demo experiment for ``minutes`` under ``out/stage``; returns the last checkpoint."""
    from ovsnet.training import train

    budget = time.strftime("%H:%M:%S", time.gmtime(max(minutes, 0.05) * 60))
    cfg = compose_config(
        "train.yaml",
        [
            "experiment=demo",
            *run_dir_overrides(out, stage),
            f"trainer.max_time=00:{budget}",
            "print_config=false",
            *progress_bar_overrides(),
            *extra,
        ],
    )
    try:
        metrics = train(cfg)
    finally:
        finish_wandb()
    ckpt = Path(metrics.get("ckpt_last") or out / stage / "checkpoints/last.ckpt")
    if not ckpt.is_file():
        raise RuntimeError(f"{stage} wrote no checkpoint (expected {ckpt})")
    return ckpt


def train_stages(out: Path, minutes: float, extra: list[str]) -> Path:
    """Run :data:`STAGES` in order, each from the previous one's checkpoint; returns the final checkpoint."""
    ckpt: Path | None = None
    for index, (stage, share, overrides) in enumerate(STAGES, start=1):
        init = [f"model.init_checkpoint={ckpt}"] if ckpt is not None else []
        console.print(
            f"  stage {index}/{len(STAGES)} {stage}: {share * minutes:.1f} min ({' '.join(overrides)})"
        )
        ckpt = train_stage(out, stage, share * minutes, [*overrides, *init, *extra])
    assert ckpt is not None
    return ckpt


# The same checkpoint scored with MGA switched off (the Mask R-CNN mask is the output): shows what MGA adds
# after the demo's short second stage (Table 6's last step), at the cost of one more pass over the videos.
ABLATION_OVERRIDES: tuple[str, ...] = ("inference=no_mga", "media.enabled=false")


def evaluate_stage(out: Path, ckpt: Path, extra: list[str], stage: str = "evaluate") -> dict:
    """Segment and score the synthetic validation videos with the trained checkpoint."""
    from ovsnet.evaluation import run_evaluation

    cfg = compose_config(
        "evaluate.yaml",
        [
            "data=synthetic",
            *run_dir_overrides(out, stage),
            f"ckpt_path={ckpt}",
            "device=cpu",
            "logger=csv",
            f"data.root={out}/data/synthetic_demo",
            *DEMO_EVAL_OVERRIDES,
            *extra,
        ],
    )
    return run_evaluation(cfg, loggers=[])


def write_videos(out: Path, summary: dict) -> list[Path]:
    """Overlay video and path timeline per validation sequence (from the written results)."""
    from ovsnet.data.davis import load_davis
    from ovsnet.data.io import read_label_map
    from ovsnet.viz import path_timeline, write_overlay_video

    results = Path(summary["results_dir"])
    written = []
    for seq in load_davis(out / "data/synthetic_demo", split=summary["split"]):
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


def show_results(summary: dict, per_object: pd.DataFrame | None, without_mga: dict | None = None) -> None:
    metrics = summary.get("metrics") or {}
    table = Table(title="DAVIS metrics on the synthetic validation videos (official protocol)")
    for column in ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"):
        table.add_column(column, justify="right")
    table.add_row(
        *(
            f"{metrics.get(c, float('nan')):.3f}"
            for c in ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
        )
    )
    console.print(table)
    if per_object is not None and len(per_object):
        objects = Table(title="per object")
        for column in per_object.columns[:3]:
            objects.add_column(str(column), justify="right")
        for row in per_object.itertuples(index=False):
            objects.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row[:3]))
        console.print(objects)
    if without_mga is not None:
        metrics_off = without_mga.get("metrics") or {}
        console.print(
            "same checkpoint without MGA (inference=no_mga): "
            + ", ".join(
                f"{c} {metrics_off.get(c, float('nan')):.3f}" for c in ("J&F-Mean", "J-Mean", "F-Mean")
            )
        )
    counts = summary.get("path_counts", {})
    console.print(
        f"[bold]{summary.get('fps', 0):.1f} fps[/] over {summary.get('num_frames', 0)} frames; "
        f"paths taken (object-frames): " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )


def run_demo(out: Path, minutes: float, train_overrides: list[str], eval_overrides: list[str]) -> dict:
    start = time.perf_counter()
    out = out.resolve()
    os.environ.setdefault("PROJECT_ROOT", str(CONF_DIR.parent))
    console.rule("[bold]ovsnet demo[/]: synthetic videos -> CPU training -> one-pass inference -> J&F")
    console.print(f"1/3 training the demo experiment for {minutes:g} min (data generated on first use) ...")
    ckpt = train_stages(out, minutes, train_overrides)
    console.print(f"2/3 segmenting the validation videos with {ckpt.name} (then again without MGA) ...")
    summary = evaluate_stage(out, ckpt, eval_overrides)
    without_mga = evaluate_stage(out, ckpt, [*ABLATION_OVERRIDES, *eval_overrides], "evaluate_no_mga")
    csv = out / "evaluate" / f"per-object_results-{summary['split']}.csv"
    per_object = pd.read_csv(csv) if csv.is_file() else None
    console.print("3/3 writing overlay videos ...")
    videos = write_videos(out, summary)
    show_results(summary, per_object, without_mga)
    minutes_taken = (time.perf_counter() - start) / 60
    console.rule(f"done in {minutes_taken:.1f} min")
    console.print(f"checkpoint       {ckpt}")
    console.print(f"result masks     {summary['results_dir']}  (indexed PNGs, DAVIS results layout)")
    console.print(f"metrics          {out / 'evaluate'}  (summary.json, metrics.json, CSVs)")
    console.print(f"contact sheet    {out / 'evaluate' / 'overlays.png'}")
    console.print(f"overlay videos   {out / 'videos'}  ({len(videos)} mp4 + path timelines)")
    console.print(f"training logs    {', '.join(str(out / stage) for stage, _, _ in STAGES)}")
    return {**summary, "without_mga": without_mga.get("metrics") or {}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("demo_output"))
    parser.add_argument("--minutes", type=float, default=9.0, help="training time budget")
    parser.add_argument(
        "--train", nargs="*", default=[], metavar="KEY=VALUE", help="extra train.yaml overrides"
    )
    parser.add_argument(
        "--eval", nargs="*", default=[], metavar="KEY=VALUE", help="extra evaluate.yaml overrides"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return run_demo(args.out, args.minutes, args.train, args.eval)


if __name__ == "__main__":
    main()
