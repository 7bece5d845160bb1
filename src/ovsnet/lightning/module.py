"""OVSNetModule: trains an OVS-Net with the joint loss of the paper (eq. 2) and the paper's SGD recipe.

The network stays a plain ``nn.Module`` (built from explicit keyword arguments); this module only adds the
optimisation, logging, the non-finite-loss guard and the checkpoint plumbing (the build kwargs travel in the
checkpoint so :func:`load_model_from_checkpoint` can rebuild the network without a config tree).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

__all__ = ["OVSNetModule", "build_model", "load_model_from_checkpoint", "load_weights"]

log = logging.getLogger(__name__)

LOSS_TERMS = ("mask", "loc", "cls", "reid", "refine")
# gradient norms are logged per part of the network: a diverging head shows up before the loss does
GRAD_GROUPS = ("detector.backbone", "detector.rpn", "detector.roi_heads", "reid_head", "mga")


def build_model(model_config: Mapping[str, Any]) -> nn.Module:
    """Build the network from its keyword arguments (``ovsnet.models.build_ovsnet``)."""
    from ovsnet.models import ovsnet as ovsnet_models  # lazy: keeps this module importable on its own

    return ovsnet_models.build_ovsnet(**dict(model_config))


def _plain(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """OmegaConf/nested mappings → plain python containers, so checkpoints load without OmegaConf."""
    if config is None:
        return None
    with contextlib.suppress(ImportError):
        from omegaconf import DictConfig, OmegaConf

        if isinstance(config, DictConfig):
            return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(config).items()}


def _read_state_dict(path: str | os.PathLike, map_location: Any = "cpu") -> tuple[dict, dict]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state_dict")
    if any(k.startswith("model.") for k in state):
        state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    return state, ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}


def _mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    )
    return missing, unexpected, shape


def _format_keys(title: str, keys: list[str], limit: int = 20) -> str:
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return f"{title} ({len(keys)}): {', '.join(keys[:limit])}{more}"


def load_weights(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> None:
    """Load a checkpoint's weights; ``strict=False`` keeps matching keys (new heads, another class count).

    With ``strict=True`` any difference raises a ``ValueError`` that lists the mismatched keys.
    """
    state, _ = _read_state_dict(path)
    missing, unexpected, shape = _mismatch(model, state)
    if strict and (missing or unexpected or shape):
        parts = [
            _format_keys(t, k)
            for t, k in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shape))
            if k
        ]
        raise ValueError(f"checkpoint {path} does not match this architecture; " + "; ".join(parts))
    bad = {s.split(":")[0] for s in shape}
    model.load_state_dict({k: v for k, v in state.items() if k not in bad}, strict=False)
    if missing or unexpected or shape:
        log.warning(
            "partial load from %s: %d missing, %d unexpected, %d reshaped keys skipped",
            path,
            len(missing),
            len(unexpected),
            len(shape),
        )


def load_model_from_checkpoint(
    path: str | os.PathLike, map_location: Any = "cpu", model_config: Mapping[str, Any] | None = None
) -> nn.Module:
    """Rebuild the network stored by :class:`OVSNetModule` and load its weights (strict), in eval mode."""
    _, hparams = _read_state_dict(path, map_location)
    config = model_config if model_config is not None else hparams.get("model_config")
    if config is None:
        raise ValueError(f"checkpoint {path} stores no model_config; pass model_config=... explicitly")
    model = build_model(config)
    load_weights(model, path, strict=True)
    # inference settings calibrated for this model (e.g. rho_reid for its embedding scale) travel with it
    model.inference_settings = dict(hparams.get("inference_settings") or {})
    return model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu").eval()


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
        model: the network (``forward(images, targets) -> loss dict`` and ``group_losses``); built from
            ``model_config`` (``build_ovsnet`` kwargs) when ``None``.
        optimizer / scheduler: ``functools.partial`` factories (Hydra ``_partial_: true``) finished here.
        base_batch_size: the learning rate is scaled by ``global batch / base_batch_size`` (paper: lr 0.04
            for 32 images); ``None`` disables scaling.
        warmup_steps / warmup_factor: linear warm-up from ``warmup_factor × lr``, chained with ``scheduler``.
        init_checkpoint: weights to start from (previous stage); keys of new heads or another class count
            are skipped (``strict_init=False``).
        inference_settings: cascade values calibrated for this model (``CascadeConfig`` fields, e.g.
            ``rho_reid`` for its embedding scale); stored in the checkpoint and used by evaluate.py, the video
            CLI and ``VideoSegmenter`` unless a user overrides them.
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
        inference_settings = _plain(inference_settings)
        model_config = _plain(model_config)
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
        group = getattr(self.model, "group_losses", None)
        if group is not None:
            return dict(group(loss_dict, lambda_refine=self.lambda_refine))
        zero = next(iter(loss_dict.values())).new_zeros(())
        g = {
            "mask": loss_dict.get("loss_mask", zero),
            "loc": loss_dict.get("loss_box_reg", zero) + loss_dict.get("loss_rpn_box_reg", zero),
            "cls": loss_dict.get("loss_classifier", zero) + loss_dict.get("loss_objectness", zero),
            "reid": loss_dict.get("loss_reid", zero),
            "refine": loss_dict.get("loss_refine", zero),
        }
        g["total"] = g["mask"] + g["loc"] + g["cls"] + g["reid"] + self.lambda_refine * g["refine"]
        return g

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
            optimizer = self.optimizer_factory(params=params)
        scale = self._lr_scale()
        for group in optimizer.param_groups:
            group["lr"] *= scale
        log.info("learning rate %.5g (batch scaling x%.3g)", optimizer.param_groups[0]["lr"], scale)
        schedulers = []
        if self.scheduler_factory is not None:
            schedulers.append(
                {
                    "scheduler": self.scheduler_factory(optimizer=optimizer),
                    "interval": self.hparams.scheduler_interval,
                    "name": "lr/main",
                }
            )
        if self.hparams.warmup_steps and self.hparams.warmup_steps > 0:
            warm = torch.optim.lr_scheduler.LinearLR(
                optimizer,
                start_factor=self.hparams.warmup_factor,
                end_factor=1.0,
                total_iters=self.hparams.warmup_steps,
            )
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
