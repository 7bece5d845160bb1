"""Inference settings as a typed Hydra config: ``conf/inference/*.yaml`` on the :class:`InferenceConfig` schema.

The schema is :class:`~ovsnet.inference.cascade.CascadeConfig` plus the preset's ``name`` and its ``flow``
(an option of the ``inference/flow`` group: a ``_target_`` estimator Hydra instantiates), registered in
Hydra's ConfigStore as ``schema/inference/cascade``; every preset starts from it, so a wrong type (``inference.rho_reid=abc``) or an
unknown key fails when the config is composed, naming the key. A checkpoint's stored
``inference_settings`` (calibrated for its model) replace the preset's values, except the keys the user
set on the command line.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig

from ovsnet.inference.cascade import CascadeConfig
from ovsnet.inference.flow import FlowEstimator
from ovsnet.models.checkpoint import read_hyperparameters
from ovsnet.utils import job_overrides, plain

__all__ = [
    "DEFAULT_FLOW",
    "InferenceConfig",
    "cascade_config",
    "explicit_inference_keys",
    "make_flow",
    "register_configs",
    "stored_inference_settings",
]

log = logging.getLogger(__name__)

_CASCADE_FIELDS = frozenset(f.name for f in dataclasses.fields(CascadeConfig))


DEFAULT_FLOW: dict[str, Any] = {"_target_": "ovsnet.inference.flow.DISFlow"}


def _default_flow() -> dict[str, Any]:
    return dict(DEFAULT_FLOW)


@dataclass
class InferenceConfig(CascadeConfig):
    """Schema of ``conf/inference``: the cascade's fields, the preset's name and its optical flow."""

    name: str = "full"
    # the optical flow estimator: {_target_: <estimator class>, **its settings} (conf/inference/flow/*.yaml)
    flow: dict[str, Any] = field(default_factory=_default_flow)


def register_configs() -> None:
    """Store :class:`InferenceConfig` as ``schema/inference/cascade``, the base of every ``conf/inference``
    preset (idempotent; runs when this module is imported, which ``import ovsnet.evaluation`` does)."""
    ConfigStore.instance().store(
        group="schema/inference", name="cascade", node=InferenceConfig, provider="ovsnet"
    )


def make_flow(flow: Mapping[str, Any] | None = None) -> FlowEstimator:
    """The estimator an ``inference.flow`` node describes (``{_target_: ..., **settings}``, instantiated by
    Hydra); ``None``: the default DIS flow."""
    return instantiate(dict(plain(flow) or DEFAULT_FLOW))


def _validated(values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - _CASCADE_FIELDS)
    if unknown:
        raise ValueError(
            f"inference settings: unknown key(s) {unknown}; CascadeConfig fields are {sorted(_CASCADE_FIELDS)}"
        )
    return dict(values)


def cascade_config(
    inference: Mapping[str, Any] | None,
    stored: Mapping[str, Any] | None = None,
    explicit: set[str] | frozenset[str] = frozenset(),
) -> CascadeConfig:
    """An ``inference`` config node → :class:`CascadeConfig` (its ``name`` and ``flow`` left aside).

    ``stored``: the settings a checkpoint carries; they replace the config's values except the keys in
    ``explicit`` (set by the user on the command line). An unknown key in either is an error naming it.
    """
    values = {k: v for k, v in dict(plain(inference) or {}).items() if k not in ("name", "flow")}
    values.update({k: v for k, v in _validated(stored or {}).items() if k not in explicit})
    return CascadeConfig(**_validated(values))


def explicit_inference_keys(overrides: Sequence[str]) -> set[str]:
    """The ``inference.<key>`` values a user set on the command line (``inference.rho_reid=2.0``)."""
    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    keys = set()
    for override in parsed:
        name = override.key_or_group
        if name.startswith("inference."):
            keys.add(name[len("inference.") :].split(".", 1)[0])
    return keys


def stored_inference_settings(ckpt_path: str | os.PathLike | None, trust: bool = False) -> dict[str, Any]:
    """The inference settings a checkpoint carries (``OVSNetModule(inference_settings=...)``), else {}."""
    if not ckpt_path or not Path(str(ckpt_path)).expanduser().is_file():
        return {}
    hparams = read_hyperparameters(Path(str(ckpt_path)).expanduser(), trust=trust)
    return dict(hparams.get("inference_settings") or {})


def resolved_cascade_config(cfg: DictConfig) -> CascadeConfig:
    """The cascade of an evaluate.yaml run: the checkpoint's stored settings over the inference preset, the
    user's command-line ``inference.*`` overrides over both."""
    stored = stored_inference_settings(cfg.get("ckpt_path"), trust=bool(cfg.get("trust_checkpoint", False)))
    explicit = explicit_inference_keys(job_overrides())
    if stored:
        log.info("inference settings from the checkpoint: %s (overridden here: %s)", stored, sorted(explicit))
    return cascade_config(cfg.get("inference"), stored, explicit)


register_configs()
