"""``make demo`` / ``python -m ovsnet.demo``: the whole job on the embedded synthetic videos, on the CPU.

1. generate synthetic DAVIS-layout videos (objects that deform, occlude each other, leave and re-enter);
2. train the ``demo`` experiment (tiny ResNet-18 OVS-Net from scratch, a fixed time budget);
3. segment the validation videos online in one pass and score them with the official-protocol metrics;
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


def train_stage(out: Path, minutes: float, extra: list[str]) -> Path:
    """Train the demo experiment for ``minutes``; returns the last checkpoint."""
    from ovsnet.training import train

    budget = time.strftime("%H:%M:%S", time.gmtime(max(minutes, 0.1) * 60))
    cfg = compose_config(
        "train.yaml",
        [
            "experiment=demo",
            *run_dir_overrides(out, "train"),
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
    ckpt = Path(metrics.get("ckpt_last") or out / "train/checkpoints/last.ckpt")
    if not ckpt.is_file():
        raise RuntimeError(f"training wrote no checkpoint (expected {ckpt})")
    return ckpt


def evaluate_stage(out: Path, ckpt: Path, extra: list[str]) -> dict:
    """Segment and score the synthetic validation videos with the trained checkpoint."""
    from ovsnet.evaluation import run_evaluation

    cfg = compose_config(
        "evaluate.yaml",
        [
            "data=synthetic",
            *run_dir_overrides(out, "evaluate"),
            f"ckpt_path={ckpt}",
            "device=cpu",
            "logger=csv",
            f"data.root={out}/data/synthetic_demo",
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


def show_results(summary: dict, per_object: pd.DataFrame | None) -> None:
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
    ckpt = train_stage(out, minutes, train_overrides)
    console.print(f"2/3 segmenting the validation videos with {ckpt.name} ...")
    summary = evaluate_stage(out, ckpt, eval_overrides)
    csv = out / "evaluate" / f"per-object_results-{summary['split']}.csv"
    per_object = pd.read_csv(csv) if csv.is_file() else None
    console.print("3/3 writing overlay videos ...")
    videos = write_videos(out, summary)
    show_results(summary, per_object)
    minutes_taken = (time.perf_counter() - start) / 60
    console.rule(f"done in {minutes_taken:.1f} min")
    console.print(f"checkpoint       {ckpt}")
    console.print(f"result masks     {summary['results_dir']}  (indexed PNGs, DAVIS results layout)")
    console.print(f"metrics          {out / 'evaluate'}  (summary.json, metrics.json, CSVs)")
    console.print(f"contact sheet    {out / 'evaluate' / 'overlays.png'}")
    console.print(f"overlay videos   {out / 'videos'}  ({len(videos)} mp4 + path timelines)")
    console.print(f"training logs    {out / 'train'}")
    return summary


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
