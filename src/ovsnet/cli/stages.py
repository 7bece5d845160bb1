"""Scripted train-then-evaluate stages: the pipeline the demo and the ablation benchmark both run.

Each stage composes the real ``train.yaml`` / ``evaluate.yaml`` exactly as ``python train.py`` /
``python evaluate.py`` would, with every output under one root folder (``<root>/<stage>/``), so a scripted
run is reproducible from the command line with the same overrides.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ovsnet.hydra_utils import compose_config, progress_bar_overrides, run_dir_overrides
from ovsnet.wandb_utils import finish_wandb

__all__ = ["BASELINE_LABELS", "add_override_arguments", "evaluate_stage", "max_time_override", "train_stage"]

# how the model-free baselines of an evaluation summary are named in every printed table
BASELINE_LABELS = {"copy": "copy the first mask (no model)", "flow": "optical-flow propagation (no model)"}


def max_time_override(minutes: float) -> str:
    """``trainer.max_time`` for a stage budgeted by ``minutes`` (at least 3 s, so a tiny budget still runs)."""
    return f"trainer.max_time=00:{time.strftime('%H:%M:%S', time.gmtime(max(minutes, 0.05) * 60))}"


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """``--train`` / ``--eval``: extra train.yaml / evaluate.yaml overrides of a scripted run."""
    parser.add_argument(
        "--train", nargs="*", default=[], metavar="KEY=VALUE", help="extra train.yaml overrides"
    )
    parser.add_argument(
        "--eval", nargs="*", default=[], metavar="KEY=VALUE", help="extra evaluate.yaml overrides"
    )


def train_stage(
    root: Path, stage: str, overrides: Sequence[str], experiment: str = "demo"
) -> tuple[Path, dict[str, Any]]:
    """Train ``experiment`` with ``overrides`` under ``root/stage``; returns its last checkpoint and metrics."""
    from ovsnet.training import train

    cfg = compose_config(
        "train.yaml",
        [
            f"experiment={experiment}",
            *run_dir_overrides(root, stage),
            "print_config=false",
            *progress_bar_overrides(),
            *overrides,
        ],
    )
    try:
        metrics = train(cfg)
    finally:
        finish_wandb()
    ckpt = Path(metrics.get("ckpt_last") or root / stage / "checkpoints" / "last.ckpt")
    if not ckpt.is_file():
        raise RuntimeError(
            f"stage {stage} wrote no last checkpoint (expected {ckpt}; metrics: {sorted(metrics)})"
        )
    return ckpt, metrics


def evaluate_stage(root: Path, stage: str, ckpt: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """Segment and score the configured split with ``ckpt`` on the CPU under ``root/stage``; returns the
    evaluation summary (``summary.json``)."""
    from ovsnet.evaluation import run_evaluation

    cfg = compose_config(
        "evaluate.yaml",
        [*run_dir_overrides(root, stage), f"ckpt_path={ckpt}", "device=cpu", "logger=csv", *overrides],
    )
    return run_evaluation(cfg, loggers=[])
