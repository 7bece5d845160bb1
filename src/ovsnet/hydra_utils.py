"""Hydra helpers shared by the entry points, the training run and the evaluation: compose a real config
outside ``@hydra.main``, keep a scripted run's outputs under one folder, instantiate a callbacks/logger group.

Below ``training``, ``evaluation`` and ``cli``, so composing a preset (``ovsnet-video --preset``) or a test
config does not import Lightning. Imports nothing from ``ovsnet`` but the schemas it registers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

__all__ = [
    "CONF_DIR",
    "compose_config",
    "instantiate_group",
    "progress_bar_overrides",
    "run_dir_overrides",
]

# conf/ of the source checkout (the package is installed editable, as the Makefile does)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# the default callbacks with tqdm's plain-text bar instead of rich's (see progress_bar_overrides)
_PLAIN_CALLBACKS = (
    "callbacks=[model_checkpoint,last_checkpoint,divergence_guard,lr_monitor,tqdm_progress_bar]"
)


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose a real entrypoint config as ``python train.py``/``evaluate.py`` would, outside ``@hydra.main``.

    ``${hydra:...}`` interpolations resolve as in a real run (the Hydra config is registered, then dropped).
    The typed-config schemas the group files extend are registered first (as the entrypoints do on import).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import ovsnet.inference.schema  # noqa: F401 - registers schema/inference/cascade
    import ovsnet.schemas  # noqa: F401 - registers the trainer, model and data schemas

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
    return [] if sys.stdout.isatty() else [_PLAIN_CALLBACKS]


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Every ``_target_`` entry of a callbacks/logger group (an empty or missing group gives [])."""
    import hydra

    if not group:
        return []
    return [
        hydra.utils.instantiate(node)
        for node in group.values()
        if isinstance(node, DictConfig) and "_target_" in node
    ]
