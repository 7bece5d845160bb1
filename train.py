"""Train OVS-Net: ``python train.py [experiment=demo] [group=option ...] [key=value ...]``.

Thin Hydra entrypoint: compose the config and call :func:`ovsnet.training.train` (seed, instantiate
datamodule/module/callbacks/loggers/trainer, fit, optionally test); returns ``cfg.optimized_metric`` for
hyper-parameter sweepers. Unknown keys fail with Hydra's own message.
"""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    from ovsnet.training import finish_wandb, train

    try:
        metrics = train(cfg)
    finally:
        finish_wandb()
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise KeyError(f"optimized_metric {name!r} was not logged; logged metrics: {sorted(metrics)}")
    return metrics[name]


if __name__ == "__main__":
    main()
