"""Training throughput of the ``demo`` experiment: steps/s, images/s and the data-loading share of a step.

Composes ``conf/train.yaml`` with ``experiment=demo`` exactly as ``python train.py experiment=demo`` does
(same model, data module, augmentation, batch of V videos x M/V frames), generates the demo's synthetic
videos in a temporary folder, and fits for ``--steps`` optimiser steps (no validation, no checkpoints) while
a callback times every step. The data-loading time of a step is the wall time between the end of one
training batch and the start of the next: the main process waiting on the DataLoader (and Lightning's own
bookkeeping, so the share is an upper bound). The first ``--warmup`` steps (worker start-up, allocator
warm-up) are left out. It runs once with the config's workers (the default) and once with ``num_workers=0``
(every sample loaded in the training process) so the effect of the workers is measured side by side.
Target: data loading below 10% of the step time with the default workers.

    python bench/train_throughput.py                 # 60 measured steps per setting
    python bench/train_throughput.py --quick         # a few steps: proves the script runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pytorch_lightning as pl
import torch

from ovsnet.hydra_utils import compose_config, instantiate_group

TARGET_DATA_SHARE = 0.10


class StepTimer(pl.Callback):
    """Wall time of each training step, split into waiting for the batch and computing on it."""

    def __init__(self) -> None:
        self.wait: list[float] = []
        self.compute: list[float] = []
        self.images: list[int] = []
        self._last_end: float | None = None
        self._start = 0.0

    def on_train_batch_start(
        self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._start = time.perf_counter()
        if self._last_end is not None:
            self.wait.append(self._start - self._last_end)
            self.images.append(len(batch[0]))

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self._last_end is not None:
            self.compute.append(now - self._start)
        self._last_end = now

    def summary(self, warmup: int) -> dict[str, float]:
        wait = np.asarray(self.wait[warmup:])
        compute = np.asarray(self.compute[warmup:])
        images = np.asarray(self.images[warmup:])
        step = wait + compute
        total = float(step.sum())
        return {
            "measured_steps": len(step),
            "steps_per_s": round(len(step) / total, 3),
            "images_per_s": round(float(images.sum()) / total, 2),
            "images_per_step": round(float(images.mean()), 2),
            "step_ms_mean": round(1000 * float(step.mean()), 1),
            "step_ms_p95": round(1000 * float(np.percentile(step, 95)), 1),
            "data_ms_mean": round(1000 * float(wait.mean()), 2),
            "data_share": round(float(wait.sum()) / total, 4),
        }


def measure(
    data_root: Path, work: Path, steps: int, warmup: int, workers: int | None, extra: list[str]
) -> dict[str, Any]:
    """Fit the demo experiment for ``warmup + steps + 1`` steps and time them (``workers=None``: the config's)."""
    overrides = [
        "experiment=demo",
        f"paths.root_dir={work}",
        f"paths.data_dir={work}/data",
        f"paths.log_dir={work}/logs",
        f"paths.ckpt_dir={work}/checkpoints",
        f"paths.output_dir={work}/out",
        f"data.root={data_root}",
        f"trainer.max_steps={warmup + steps + 1}",
        "trainer.max_time=null",
        "trainer.max_epochs=1000",
        "trainer.limit_val_batches=0",
        "+trainer.enable_checkpointing=false",
        "trainer.enable_progress_bar=false",
        "callbacks=none",
        "print_config=false",
    ]
    if workers is not None:
        overrides.append(f"data.num_workers={workers}")
        if workers == 0:
            overrides.append("data.persistent_workers=false")
    cfg = compose_config("train.yaml", [*overrides, *extra])
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    module = hydra.utils.instantiate(cfg.model, _convert_="all")
    loggers = instantiate_group(cfg.get("logger"))  # the demo's CSV logger: its cost is part of a real step
    timer = StepTimer()
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[timer], logger=loggers or False)
    trainer.fit(module, datamodule=datamodule)
    return {"num_workers": int(cfg.data.num_workers), **timer.summary(warmup)}


def markdown(result: dict[str, Any]) -> str:
    rows = []
    for name, r in result["settings"].items():
        rows.append(
            f"| {name} (num_workers={r['num_workers']}) | {r['steps_per_s']:.2f} | {r['images_per_s']:.1f} "
            f"| {r['step_ms_mean']:.0f} | {r['data_ms_mean']:.1f} | {100 * r['data_share']:.1f}% |"
        )
    return "\n".join(
        [
            f"demo config: {result['images_per_step']:.0f} frames per step at {result['image_size']}, "
            f"{result['measured_steps']} measured steps after {result['warmup']} warm-up, torch threads "
            f"{result['torch_threads']}",
            "",
            "| setting | steps/s | images/s | step ms | data ms | data share |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=60, help="measured steps per setting")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out at the start")
    parser.add_argument("--quick", action="store_true", help="4 measured steps: proves the script runs")
    parser.add_argument("--out", type=Path, default=None, help="write the figures to this JSON file")
    parser.add_argument("overrides", nargs="*", help="extra train.yaml overrides (key=value)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.warmup = 4, 1
    os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory(prefix="ovsnet_train_bench_") as tmp:
        work = Path(tmp)
        data_root = work / "data" / "synthetic_demo"  # generated by the data module's prepare_data
        settings = {
            "default workers": measure(data_root, work / "a", args.steps, args.warmup, None, args.overrides),
            "no workers": measure(data_root, work / "b", args.steps, args.warmup, 0, args.overrides),
        }
    cfg = compose_config("train.yaml", ["experiment=demo", *args.overrides])
    default = settings["default workers"]
    result = {
        "settings": settings,
        "image_size": f"{cfg.model.model_config.min_size}x{cfg.model.model_config.max_size}",
        "images_per_step": default["images_per_step"],
        "measured_steps": default["measured_steps"],
        "warmup": args.warmup,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "target_data_share": TARGET_DATA_SHARE,
        "meets_target": bool(default["data_share"] < TARGET_DATA_SHARE),
    }
    result["markdown"] = markdown(result)
    print(result["markdown"])
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
