"""Build the network a checkpoint stores: the ``OVSNetModule`` model rebuilt from its ``model_config``.

Building is kept apart from reading (:mod:`ovsnet.models.checkpoint`): this module imports the model
(``ovsnet.models.ovsnet`` → ``detector``), and the detector reads checkpoints, so the two in one module made
an import circle. Inference settings a checkpoint stores are not put on the model: read them with
:func:`ovsnet.inference.settings.checkpoint_settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ovsnet.models.checkpoint import (
    TRUST_FLAG,
    CheckpointError,
    first_line,
    hyperparameters_of,
    load_checkpoint,
    load_state,
    plain_hyperparameter,
    state_dict_of,
    strip_prefix,
)
from ovsnet.models.ovsnet import build_ovsnet

__all__ = ["build_model", "load_model"]


def build_model(model_config: Mapping[str, Any]) -> nn.Module:
    """Build the network from its keyword arguments (``ovsnet.models.build_ovsnet``)."""
    return build_ovsnet(**dict(model_config))


def load_model(
    path: str | os.PathLike,
    map_location: Any = "cpu",
    model_config: Mapping[str, Any] | None = None,
    *,
    trust: bool = False,
    trust_flag: str = TRUST_FLAG,
) -> nn.Module:
    """Rebuild the network stored by ``OVSNetModule`` and load its weights (strict), in eval mode.

    ``model_config`` replaces the build kwargs stored in the checkpoint.
    """
    file = Path(path).expanduser()
    obj = load_checkpoint(file, "cpu", trust=trust, mmap=True, trust_flag=trust_flag)
    state = strip_prefix(state_dict_of(obj, file))
    hparams = hyperparameters_of(obj)
    config = plain_hyperparameter(model_config) if model_config is not None else hparams.get("model_config")
    if config is None:
        raise CheckpointError(f"checkpoint {file} stores no model_config; pass model_config=... explicitly")
    if not isinstance(config, Mapping):
        raise CheckpointError(
            f"checkpoint {file}: model_config must be a mapping, got {type(config).__name__}"
        )
    try:
        model = build_model(config)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"checkpoint {file}: model_config does not build an OVS-Net ({first_line(exc)})"
        ) from exc
    load_state(model, state, file, strict=True)
    return model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu").eval()
