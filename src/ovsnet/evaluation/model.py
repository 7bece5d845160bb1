"""The network an evaluation runs: an ``OVSNetModule`` checkpoint through :mod:`ovsnet.models.loading`.

The last model stays loaded (keyed by file, mtime, device and build settings) so the jobs of an
inference-time sweep in one process (Hydra's basic launcher) read the checkpoint once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from ovsnet.data.io import DataError
from ovsnet.models.checkpoint import CheckpointError, read_hyperparameters
from ovsnet.models.loading import build_model, load_model
from ovsnet.utils import plain

__all__ = ["cached_model", "check_model_source", "load_model_from_config"]

log = logging.getLogger(__name__)

_MODEL_CACHE: dict[tuple, torch.nn.Module] = {}


def _stored_model_config(path: Path, trust: bool = False) -> dict[str, Any]:
    config = read_hyperparameters(path, trust=trust).get("model_config")
    if config is None:
        raise CheckpointError(f"checkpoint {path} stores no model_config; set model_config=... explicitly")
    return dict(config)


def check_model_source(cfg: Mapping[str, Any] | DictConfig) -> None:
    """Fail fast, before any data is read, when neither a checkpoint file nor a random-init config is given."""
    ckpt = cfg.get("ckpt_path")
    if ckpt is None:
        if not (cfg.get("random_init") and cfg.get("model_config") is not None):
            raise DataError("ckpt_path is required: python evaluate.py ckpt_path=<OVSNetModule checkpoint>")
    elif not Path(str(ckpt)).expanduser().is_file():
        raise CheckpointError(f"ckpt_path={ckpt}: checkpoint file not found")


def cached_model(
    ckpt_path: str | os.PathLike | None,
    device: torch.device | str = "cpu",
    model_config: Mapping[str, Any] | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    random_init: bool = False,
    cache: bool = True,
    trust: bool = False,
) -> torch.nn.Module:
    """The network of an :class:`~ovsnet.lightning.module.OVSNetModule` checkpoint, in eval mode.

    ``model_config`` replaces the build kwargs stored in the checkpoint; ``model_overrides`` updates them
    (e.g. the test-time ``min_size``). ``random_init=True`` with ``ckpt_path=None`` builds random weights
    from ``model_config`` (tests and smoke runs only). The checkpoint loads with ``weights_only=True``
    unless ``trust=True``.
    """
    device = torch.device(device)
    config = dict(plain(model_config)) if model_config is not None else None
    overrides = dict(plain(model_overrides) or {})
    if ckpt_path is None:
        if not random_init or config is None:
            raise DataError(
                "ckpt_path is required: set ckpt_path=<OVSNetModule checkpoint> "
                "(random_init=true with a model_config builds random weights, for tests only)"
            )
        log.warning("no checkpoint: evaluating a randomly initialised model (random_init=true)")
        return build_model({**config, **overrides}).to(device).eval()
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={ckpt_path}: checkpoint file not found")
    if overrides:
        config = {**(config or _stored_model_config(path, trust)), **overrides}
    key = (
        str(path.resolve()),
        path.stat().st_mtime_ns,
        str(device),
        json.dumps(config, sort_keys=True, default=str),
        trust,
    )
    if cache and key in _MODEL_CACHE:
        log.info("reusing the loaded model of %s", path)
        return _MODEL_CACHE[key]
    _MODEL_CACHE.clear()
    model = load_model(path, map_location=device, model_config=config, trust=trust)
    if cache:
        _MODEL_CACHE[key] = model
    log.info("loaded %s on %s", path, device)
    return model


def load_model_from_config(
    cfg: Mapping[str, Any] | DictConfig, device: torch.device | str
) -> torch.nn.Module:
    """:func:`cached_model` with the ``ckpt_path`` / ``model_config`` / ``model_overrides`` / ``random_init`` /
    ``trust_checkpoint`` keys of an evaluate.yaml config."""
    return cached_model(
        cfg.get("ckpt_path"),
        device,
        cfg.get("model_config"),
        cfg.get("model_overrides"),
        bool(cfg.get("random_init", False)),
        trust=bool(cfg.get("trust_checkpoint", False)),
    )
