"""Training guards (issue 16, findings 1-3): short runs still get their metric, diverging runs stop without a
diverged ``last.ckpt``, and ``last.ckpt`` is written every N steps whatever the monitor."""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from ovsnet.cli.sweep_summary import SWEEP_SUMMARY
from ovsnet.lightning.guards import DivergenceGuard, LastCheckpoint, TrainingDiverged
from ovsnet.training import RESULT_FILE, optimized_metric_value, train
from tests.commands import run_train


def _ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


# ----------------------------------------------------------------------------- a tiny module for the guard
class Boom(pl.LightningModule):
    """A linear regression whose loss goes bad from step ``bad_from`` on (``until``: bad steps end there).

    ``mode="skip"`` mimics OVSNetModule's non-finite guard (count, log the counter, return no loss);
    ``mode="explode"`` returns a finite loss far above ``DivergenceGuard.max_loss``.
    """

    def __init__(self, bad_from: int, mode: str = "skip", until: int | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.bad_from, self.mode, self.until = bad_from, mode, until
        self.nonfinite_steps = 0

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        bad = self.global_step >= self.bad_from and (self.until is None or self.global_step < self.until)
        if bad and self.mode == "skip":
            self.nonfinite_steps += 1
            self.log("train/nonfinite_steps", float(self.nonfinite_steps))
            return None
        if bad:
            loss = loss * 0 + 1e9
        self.log("train/loss", loss, on_step=True, on_epoch=False)
        self.log("train/nonfinite_steps", float(self.nonfinite_steps))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(64, 2)), batch_size=2)


def _fit_boom(tmp_path: Path, module: Boom, max_steps: int, patience: int = 3) -> tuple[pl.Trainer, Path]:
    ckpts = tmp_path / "checkpoints"
    trainer = pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        callbacks=[
            DivergenceGuard(patience=patience),
            LastCheckpoint(dirpath=str(ckpts), every_n_train_steps=1),
        ],
        logger=CSVLogger(str(tmp_path), name="csv"),
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module)
    return trainer, ckpts / "last.ckpt"


def _csv_rows(tmp_path: Path) -> list[dict[str, str]]:
    (path,) = list((tmp_path / "csv").rglob("metrics.csv"))
    with open(path) as f:
        return list(csv.DictReader(f))


def test_non_finite_steps_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path: Path) -> None:
    module = Boom(bad_from=4, mode="skip")  # steps 5, 6, 7 (1-based) are skipped
    with pytest.raises(TrainingDiverged) as info:
        _fit_boom(tmp_path, module, max_steps=20)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(
        r"training diverged at step 7, loss non-finite .*since step 5.*lower the learning rate", message
    )
    last = tmp_path / "checkpoints/last.ckpt"
    assert _ckpt(last)["global_step"] == 4, "last.ckpt must be the one saved before the first bad step"
    assert not list((tmp_path / "checkpoints").glob("*.pre-divergence")), "no backup may be left behind"
    assert f"{last} kept from before step 5" in message
    # skipped steps are logged as skipped, never as the last finite loss
    rows = _csv_rows(tmp_path)
    skipped = [r for r in rows if r.get("train/skipped_steps") not in (None, "", "0.0")]
    assert [r["train/skipped_steps"] for r in skipped] == ["1.0", "2.0"]  # step 7 raised before its row
    assert all(r["train/loss"] == "" for r in skipped)
    finite = [r for r in rows if r.get("train/loss")]
    assert len(finite) == 4 and all(math.isfinite(float(r["train/loss"])) for r in finite)


def test_exploding_losses_stop_the_run(tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged, match=r"diverged at step 6, loss 1e\+09 .*since step 4"):
        _fit_boom(tmp_path, Boom(bad_from=3, mode="explode"), max_steps=20)
    assert _ckpt(tmp_path / "checkpoints/last.ckpt")["global_step"] == 3


def test_a_short_spike_is_not_divergence(tmp_path: Path) -> None:
    trainer, last = _fit_boom(tmp_path, Boom(bad_from=3, mode="explode", until=5), max_steps=8)
    assert trainer.global_step == 8 and _ckpt(last)["global_step"] == 8
    assert not list(last.parent.glob("*.pre-divergence"))


def test_fit_ending_inside_an_explosion_keeps_the_last_good_checkpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ovsnet.lightning.guards"):
        trainer, last = _fit_boom(tmp_path, Boom(bad_from=4, mode="explode"), max_steps=6)
    assert trainer.global_step == 6
    assert _ckpt(last)["global_step"] == 4
    assert "training ended 2 step(s) into a loss explosion" in caplog.text


def test_guard_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="patience"):
        DivergenceGuard(patience=0)
    with pytest.raises(ValueError, match="factor"):
        DivergenceGuard(factor=0.5)


# --------------------------------------------------------------------------------- the real training config
def test_short_run_validates_once_for_its_metric(compose_train) -> None:
    """2 steps, validation only every 5 epochs: fit never validates, the end-of-fit validation gives val/loss."""
    cfg = compose_train("trainer.check_val_every_n_epoch=5")
    metrics = train(cfg)
    assert math.isfinite(metrics["val/loss"])
    assert optimized_metric_value(cfg, metrics) == metrics["val/loss"]


def test_missing_metric_without_validation_data_is_nan_and_one_warning(
    compose_train, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = compose_train("trainer.limit_val_batches=0")
    metrics = train(cfg)
    assert "val/loss" not in metrics
    with caplog.at_level(logging.WARNING, logger="ovsnet.training"):
        value = optimized_metric_value(cfg, metrics)
    assert value is not None and math.isnan(value)
    warnings = [r for r in caplog.records if "optimized_metric 'val/loss' was not logged" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()


class CrashAt(pl.Callback):
    """Raises at the end of optimizer step ``step`` (a crash, with no teardown checkpoint)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"crash at step {self.step}")


def test_last_checkpoint_every_n_steps_whatever_the_monitor(compose_train, tmp_path: Path) -> None:
    """monitor=val/loss and no validation yet: last.ckpt still appears every 2 steps, and it resumes."""
    common = [
        "callbacks.model_checkpoint.monitor=val/loss",
        "callbacks.last_checkpoint.every_n_train_steps=2",
        "trainer.max_epochs=10",
        "trainer.check_val_every_n_epoch=50",
        "optimized_metric=null",
    ]
    crash = "+callbacks.crash={_target_: tests.test_training_guards.CrashAt, step: 3}"
    with pytest.raises(RuntimeError, match="crash at step 3"):
        train(compose_train(*common, "trainer.max_steps=4", crash))
    last = tmp_path / "out/checkpoints/last.ckpt"
    assert _ckpt(last)["global_step"] == 2
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
    metrics = train(compose_train(*common, "trainer.max_steps=4", f"ckpt_path={last}"))
    assert metrics["ckpt_last"] == str(last)
    assert _ckpt(last)["global_step"] == 4


def test_lr_1e6_run_diverges_in_process(compose_train, tmp_path: Path) -> None:
    cfg = compose_train(
        "model.optimizer.lr=1e6",
        "trainer.max_steps=9",
        "trainer.max_epochs=5",
        "trainer.limit_train_batches=null",
        "trainer.limit_val_batches=0",
        "callbacks.last_checkpoint.every_n_train_steps=1",
    )
    with pytest.raises(TrainingDiverged) as info:
        train(cfg)
    match = re.search(
        r"diverged at step (\d+), loss .* since step (\d+)\).*lower the learning rate", str(info.value)
    )
    assert match, str(info.value)
    last = tmp_path / "out/checkpoints/last.ckpt"
    # step 1 (the untrained weights' loss) is always fine: its last.ckpt is the one kept
    assert _ckpt(last)["global_step"] < int(match.group(2)), "last.ckpt saved from the diverged steps"


# ---------------------------------------------------------------------------------------- train.py (subprocess)
@pytest.mark.slow
def test_train_py_divergence_is_one_line_and_exit_code_2(tmp_path: Path, synthetic_root: Path) -> None:
    result = run_train(
        tmp_path,
        synthetic_root,
        "model.optimizer.lr=1e6",
        "trainer.max_steps=9",
        "trainer.max_epochs=5",
        "trainer.limit_train_batches=null",
        "trainer.limit_val_batches=0",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "training diverged at step" in line]
    assert len(lines) == 1 and "lower the learning rate" in lines[0]
    record = json.loads((tmp_path / "out" / RESULT_FILE).read_text())
    assert record["status"] == "diverged"


@pytest.mark.slow
def test_short_multirun_exits_0_with_both_metrics_in_the_summary(
    tmp_path: Path, synthetic_root: Path
) -> None:
    """Two 2-step jobs that never validate during fit: both get val/loss, and the sweep summary lists them."""
    result = run_train(
        tmp_path,
        synthetic_root,
        "-m",
        "model.lambda_refine=1.0,1.3",
        "trainer.check_val_every_n_epoch=5",
        "paths.output_dir=${hydra:runtime.output_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "multirun" / f"{SWEEP_SUMMARY}.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["job"] for r in rows] == ["0", "1"]
    assert [r["overrides"] for r in rows] == ["model.lambda_refine=1.0", "model.lambda_refine=1.3"]
    assert all(r["status"] == "ok" and r["metric"] == "val/loss" for r in rows)
    assert all(math.isfinite(float(r["value"])) for r in rows)
    assert (tmp_path / "multirun" / f"{SWEEP_SUMMARY}.md").read_text().count("| ok |") == 2
