"""OVSNetModule: trains an OVS-Net with the joint loss of the paper (eq. 2) and the paper's SGD recipe.

The network stays a plain ``nn.Module`` (built from explicit keyword arguments); this module only adds the
optimisation, logging, the non-finite-loss guard and the checkpoint plumbing (the build kwargs travel in the
checkpoint so :func:`ovsnet.models.checkpoint.load_model` can rebuild the network without a config tree;
``build_model``, ``load_weights`` and ``load_model_from_checkpoint`` are re-exported from there).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from ovsnet.data.io import DataError
from ovsnet.models.checkpoint import load_weights
from ovsnet.models.loading import build_model
from ovsnet.models.loading import load_model as load_model_from_checkpoint
from ovsnet.models.ovsnet import group_losses

__all__ = ["OVSNetModule", "build_model", "load_model_from_checkpoint", "load_weights"]

log = logging.getLogger(__name__)

LOSS_TERMS = ("mask", "loc", "cls", "reid", "refine")
# gradient norms are logged per part of the network: a diverging head shows up before the loss does
GRAD_GROUPS = ("detector.backbone", "detector.rpn", "detector.roi_heads", "reid_head", "mga")


def _checkpoint_safe(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """OmegaConf/nested mappings → plain python containers, so checkpoints load without OmegaConf."""
    if config is None:
        return None
    with contextlib.suppress(ImportError):
        from omegaconf import DictConfig, OmegaConf

        if isinstance(config, DictConfig):
            return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(config).items()}


# torch.optim's words for a keyword in its "Invalid ..." messages, where they differ from the keyword
_TORCH_WORDS = {"lr": "learning rate", "eps": "epsilon", "betas": "beta"}


def _config_error(section: str, factory: Any, exc: BaseException) -> DataError:
    """One line naming the config key whose value torch rejected (``model.optimizer.lr=-1: Invalid learning
    rate: -1``), so ``train.py`` reports it like any bad input instead of a traceback from inside ``fit``."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    target = getattr(getattr(factory, "func", factory), "__name__", "the factory")
    keywords = dict(getattr(factory, "keywords", None) or {})
    lowered = message.lower()
    for key, value in keywords.items():
        if key in lowered or _TORCH_WORDS.get(key, key) in lowered:
            return DataError(f"{section}.{key}={value}: {message} ({target} rejected it)")
    return DataError(f"{section}: {message} ({target} rejected its settings: {keywords})")


@contextlib.contextmanager
def _loss_mode(model: nn.Module) -> Iterator[None]:
    """Train mode (torchvision detectors only return losses then) without touching BN stats or dropout."""
    was_training = model.training
    model.train()
    for m in model.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)):
            m.eval()
    try:
        yield
    finally:
        model.train(was_training)


class OVSNetModule(pl.LightningModule):
    """Joint-loss training of OVS-Net: ``L_mask + L_loc + L_cls + L_reid + λ·L_refine``.

    Args:
        model: the network (``forward(images, targets) -> loss dict``, grouped by ``group_losses``); built from
            ``model_config`` (``build_ovsnet`` kwargs) when ``None``.
        optimizer / scheduler: ``functools.partial`` factories (Hydra ``_partial_: true``) finished here.
        base_batch_size: the learning rate is scaled by ``global batch / base_batch_size`` (paper: lr 0.04
            for 32 images); ``None`` disables scaling.
        warmup_steps / warmup_factor: linear warm-up from ``warmup_factor × lr``, chained with ``scheduler``.
        init_checkpoint: weights to start from (previous stage); keys of new heads or another class count
            are skipped (``strict_init=False``).
        inference_settings: inference settings calibrated for this model (``InferenceSettings`` keys, e.g.
            ``{"reid": {"rho": 1.5}}`` for its embedding scale); stored in the checkpoint and used by
            evaluate.py, the video CLI and the validation callback unless a user overrides them.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        lambda_refine: float = 1.3,
        warmup_steps: int = 100,
        warmup_factor: float = 0.001,
        base_batch_size: int | None = 32,
        scheduler_interval: str = "epoch",
        model_config: Mapping[str, Any] | None = None,
        init_checkpoint: str | None = None,
        strict_init: bool = False,
        compile: bool = False,
        inference_settings: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        inference_settings = _checkpoint_safe(inference_settings)
        model_config = _checkpoint_safe(model_config)
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"])
        self.hparams["model_config"] = model_config
        if model is None:
            if model_config is None:
                raise ValueError("OVSNetModule needs a model or a model_config")
            model = build_model(model_config)
        if init_checkpoint:
            load_weights(model, init_checkpoint, strict=strict_init)
        self.model = torch.compile(model) if compile else model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.lambda_refine = lambda_refine
        self.nonfinite_steps = 0
        self.skipped_samples = 0

    # ------------------------------------------------------------------ losses
    def _group(self, loss_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The eq. 2 terms and their total (``ovsnet.models.ovsnet.group_losses``, the one copy)."""
        return dict(group_losses(loss_dict, lambda_refine=self.lambda_refine))

    def _losses(self, batch: Any) -> tuple[dict[str, torch.Tensor], int, int]:
        images, targets, skipped = batch if len(batch) == 3 else (*batch, 0)
        return self._group(self.model(list(images), list(targets))), len(images), int(skipped)

    def _log_terms(self, prefix: str, losses: Mapping[str, torch.Tensor], batch_size: int, **kw: Any) -> None:
        for name in (*LOSS_TERMS, "total"):
            if name in losses:
                self.log(
                    f"{prefix}/loss_{name}" if name != "total" else f"{prefix}/loss",
                    losses[name].detach(),
                    batch_size=batch_size,
                    **kw,
                )

    def _zero_loss(self) -> torch.Tensor:
        """A zero loss still connected to every parameter: keeps DDP ranks in step on a skipped batch."""
        return sum(
            (p.sum() * 0.0 for p in self.parameters() if p.requires_grad), torch.zeros((), device=self.device)
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        images = batch[0]
        if len(batch) == 3:
            self.skipped_samples += int(batch[2])
        if len(images) == 0:
            log.warning("batch %d has no readable sample; skipped", batch_idx)
            return self._zero_loss() if self.trainer.world_size > 1 else None
        losses, batch_size, _ = self._losses(batch)
        total = losses["total"]
        finite = torch.isfinite(total)
        if self.trainer.world_size > 1:
            finite = self.trainer.strategy.reduce_boolean_decision(bool(finite), all=True)
        if not bool(finite):
            self.nonfinite_steps += 1
            log.warning(
                "non-finite loss at step %d (%s); step skipped",
                self.global_step,
                {k: float(v.detach()) for k, v in losses.items()},
            )
            self.log("train/nonfinite_steps", float(self.nonfinite_steps), batch_size=batch_size)
            return self._zero_loss() if self.trainer.world_size > 1 else None
        self._log_terms("train", losses, batch_size, on_step=True, on_epoch=True, prog_bar=False)
        spread = getattr(self.model, "reid_spread", None)
        if spread is not None:  # falls to 0 when the Re-ID embeddings collapse
            self.log("train/reid_spread", spread, batch_size=batch_size, on_step=True, on_epoch=False)
        self.log("train/nonfinite_steps", float(self.nonfinite_steps), batch_size=batch_size)
        self.log("train/skipped_samples", float(self.skipped_samples), batch_size=batch_size)
        return total

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if len(batch[0]) == 0:
            return
        with _loss_mode(self.model):
            losses, batch_size, _ = self._losses(batch)
        if torch.isfinite(losses["total"]):
            self._log_terms("val", losses, batch_size, on_step=False, on_epoch=True, sync_dist=True)
            # a metric to maximise for sweepers when no video metric is computed
            self.log(
                "val/neg_loss",
                -losses["total"].detach(),
                batch_size=batch_size,
                on_epoch=True,
                sync_dist=True,
            )

    def test_step(self, batch: Any, batch_idx: int) -> None:
        if len(batch[0]) == 0:
            return
        with _loss_mode(self.model):
            losses, batch_size, _ = self._losses(batch)
        self._log_terms("test", losses, batch_size, on_step=False, on_epoch=True, sync_dist=True)

    # -------------------------------------------------------------- optimisers
    def _lr_scale(self) -> float:
        base = self.hparams.get("base_batch_size")
        if not base or self._trainer is None:
            return 1.0
        batch = getattr(self.trainer.datamodule, "batch_size", None) if self.trainer.datamodule else None
        if not batch:
            return 1.0
        return float(batch) * self.trainer.world_size * self.trainer.accumulate_grad_batches / float(base)

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        if self.optimizer_factory is None:
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=0.04, momentum=0.9, weight_decay=1e-4
            )
        else:
            try:
                optimizer = self.optimizer_factory(params=params)
            except (ValueError, TypeError) as exc:
                raise _config_error("model.optimizer", self.optimizer_factory, exc) from exc
        scale = self._lr_scale()
        for group in optimizer.param_groups:
            group["lr"] *= scale
        log.info("learning rate %.5g (batch scaling x%.3g)", optimizer.param_groups[0]["lr"], scale)
        schedulers = []
        if self.scheduler_factory is not None:
            try:
                scheduler = self.scheduler_factory(optimizer=optimizer)
            except (ValueError, TypeError) as exc:
                raise _config_error("model.scheduler", self.scheduler_factory, exc) from exc
            schedulers.append(
                {
                    "scheduler": scheduler,
                    "interval": self.hparams.scheduler_interval,
                    "name": "lr/main",
                }
            )
        if self.hparams.warmup_steps and self.hparams.warmup_steps > 0:
            try:
                warm = torch.optim.lr_scheduler.LinearLR(
                    optimizer,
                    start_factor=self.hparams.warmup_factor,
                    end_factor=1.0,
                    total_iters=self.hparams.warmup_steps,
                )
            except ValueError as exc:
                raise DataError(
                    f"model.warmup_factor={self.hparams.warmup_factor}: {exc} (torch's LinearLR warm-up)"
                ) from exc
            schedulers.append({"scheduler": warm, "interval": "step", "name": "lr/warmup"})
        if not schedulers:
            return optimizer
        return [optimizer], schedulers

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Log the L2 norm of the gradients per network part and in total (every ``log_every_n_steps``)."""
        if self._trainer is None or self.global_step % max(self.trainer.log_every_n_steps, 1):
            return
        sums: dict[str, float] = {}
        for name, param in self.model.named_parameters():
            if param.grad is None:
                continue
            group = next((g for g in GRAD_GROUPS if name.startswith(g)), "other")
            sums[group] = sums.get(group, 0.0) + float(param.grad.detach().float().pow(2).sum())
        if sums:
            norms = {f"grad_norm/{g}": v**0.5 for g, v in sums.items()}
            norms["grad_norm/total"] = sum(sums.values()) ** 0.5
            self.log_dict(norms, on_step=True, on_epoch=False)

    def on_train_epoch_start(self) -> None:
        """Reseed the per-epoch randomness of datasets (Lucid samples) that support it."""
        dm = self.trainer.datamodule
        dataset = getattr(dm, "data_train", None) if dm is not None else None
        if dataset is not None and hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["ovsnet"] = {
            "nonfinite_steps": self.nonfinite_steps,
            "skipped_samples": self.skipped_samples,
            "model_config": self.hparams.get("model_config"),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        extra = checkpoint.get("ovsnet", {})
        self.nonfinite_steps = int(extra.get("nonfinite_steps", 0))
        self.skipped_samples = int(extra.get("skipped_samples", 0))
