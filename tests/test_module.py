"""OVSNetModule on a scripted network (no detector, seconds on a CPU): the non-finite loss guard, learning-rate
scaling by batch size and partial loading of an init checkpoint."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from ovsnet.lightning.module import OVSNetModule
from ovsnet.models.checkpoint import CheckpointError
from tests.tiny_models import LOSS_KEYS


class ScriptedNet(nn.Module):
    """OVSNet's training contract (``forward(images, targets) -> the seven losses``) on one weight vector.

    The forward calls listed in ``nan_calls`` (0-based) return a NaN mask loss.
    """

    def __init__(self, nan_calls: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))
        self.nan_calls, self.calls = set(nan_calls), 0

    def forward(self, images: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        x = torch.stack([im.mean() for im in images]).mean()
        base = (self.weight * x).pow(2).sum()
        losses = {k: base * 0.1 for k in LOSS_KEYS}
        if self.calls in self.nan_calls:
            losses["loss_mask"] = base * float("nan")
        self.calls += 1
        return losses


def _collate(samples: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[dict]]:
    return list(samples), [{} for _ in samples]


class Images(pl.LightningDataModule):
    """``batches`` batches of ``batch_size`` random images; ``batch_size`` is what LR scaling reads."""

    def __init__(self, batch_size: int, batches: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        g = torch.Generator().manual_seed(0)
        self.images = [torch.rand(3, 4, 4, generator=g) for _ in range(batch_size * batches)]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.images, batch_size=self.batch_size, collate_fn=_collate, num_workers=0)


class Snapshots(pl.Callback):
    """The network's weight after every training batch."""

    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.weights.append(pl_module.model.weight.detach().clone())


def _trainer(callbacks: list[pl.Callback] | None = None, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks or [],
        **kwargs,
    )


def _module(net: nn.Module, **kwargs) -> OVSNetModule:
    sgd = functools.partial(torch.optim.SGD, lr=0.04)
    return OVSNetModule(model=net, optimizer=sgd, warmup_steps=0, **kwargs)


def test_a_step_with_a_nonfinite_loss_is_skipped_and_counted() -> None:
    module = _module(ScriptedNet(nan_calls=(1,)), base_batch_size=None)
    snapshots = Snapshots()
    trainer = _trainer([snapshots], max_epochs=1)
    trainer.fit(module, datamodule=Images(batch_size=2, batches=4))
    before, w = torch.ones(3), snapshots.weights
    assert len(w) == 4 and all(torch.isfinite(x).all() for x in w)
    assert not torch.equal(w[0], before)  # a finite step moves the weight
    assert torch.equal(w[1], w[0])  # the NaN step changes nothing
    assert not torch.equal(w[2], w[1]) and not torch.equal(w[3], w[2])  # training goes on
    assert module.nonfinite_steps == 1
    assert trainer.callback_metrics["train/nonfinite_steps"] == 1.0
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    restored = _module(ScriptedNet())
    restored.on_load_checkpoint(checkpoint)
    assert restored.nonfinite_steps == 1  # the count survives a resume


@pytest.mark.parametrize(
    "batch_size,accumulate,base,expected",
    [(4, 2, 32, 0.04 * 8 / 32), (4, 1, 2, 0.04 * 2), (4, 2, None, 0.04)],
)
def test_learning_rate_scales_with_the_global_batch(
    batch_size: int, accumulate: int, base: int | None, expected: float
) -> None:
    """lr × (batch × devices × accumulation) / base_batch_size (the paper's 0.04 is for 32 images)."""
    module = _module(ScriptedNet(), base_batch_size=base)
    trainer = _trainer(max_steps=1, accumulate_grad_batches=accumulate)
    trainer.fit(module, datamodule=Images(batch_size=batch_size, batches=accumulate))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(expected)


class Stage1(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.old_head = nn.Linear(4, 2)  # dropped in the next stage
        self.cls = nn.Linear(4, 81)  # COCO classes


class Stage2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.new_head = nn.Linear(4, 8)  # not in the previous stage
        self.cls = nn.Linear(4, 2)  # another class count


def _stage1_checkpoint(path: Path) -> Stage1:
    torch.manual_seed(1)
    net = Stage1()
    torch.save({"state_dict": {f"model.{k}": v for k, v in net.state_dict().items()}}, path)
    return net


def test_init_checkpoint_loads_the_matching_weights_and_skips_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "stage1.ckpt"
    stage1 = _stage1_checkpoint(path)
    torch.manual_seed(2)
    fresh = Stage2()
    new_head, cls = fresh.new_head.weight.clone(), fresh.cls.weight.clone()
    module = _module(fresh, init_checkpoint=str(path))
    net = module.model
    assert torch.equal(net.body.weight, stage1.body.weight) and torch.equal(net.body.bias, stage1.body.bias)
    assert torch.equal(net.new_head.weight, new_head)  # missing from the checkpoint: left as built
    assert torch.equal(net.cls.weight, cls)  # another shape: skipped, not an error
    assert not hasattr(net, "old_head")


def test_strict_init_refuses_another_architecture(tmp_path: Path) -> None:
    path = tmp_path / "stage1.ckpt"
    _stage1_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"stage1.ckpt.*missing.*new_head.*unexpected.*old_head"):
        _module(Stage2(), init_checkpoint=str(path), strict_init=True)
