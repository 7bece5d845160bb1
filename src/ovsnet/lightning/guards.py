"""Training guards: stop a diverging run, and keep ``last.ckpt`` fresh whatever the monitored metric.

:class:`DivergenceGuard` watches the training loss of every step. A step is *bad* when its loss is non-finite
(the module skips such steps: :class:`~ovsnet.lightning.module.OVSNetModule` returns no loss and counts it in
``nonfinite_steps``) or *exploding*: above ``max_loss``, or above ``factor`` times the lowest finite loss seen
so far (when ``factor`` is set). After ``patience`` consecutive bad steps the run stops with
:class:`TrainingDiverged` ("training diverged at step N, loss X; lower the learning rate ..."), which
``train.py`` prints as one line with a non-zero exit code. Checkpoints written while the bad streak was
running never stay as ``last.ckpt``: the guard backs ``last.ckpt`` up before the first save inside a streak
and puts it back (or removes a ``last.ckpt`` that did not exist before) when the run diverges or when fit
ends inside a streak. The last good ``last.ckpt`` is therefore the one saved before the first bad loss was
seen (a loss is only known after the weights that produce it were made, so that checkpoint may already be a
step into the trouble; resume from it with a lower learning rate).

Skipped (non-finite) steps are logged as skipped: ``train/skipped_steps`` counts them, and the step rows of
the loggers leave the loss columns empty on a skipped step instead of repeating the last finite values
(Lightning keeps the previous step's values of every metric not logged in the current step).

:class:`LastCheckpoint` is a :class:`~pytorch_lightning.callbacks.ModelCheckpoint` that only writes
``last.ckpt``: every ``every_n_train_steps`` optimizer steps, whatever the monitor of the best-by-metric
checkpoint (which defers every step save until its metric exists), and once more when fit ends, so a crash
loses at most N steps and a finished run's ``last.ckpt`` holds its final weights.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn

__all__ = ["DivergenceGuard", "LastCheckpoint", "TrainingDiverged"]

log = logging.getLogger(__name__)

_BACKUP_SUFFIX = ".pre-divergence"


class TrainingDiverged(RuntimeError):
    """The training loss stayed non-finite or exploding for ``patience`` consecutive steps."""


def _fmt_loss(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "non-finite"


def _checkpoint_callbacks(trainer: pl.Trainer) -> list[ModelCheckpoint]:
    return [cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)]


def _last_paths(trainer: pl.Trainer) -> list[str]:
    """The ``last`` checkpoint file of every ModelCheckpoint that writes one (deduplicated, in order)."""
    paths: list[str] = []
    for cb in _checkpoint_callbacks(trainer):
        if not cb.save_last or not cb.dirpath:
            continue
        for path in (cb.last_model_path, cb.format_checkpoint_name({}, cb.CHECKPOINT_NAME_LAST)):
            if path and path not in paths:
                paths.append(path)
    return paths


class DivergenceGuard(pl.Callback):
    """Stop training after ``patience`` consecutive non-finite or exploding training losses.

    Args:
        patience: consecutive bad steps that stop the run (a finite, non-exploding step resets the count).
        max_loss: a finite loss above this counts as exploding (None: no absolute bound). The default 1e4 is
            several hundred times the loss of an untrained OVS-Net (about 15); raise it for models whose loss
            scale is larger.
        factor: a finite loss above ``factor`` x the lowest finite loss seen so far also counts as exploding
            (None, the default: off; relative bounds can trip on a single hard batch late in a good run).
        log_skipped: log ``train/skipped_steps`` and blank the stale step values of skipped steps.
    """

    def __init__(
        self,
        patience: int = 3,
        max_loss: float | None = 1e4,
        factor: float | None = None,
        log_skipped: bool = True,
    ) -> None:
        if patience < 1:
            raise ValueError(f"DivergenceGuard: patience must be >= 1, got {patience}")
        if max_loss is not None and not max_loss > 0:
            raise ValueError(f"DivergenceGuard: max_loss must be > 0 or null, got {max_loss}")
        if factor is not None and not factor > 1:
            raise ValueError(f"DivergenceGuard: factor must be > 1 or null, got {factor}")
        self.patience = int(patience)
        self.max_loss = None if max_loss is None else float(max_loss)
        self.factor = None if factor is None else float(factor)
        self.log_skipped = log_skipped
        self.skipped_steps = 0
        self.running_min: float | None = None
        self._streak = 0
        self._streak_len_at_end = 0
        self._streak_start = 0
        self._last_bad = math.nan
        self._seen_nonfinite: int | None = None
        self._backups: dict[str, str | None] = {}
        self._step_caches: dict[str, int] = {}

    # ------------------------------------------------------------------------------------------- state
    @property
    def state_key(self) -> str:
        return self._generate_state_key(patience=self.patience, max_loss=self.max_loss, factor=self.factor)

    def state_dict(self) -> dict[str, Any]:
        return {"skipped_steps": self.skipped_steps, "running_min": self.running_min}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))
        running_min = state_dict.get("running_min")
        self.running_min = None if running_min is None else float(running_min)

    # ------------------------------------------------------------------------------------------- hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._streak = 0
        self._backups = {}
        self._seen_nonfinite = getattr(pl_module, "nonfinite_steps", None)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.log_skipped:  # which step values exist before this step (to find the stale ones after it)
            self._step_caches = {
                key: id(metric._forward_cache) for key, metric in self._step_results(trainer)
            }

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        count = getattr(pl_module, "nonfinite_steps", None)
        skipped = isinstance(count, int) and self._seen_nonfinite is not None and count > self._seen_nonfinite
        self._seen_nonfinite = count if isinstance(count, int) else None
        value = math.nan
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            value = float(loss.detach())
        elif isinstance(loss, (int, float)):
            value = float(loss)
        empty = loss is None and not skipped  # a batch without readable samples: neither good nor bad
        if skipped or not math.isfinite(value):
            bad = not empty
        else:
            bad = (self.max_loss is not None and value > self.max_loss) or (
                self.factor is not None
                and self.running_min is not None
                and value > self.factor * self.running_min
            )
        if trainer.world_size > 1:  # every rank stops at the same step
            bad = bool(trainer.strategy.reduce_boolean_decision(bool(bad), all=False))
        if skipped:
            self.skipped_steps += 1
            if self.log_skipped:
                self._blank_stale_step_values(trainer)
        if self.log_skipped:
            pl_module.log(
                "train/skipped_steps", float(self.skipped_steps), on_step=True, on_epoch=False, batch_size=1
            )
        if empty and not bad:
            return
        if not bad:
            if math.isfinite(value) and (self.running_min is None or value < self.running_min):
                self.running_min = value
            if self._streak:
                log.info(
                    "loss back to %.4g at step %d after %d bad steps",
                    value,
                    trainer.global_step,
                    self._streak,
                )
                self._end_streak(trainer, restore=False)
            return
        if self._streak == 0:
            self._streak_start = trainer.global_step
        self._streak += 1
        self._last_bad = value
        log.warning(
            "%s loss %s at step %d (%d/%d bad steps before the run is stopped)",
            "non-finite" if skipped or not math.isfinite(value) else "exploding",
            _fmt_loss(value),
            trainer.global_step,
            self._streak,
            self.patience,
        )
        if self._streak >= self.patience:
            self._diverge(trainer)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Called before a checkpoint file is written: inside a bad streak, back up the current ``last`` files."""
        if not self._streak or not trainer.is_global_zero:
            return
        for path in _last_paths(trainer):
            if path in self._backups:
                continue
            if os.path.isfile(path):
                backup = path + _BACKUP_SUFFIX
                shutil.copy2(path, backup)
                self._backups[path] = backup
            else:
                self._backups[path] = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._streak:
            return
        # fit ended inside a bad streak (max_steps, max_time): its weights are not kept as last.ckpt
        for cb in _checkpoint_callbacks(trainer):
            cb.save_last = False  # no final save by ModelCheckpoint/LastCheckpoint.on_train_end either
        kept = self._end_streak(trainer, restore=True)
        log.warning(
            "training ended %d step(s) into a loss explosion (since step %d, last loss %s); %s",
            self._streak_len_at_end,
            self._streak_start,
            _fmt_loss(self._last_bad),
            kept,
        )

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if self._backups and trainer.is_global_zero:  # another error inside a streak: leave the good files
            self._end_streak(trainer, restore=True)

    # ------------------------------------------------------------------------------------------- helpers
    def _diverge(self, trainer: pl.Trainer) -> None:
        for cb in _checkpoint_callbacks(trainer):
            cb.save_on_exception = False  # ModelCheckpoint.on_exception must not save the diverged weights
            cb.save_last = False
        kept = self._end_streak(trainer, restore=True)
        raise TrainingDiverged(
            f"training diverged at step {trainer.global_step}, loss {_fmt_loss(self._last_bad)} "
            f"({self.patience} consecutive non-finite or exploding losses since step {self._streak_start}); "
            f"lower the learning rate (model.optimizer.lr) or clip gradients harder (trainer.gradient_clip_val); "
            f"{kept}"
        )

    def _end_streak(self, trainer: pl.Trainer, restore: bool) -> str:
        """Close the streak: restore (or drop) the ``last`` backups; returns what ``last.ckpt`` now holds."""
        self._streak_len_at_end = self._streak
        self._streak = 0
        backups, self._backups = self._backups, {}
        if not trainer.is_global_zero:
            return ""
        notes: list[str] = []
        for path, backup in backups.items():
            if not restore:
                if backup and os.path.isfile(backup):
                    os.remove(backup)
                continue
            if backup and os.path.isfile(backup):
                os.replace(backup, path)
                notes.append(f"{path} kept from before step {self._streak_start}")
            elif os.path.isfile(path):
                os.remove(path)
                notes.append(f"{path} from the diverged steps removed")
                for cb in _checkpoint_callbacks(trainer):
                    if cb.last_model_path == path:
                        cb.last_model_path = ""
        if not restore:
            return ""
        if not notes:
            paths = [p for p in _last_paths(trainer) if os.path.isfile(p)]
            notes = [f"{p} kept (saved before step {self._streak_start})" for p in paths] or [
                "no checkpoint was saved"
            ]
        return "; ".join(notes)

    @staticmethod
    def _step_results(trainer: pl.Trainer) -> list[tuple[str, Any]]:
        results = getattr(trainer, "_results", None)  # Lightning's per-loop metric store (private API)
        if results is None:
            return []
        try:
            return [
                (key, metric)
                for key, metric in results.items()
                if getattr(getattr(metric, "meta", None), "on_step", False)
                and hasattr(metric, "_forward_cache")
            ]
        except Exception:  # noqa: BLE001 - a Lightning internals change must not break training
            return []

    def _blank_stale_step_values(self, trainer: pl.Trainer) -> None:
        """A skipped step logs no loss: drop the previous step's values so loggers write nothing for them."""
        for key, metric in self._step_results(trainer):
            if key in self._step_caches and id(metric._forward_cache) == self._step_caches[key]:
                metric._forward_cache = None


class LastCheckpoint(ModelCheckpoint):
    """Writes only ``<dirpath>/last.ckpt``: every ``every_n_train_steps`` steps and at the end of fit.

    Independent of the best-by-metric checkpoint's ``monitor`` (a ModelCheckpoint with a monitor defers step
    saves until validation has logged its metric). Resume with ``ckpt_path=<dirpath>/last.ckpt``.
    """

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int = 20, **kwargs: Any) -> None:
        kwargs.setdefault(
            "enable_version_counter", False
        )  # shares last.ckpt with the best-by-metric checkpoint
        kwargs.setdefault("save_top_k", 0)
        kwargs.setdefault("save_last", True)
        super().__init__(dirpath=dirpath, monitor=None, every_n_train_steps=every_n_train_steps, **kwargs)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The final weights, unless already saved at this step (or fit ended in a loss explosion)."""
        if (
            self.save_last
            and not trainer.fast_dev_run
            and trainer.state.fn == TrainerFn.FITTING
            and self._last_global_step_saved != trainer.global_step
        ):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
