"""Inference settings of an ``evaluate.yaml`` run: the preset (``conf/inference/*.yaml``, typed by
:class:`~ovsnet.inference.schema.InferenceConfig`, re-exported here), the checkpoint's stored settings and
the user's command-line ``inference.*`` keys, merged by :func:`~ovsnet.inference.settings.resolve`
(preset < checkpoint < the keys set on the command line); and the preset's optical flow (:func:`make_flow`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig

from ovsnet.inference.flow import FlowEstimator
from ovsnet.inference.schema import DEFAULT_FLOW, InferenceConfig, estimator_schema, register_configs
from ovsnet.inference.settings import InferenceSettings, checkpoint_settings, resolve
from ovsnet.utils import job_overrides, plain

__all__ = [
    "DEFAULT_FLOW",
    "InferenceConfig",
    "estimator_schema",
    "explicit_inference_keys",
    "make_flow",
    "register_configs",
    "resolved_inference_settings",
]

log = logging.getLogger(__name__)


def make_flow(flow: Mapping[str, Any] | None = None) -> FlowEstimator:
    """The estimator an ``inference.flow`` node describes (``{_target_: ..., **settings}``, instantiated by
    Hydra); ``None``: the default DIS flow."""
    return instantiate(dict(plain(flow) or DEFAULT_FLOW))


def explicit_inference_keys(overrides: Sequence[str]) -> set[str]:
    """The ``inference.*`` keys a user set on the command line, dotted below ``inference``
    (``inference.reid.rho=2.0`` → ``reid.rho``)."""
    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    prefix = "inference."
    return {
        o.key_or_group.lstrip("+~")[len(prefix) :]
        for o in parsed
        if o.key_or_group.lstrip("+~").startswith(prefix)
    }


def _explicit_values(preset: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The preset node's values of the keys the user set (Hydra has merged them into it); a deleted key
    (``~inference.reid.rho``) is left to the lower layers."""
    values = {}
    for key in keys:
        node: Any = preset
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            values[key] = node
    return values


def resolved_inference_settings(cfg: DictConfig) -> InferenceSettings:
    """The settings of an evaluate.yaml run: the checkpoint's stored settings over the inference preset, the
    user's command-line ``inference.*`` values over both (:func:`~ovsnet.inference.settings.resolve`)."""
    stored = checkpoint_settings(cfg.get("ckpt_path"), trust=bool(cfg.get("trust_checkpoint", False)))
    preset = dict(plain(cfg.get("inference")) or {})
    explicit = sorted(
        k for k in explicit_inference_keys(job_overrides()) if k.split(".")[0] not in ("name", "flow")
    )
    if stored:
        log.info("inference settings from the checkpoint: %s (overridden here: %s)", stored, explicit)
    return resolve(preset, stored, _explicit_values(preset, explicit))
