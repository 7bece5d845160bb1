"""Training from a composed Hydra config: the body of ``train.py``, shared with the demo and the notebook.

Also the small runtime helpers every entrypoint needs (instantiating a callbacks/logger group, W&B offline
without an API key, closing W&B in ``finally`` so a failed run does not break a multirun), the value returned
to sweepers (:func:`optimized_metric_value`: validated once at the end of fit when the run stopped before its
first validation; NaN with one warning line when it still does not exist), and the per-job result file
(``train_result.json``) that :class:`TrainSweepSummaryCallback` gathers into the sweep's
``sweep_summary.{csv,md}`` at the end of a multirun.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_only

from ovsnet.utils import job_overrides, swept_keys, write_json_atomic

__all__ = [
    "CONF_DIR",
    "RESULT_FILE",
    "SWEEP_SUMMARY",
    "TrainSweepSummaryCallback",
    "compose_config",
    "finish_wandb",
    "instantiate_group",
    "optimized_metric_value",
    "print_config",
    "run_training_job",
    "progress_bar_overrides",
    "run_dir_overrides",
    "summarize_train_sweep",
    "train",
    "use_wandb_offline_without_key",
    "write_run_result",
]

log = logging.getLogger(__name__)

# conf/ of the source checkout (the package is installed editable, as the Makefile does)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# one per job directory (written by train.py), gathered into SWEEP_SUMMARY.{csv,md} at the end of a multirun
RESULT_FILE = "train_result.json"
SWEEP_SUMMARY = "sweep_summary"
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

    import ovsnet.evaluation.settings  # noqa: F401 - registers schema/inference/cascade
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


# ---------------------------------------------------------------------------------------- sweep summary
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


def _job_sort_key(path: Path) -> tuple[int, str]:
    name = path.parent.name
    return (int(name), "") if name.isdigit() else (sys.maxsize, str(path))


def _fmt(value: Any) -> str:
    if value is None:
        return "nan"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def summarize_train_sweep(sweep_dir: str | Path, swept: list[str] | None = None) -> list[dict[str, Any]]:
    """Gather every job's ``train_result.json`` under ``sweep_dir`` into ``sweep_summary.csv`` and ``.md``.

    One row per job: its directory, the swept overrides (``swept`` keys; all of the job's overrides when None),
    status, the optimized metric's value, ``train/loss`` and ``val/loss``. Returns the rows.
    """
    root = Path(sweep_dir)
    rows: list[dict[str, Any]] = []
    for path in sorted(root.glob(f"**/{RESULT_FILE}"), key=_job_sort_key):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); left out of the sweep summary", path, exc)
            continue
        overrides = [
            o
            for o in record.get("overrides", [])
            if swept is None or o.split("=", 1)[0].lstrip("+~") in swept
        ]
        metrics = record.get("metrics") or {}
        rows.append(
            {
                "job": os.path.relpath(path.parent, root),
                "overrides": " ".join(overrides),
                "status": record.get("status", "?"),
                "metric": record.get("optimized_metric") or "",
                "value": record.get("value"),
                "train/loss": metrics.get("train/loss", metrics.get("train/loss_epoch")),
                "val/loss": metrics.get("val/loss"),
            }
        )
    if not rows:
        log.info("%s: no %s in any job directory; no sweep summary", root, RESULT_FILE)
        return rows
    columns = list(rows[0])
    csv_path = root / f"{SWEEP_SUMMARY}.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row[c]) for c in columns) + " |" for row in rows]
    md_path = root / f"{SWEEP_SUMMARY}.md"
    md_path.write_text("\n".join(lines) + "\n")
    log.info("training sweep (%d jobs): %s\n%s", len(rows), md_path, "\n".join(lines))
    return rows


class TrainSweepSummaryCallback(HydraCallback):
    """Hydra callback: at the end of a ``train.py`` multirun, write ``sweep_summary.{csv,md}`` in the sweep dir."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        task = [str(o) for o in OmegaConf.to_container(config.hydra.overrides.task, resolve=False)]
        # the keys that vary (sweep overrides, sweeper params); all overrides when none is recognisable
        try:
            swept = sorted(set(swept_keys(task))) or None
        except Exception:  # noqa: BLE001 - only the summary's column choice depends on it
            swept = None
        params = OmegaConf.select(config, "hydra.sweeper.params")
        if params:
            swept = sorted({*(swept or []), *map(str, params)})
        try:
            summarize_train_sweep(sweep_dir, swept)
        except Exception:  # noqa: BLE001 - a summary failure must not hide the runs' own results
            log.exception("training sweep summary in %s failed", sweep_dir)


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
    are one line too (:func:`ovsnet.cli.errors.one_line_errors`).
    """
    from ovsnet.cli.errors import one_line_errors
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
