"""Evaluate OVS-Net: ``python evaluate.py data=davis17 ckpt_path=... [inference=no_reid] [key=value ...]``.

Thin Hydra entrypoint: compose the config (``conf/inference`` typed by
:class:`ovsnet.inference.schema.InferenceConfig`, so a wrong value fails here naming its key), instantiate
the loggers, call :func:`ovsnet.evaluation.run_evaluation` (``task=dataset``) or
:func:`ovsnet.evaluation.run_video` (``task=video``), and return ``cfg.optimized_metric`` for sweepers.
Multiruns (``-m inference.reid.rho=2.1,2.2,...``) end with the sweep table and plot written by the
``hydra.callbacks.sweep_summary`` callback. Bad input (a missing or corrupt file, a wrong setting) is one
line naming it, exit code 2; Ctrl-C is one line, exit code 130 (``HYDRA_FULL_ERROR=1``: full tracebacks).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

import ovsnet.inference.schema  # noqa: F401 - registers the inference schema before Hydra composes
import ovsnet.schemas  # noqa: F401 - registers the trainer, model and data schemas

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

log = logging.getLogger("ovsnet.evaluate")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the configured task; returns its summary (``summary.json``)."""
    from ovsnet.data.io import DataError
    from ovsnet.evaluation import run_evaluation, run_video
    from ovsnet.hydra_utils import instantiate_group
    from ovsnet.wandb_utils import use_wandb_offline_without_key

    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    if cfg.get("print_config"):
        log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=False))
    if cfg.get("task", "dataset") == "video":
        return run_video(cfg)
    if cfg.get("task", "dataset") != "dataset":
        raise DataError(f"task must be 'dataset' or 'video', got {cfg.task!r}")
    use_wandb_offline_without_key()
    return run_evaluation(cfg, loggers=instantiate_group(cfg.get("logger")))


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate.yaml")
def main(cfg: DictConfig) -> float | None:
    from ovsnet.errors import one_line_errors
    from ovsnet.wandb_utils import finish_wandb

    resume = None
    if cfg.get("task", "dataset") == "dataset":
        resume = f"rerun it with hydra.run.dir={cfg.output_dir} to resume (finished sequences are kept)"
    with one_line_errors("evaluate.py", resume):
        try:
            summary = evaluate(cfg)
        finally:
            finish_wandb()
    name = cfg.get("optimized_metric")
    metrics = summary.get("metrics") or {}
    return float(metrics[name]) if name and name in metrics else None


if __name__ == "__main__":
    main()
