"""Training from a composed Hydra config: the body of ``train.py``, shared with the demo and the notebook.

Also the small runtime helpers every entrypoint needs (instantiating a callbacks/logger group, W&B offline
without an API key, closing W&B in ``finally`` so a failed run does not break a multirun).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

__all__ = [
    "CONF_DIR",
    "compose_config",
    "finish_wandb",
    "instantiate_group",
    "print_config",
    "progress_bar_overrides",
    "run_dir_overrides",
    "train",
    "use_wandb_offline_without_key",
]

log = logging.getLogger(__name__)

# conf/ of the source checkout (the package is installed editable, as the Makefile does)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose a real entrypoint config as ``python train.py``/``evaluate.py`` would, outside ``@hydra.main``.

    ``${hydra:...}`` interpolations resolve as in a real run (the Hydra config is registered, then dropped).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    GlobalHydra.instance().clear()
    return cfg


def run_dir_overrides(root: Path, stage: str) -> list[str]:
    """``paths.*`` overrides that keep a scripted run (demo, ablation) and all its outputs under ``root``."""
    return [
        f"paths.root_dir={root}",
        f"paths.data_dir={root}/data",
        f"paths.log_dir={root}/logs",
        f"paths.ckpt_dir={root}/checkpoints",
        f"paths.output_dir={root}/{stage}",
    ]


def progress_bar_overrides() -> list[str]:
    """Rich's bar draws on a terminal only; a log file or CI gets tqdm's plain-text bar instead."""
    return [] if sys.stdout.isatty() else ["callbacks=[model_checkpoint,lr_monitor,tqdm_progress_bar]"]


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Every ``_target_`` entry of a callbacks/logger group (an empty or missing group gives [])."""
    if not group:
        return []
    return [
        hydra.utils.instantiate(node)
        for node in group.values()
        if isinstance(node, DictConfig) and "_target_" in node
    ]


def use_wandb_offline_without_key() -> None:
    """W&B runs offline (kept under the output dir, syncable later) unless an API key is configured."""
    if not os.environ.get("WANDB_API_KEY"):
        os.environ.setdefault("WANDB_MODE", "offline")


def finish_wandb() -> None:
    """Close a W&B run if one is open (called in ``finally``: a crashed run must not poison a multirun)."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()


@rank_zero_only
def print_config(cfg: DictConfig) -> None:
    """Show the composed config as a rich tree."""
    import rich
    import rich.syntax
    import rich.tree

    tree = rich.tree.Tree("CONFIG", guide_style="dim")
    for key, value in cfg.items():
        branch = tree.add(str(key))
        text = OmegaConf.to_yaml(value, resolve=False) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and optionally test) from a composed config; returns the logged metrics.

    ``metrics["ckpt_last"]``/``["ckpt_best"]`` hold the checkpoint paths when checkpointing is on.
    """
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    if cfg.get("print_config"):
        print_config(cfg)
    use_wandb_offline_without_key()
    # plain containers (not OmegaConf) in hyper-parameters: checkpoints then load with weights_only=True
    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data, _convert_="all")
    module: pl.LightningModule = hydra.utils.instantiate(cfg.model, _convert_="all")
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics: dict[str, Any] = {k: float(v) for k, v in trainer.callback_metrics.items()}
    ckpt = trainer.checkpoint_callback
    if cfg.get("test"):
        best = ckpt.best_model_path if ckpt else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    if ckpt is not None:
        metrics["ckpt_last"] = getattr(ckpt, "last_model_path", "") or ""
        metrics["ckpt_best"] = ckpt.best_model_path or ""
    return metrics
