"""Train OVS-Net: ``python train.py [experiment=demo] [group=option ...] [key=value ...]``.

Thin Hydra entrypoint: compose the config, seed, instantiate datamodule/module/callbacks/loggers/trainer,
fit, optionally test, and return ``cfg.optimized_metric`` for hyper-parameter sweepers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

log = logging.getLogger("ovsnet.train")


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    """Every ``_target_`` entry of a callbacks/logger group (an empty or missing group gives [])."""
    if not group:
        return []
    return [hydra.utils.instantiate(node) for node in group.values() if isinstance(node, DictConfig)
            and "_target_" in node]


@rank_zero_only
def print_config(cfg: DictConfig) -> None:
    """Show the composed config as a rich tree and save it next to the run's outputs."""
    import rich
    import rich.syntax
    import rich.tree

    tree = rich.tree.Tree("CONFIG", guide_style="dim")
    for key, value in cfg.items():
        branch = tree.add(str(key))
        text = OmegaConf.to_yaml(value, resolve=False) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)


def _use_wandb_offline_without_key() -> None:
    """W&B runs offline (kept under the output dir, syncable later) unless an API key is configured."""
    if not os.environ.get("WANDB_API_KEY"):
        os.environ.setdefault("WANDB_MODE", "offline")


def _finish_wandb() -> None:
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and optionally test) from a composed config; returns the logged metrics."""
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    if cfg.get("print_config"):
        print_config(cfg)
    _use_wandb_offline_without_key()
    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    module: pl.LightningModule = hydra.utils.instantiate(cfg.model)
    callbacks = _instantiate_group(cfg.get("callbacks"))
    loggers = _instantiate_group(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test"):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    finally:
        _finish_wandb()
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise KeyError(f"optimized_metric {name!r} was not logged; logged metrics: {sorted(metrics)}")
    return metrics[name]


if __name__ == "__main__":
    main()
