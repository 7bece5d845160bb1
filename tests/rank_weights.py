"""A callback for the DDP test: each rank saves its final weights, so the test can compare the ranks."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch


class DumpWeights(pl.Callback):
    """Save ``<out>/rank<k>.pt`` (the module's state dict) at the end of training on every rank."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save(
            {"state": state, "world_size": trainer.world_size, "step": trainer.global_step},
            self.out / f"rank{trainer.global_rank}.pt",
        )
