"""The Hydra schema of ``conf/inference``: :class:`InferenceConfig` (the settings' sections, the preset's ``name``
and its ``flow``), registered in Hydra's ConfigStore as ``schema/inference/cascade`` with DIS flow's settings as
``schema/inference/flow/dis``.

Every preset starts from it, so a wrong type (``inference.reid.rho=abc``) or an unknown key fails when the
config is composed, naming the key. It lives in the inference layer (beside the settings it types) so that
composing a config (:func:`ovsnet.hydra_utils.compose_config`) registers it without importing the evaluation.
"""

from __future__ import annotations

import inspect
from dataclasses import field, make_dataclass
from typing import Any

from hydra.core.config_store import ConfigStore

from ovsnet.inference.flow import DISFlow
from ovsnet.inference.settings import FLAT_KEYS, SECTIONS, InferenceSettings

__all__ = ["DEFAULT_FLOW", "InferenceConfig", "estimator_schema", "register_configs"]

DEFAULT_FLOW: dict[str, Any] = {"_target_": "ovsnet.inference.flow.DISFlow"}


def _default_flow() -> dict[str, Any]:
    return dict(DEFAULT_FLOW)


# Schema of ``conf/inference``: the settings' sections, the preset's name, its optical flow
# ({_target_: <estimator class>, **its settings}: conf/inference/flow/*.yaml) and, set to None, each old flat
# name (``rho_reid``), so that a user's ``inference.rho_reid=2.0`` reaches resolve(), which names its new key
# instead of Hydra's bare "not in struct".
InferenceConfig = make_dataclass(
    "InferenceConfig",
    [
        ("name", str, field(default="full")),
        ("flow", dict[str, Any], field(default_factory=_default_flow)),
        *((flat, Any, field(default=None)) for flat in FLAT_KEYS if flat not in SECTIONS),
    ],
    bases=(InferenceSettings,),
)
InferenceConfig.__module__ = __name__
InferenceConfig.__doc__ = "Schema of ``conf/inference``: the inference settings, the preset's name and flow."


def estimator_schema(cls: type) -> type:
    """A structured config of an estimator: its ``_target_`` and its constructor's defaults, so a
    ``conf/inference/flow`` option that extends it repeats no default (they stay written once, in the class)
    and ``inference.flow.<argument>=...`` overrides any of them."""
    fields: list[Any] = [("_target_", str, field(default=f"{cls.__module__}.{cls.__qualname__}"))]
    for param in inspect.signature(cls).parameters.values():
        if param.default is not inspect.Parameter.empty:
            fields.append((param.name, Any, field(default=param.default)))
    return make_dataclass(f"{cls.__name__}Config", fields)


def register_configs() -> None:
    """Store :class:`InferenceConfig` as ``schema/inference/cascade``, the base of every ``conf/inference``
    preset, and DIS flow's settings as ``schema/inference/flow/dis`` (idempotent; runs when this module is
    imported, which ``import ovsnet.evaluation`` does)."""
    store = ConfigStore.instance()
    store.store(group="schema/inference", name="cascade", node=InferenceConfig, provider="ovsnet")
    store.store(group="schema/inference/flow", name="dis", node=estimator_schema(DISFlow), provider="ovsnet")


register_configs()
