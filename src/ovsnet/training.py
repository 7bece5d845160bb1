"""Training from a composed Hydra config: the body of ``train.py``, shared with the demo and the notebook.

Also the value returned to sweepers (:func:`optimized_metric_value`: validated once at the end of fit when the
run stopped before its first validation; NaN with one warning line when it still does not exist), and the
per-job result file (``train_result.json``) that
:class:`ovsnet.cli.sweep_summary.TrainSweepSummaryCallback` gathers into the sweep's ``sweep_summary.{csv,md}``
at the end of a multirun. The Hydra and W&B helpers every entry point shares are in :mod:`ovsnet.hydra_utils`
and :mod:`ovsnet.wandb_utils`, the one-line error reporting in :mod:`ovsnet.errors`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_only

from ovsnet.data.io import DataError
from ovsnet.hydra_utils import instantiate_group
from ovsnet.utils import job_overrides, write_json_atomic
from ovsnet.wandb_utils import finish_wandb, use_wandb_offline_without_key

__all__ = [
    "RESULT_FILE",
    "optimized_metric_value",
    "print_config",
    "run_training_job",
    "train",
    "write_run_result",
]

log = logging.getLogger(__name__)

# one per job directory (written by train.py), gathered into sweep_summary.{csv,md} at the end of a multirun
# (ovsnet.cli.sweep_summary.TrainSweepSummaryCallback)
RESULT_FILE = "train_result.json"


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


@contextlib.contextmanager
def _config_group(group: str) -> Iterator[None]:
    """A constructor that rejects a config value (Lightning's ``Trainer(max_steps=-5)``, a missing
    ``init_checkpoint``) becomes one line naming the group, not Hydra's multi-line wrapper and a traceback."""
    try:
        yield
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, DataError):
            raise cause from None  # already one line naming the file or key
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise DataError(f"{group}: {text}") from exc


def _has_validation_data(trainer: pl.Trainer, datamodule: pl.LightningDataModule) -> bool:
    if not trainer.limit_val_batches:
        return False
    if hasattr(datamodule, "data_val"):  # the project's DataModules (set up by fit)
        data_val = datamodule.data_val
        return data_val is not None and (not hasattr(data_val, "__len__") or len(data_val) > 0)
    return True


def _validate_for_metric(
    cfg: DictConfig, trainer: pl.Trainer, module: pl.LightningModule, datamodule: pl.LightningDataModule
) -> dict[str, float]:
    """Fit stopped before its optimized metric was logged: validate the last weights once (if there is data)."""
    name = cfg.get("optimized_metric")
    if not _has_validation_data(trainer, datamodule):
        log.info("optimized_metric %r was not logged and there is no validation data to compute it", name)
        return {}
    log.info("optimized_metric %r was not logged during fit: validating the last weights once", name)
    results = trainer.validate(module, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    for result in results or []:
        metrics.update({k: float(v) for k, v in result.items()})
    return metrics


def _last_checkpoint_path(trainer: pl.Trainer) -> str:
    """The newest ``last`` checkpoint written by any ModelCheckpoint (they may share one file)."""
    paths = {
        cb.last_model_path
        for cb in trainer.callbacks
        if isinstance(cb, ModelCheckpoint) and cb.last_model_path and os.path.isfile(cb.last_model_path)
    }
    return max(paths, key=os.path.getmtime) if paths else ""


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and optionally test) from a composed config; returns the logged metrics.

    When ``cfg.optimized_metric`` was not logged by fit (the run stopped before its first validation), the
    last weights are validated once, so a short run or a sweep of short runs still gets its metric.
    ``metrics["ckpt_last"]``/``["ckpt_best"]`` hold the checkpoint paths when checkpointing is on.
    Raises :class:`ovsnet.lightning.guards.TrainingDiverged` when the divergence guard stops the run.
    """
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    if cfg.get("print_config"):
        print_config(cfg)
    use_wandb_offline_without_key()
    # plain containers (not OmegaConf) in hyper-parameters: checkpoints then load with weights_only=True
    with _config_group("data"):
        datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data, _convert_="all")
    with _config_group("model"):
        module: pl.LightningModule = hydra.utils.instantiate(cfg.model, _convert_="all")
    with _config_group("callbacks"):
        callbacks = instantiate_group(cfg.get("callbacks"))
    with _config_group("logger"):
        loggers = instantiate_group(cfg.get("logger"))
    with _config_group("trainer"):
        trainer: pl.Trainer = hydra.utils.instantiate(
            cfg.trainer, callbacks=callbacks, logger=loggers or False
        )
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("train", True):
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics: dict[str, Any] = {k: float(v) for k, v in trainer.callback_metrics.items()}
    name = cfg.get("optimized_metric")
    if cfg.get("train", True) and name and name not in metrics and not trainer.interrupted:
        metrics.update(_validate_for_metric(cfg, trainer, module, datamodule))
    ckpt = trainer.checkpoint_callback
    if cfg.get("test"):
        best = ckpt.best_model_path if ckpt else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    if ckpt is not None:
        metrics["ckpt_last"] = _last_checkpoint_path(trainer)
        metrics["ckpt_best"] = ckpt.best_model_path or ""
    return metrics


def optimized_metric_value(cfg: DictConfig, metrics: dict[str, Any]) -> float | None:
    """What ``train.py`` returns to a sweeper: ``metrics[cfg.optimized_metric]``, None when no metric is set.

    A metric that is still missing (no validation data, or a module that does not log it) gives NaN and one
    warning line: the run succeeded, and sweepers record NaN as a failed trial instead of stopping the sweep.
    """
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name in metrics and isinstance(metrics[name], (int, float)):
        return float(metrics[name])
    logged = sorted(k for k, v in metrics.items() if isinstance(v, float) and not k.startswith("ckpt_"))
    log.warning(
        "optimized_metric %r was not logged (no validation ran and none could be run); returning NaN to the "
        "sweeper. Logged metrics: %s",
        name,
        ", ".join(logged) or "none",
    )
    return math.nan


# ---------------------------------------------------------------------------------------- the result file
def write_run_result(
    out_dir: str | Path,
    cfg: DictConfig,
    value: float | None,
    metrics: dict[str, Any] | None = None,
    status: str = "ok",
    error: str | None = None,
    overrides: list[str] | None = None,
) -> Path:
    """``<out_dir>/train_result.json``: the job's status, overrides, optimized metric and logged scalars."""
    scalars = {
        k: (v if math.isfinite(v) else None)
        for k, v in (metrics or {}).items()
        if isinstance(v, float) and not k.startswith("ckpt_")
    }
    record = {
        "status": status,
        "optimized_metric": cfg.get("optimized_metric"),
        "value": value if value is not None and math.isfinite(value) else None,
        "overrides": list(overrides or []),
        "ckpt_last": (metrics or {}).get("ckpt_last", ""),
        "metrics": scalars,
    }
    if error:
        record["error"] = error
    return write_json_atomic(Path(out_dir) / RESULT_FILE, record, sort_keys=True)


# ---------------------------------------------------------------------------------------- train.py's job
def _job_context() -> tuple[str | None, list[str], bool]:
    """(job output dir, the job's overrides, whether this is a multirun job) from Hydra, when it is running."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None, [], False
    hc = HydraConfig.get()
    return str(hc.runtime.output_dir), job_overrides(), hc.mode == RunMode.MULTIRUN


def _resume_hint(cfg: DictConfig) -> str:
    """How to resume after Ctrl-C: the ``last.ckpt`` the checkpoint callbacks write (every few steps)."""
    dirpath = None
    for key in (
        "callbacks.last_checkpoint.dirpath",
        "callbacks.model_checkpoint.dirpath",
        "paths.output_dir",
    ):
        dirpath = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        if dirpath:
            dirpath = dirpath if key.startswith("callbacks") else f"{dirpath}/checkpoints"
            break
    return f"resume with ckpt_path={dirpath or '<output dir>/checkpoints'}/last.ckpt once it exists"


def run_training_job(cfg: DictConfig) -> float | None:
    """The body of ``train.py``: train, write ``train_result.json``, return the optimized metric.

    A diverging run is recorded as diverged; it exits with code 2 and one line (a traceback with
    ``HYDRA_FULL_ERROR=1``), or returns NaN inside a multirun so the sweep goes on. Bad input and Ctrl-C
    are one line too (:func:`ovsnet.errors.one_line_errors`).
    """
    from ovsnet.errors import one_line_errors
    from ovsnet.lightning.guards import TrainingDiverged

    out_dir, overrides, multirun = _job_context()
    rank_zero = getattr(rank_zero_only, "rank", 0) == 0
    try:
        with one_line_errors("train.py", _resume_hint(cfg)):
            try:
                metrics = train(cfg)
            finally:
                finish_wandb()
    except TrainingDiverged as exc:
        if out_dir and rank_zero:
            write_run_result(out_dir, cfg, None, status="diverged", error=str(exc), overrides=overrides)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", exc)
        if multirun:  # sweepers record NaN as a failed trial
            return math.nan if cfg.get("optimized_metric") else None
        raise SystemExit(2) from None
    value = optimized_metric_value(cfg, metrics)
    if out_dir and rank_zero:
        status = "ok" if value is None or math.isfinite(value) else "no metric"
        write_run_result(out_dir, cfg, value, metrics, status=status, overrides=overrides)
    return value
