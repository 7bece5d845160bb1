"""Structured-config schemas of the groups users edit most (trainer, model, data) in Hydra's ConfigStore.

Each schema is a dataclass made from the signature of the class its group instantiates, so a value of the wrong
type (``trainer.max_steps=abc``) fails while Hydra composes the config, with OmegaConf's message naming the full
key, instead of seconds later deep inside Lightning or the network. The group files pull their schema in
through their defaults list (``- /schema/trainer/lightning@_here_``); a key the code does not take is refused
as before. Every schema field carries the code's own default, so a composed config means what it meant without
the schema (with ``PL_TRAINER_*`` environment defaults shadowed by the explicit values, as for any YAML key).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

from ovsnet.schemas.signatures import Parameter, read_parameters

__all__ = ["MODEL_CONFIG_WIDENED", "SCHEMAS", "build_schemas", "register", "schema_of_target"]

TRAINER_TARGET = "pytorch_lightning.Trainer"
MODULE_TARGET = "ovsnet.lightning.module.OVSNetModule"
DATAMODULE_TARGETS = {
    "DAVISDataConfig": "ovsnet.lightning.datamodules.DAVISDataModule",
    "COCODataConfig": "ovsnet.lightning.datamodules.COCODataModule",
}
# (ConfigStore group, option name) -> dataclass name; group files use `- /<group>/<name>@_here_`
SCHEMAS: dict[tuple[str, str], str] = {
    ("schema/trainer", "lightning"): "TrainerConfig",
    ("schema/model", "ovsnet"): "OVSNetModuleConfig",
    ("schema/data", "davis"): "DAVISDataConfig",
    ("schema/data", "coco"): "COCODataConfig",
}
# build_ovsnet's keyword arguments that its annotation states too narrowly for the values it accepts
MODEL_CONFIG_WIDENED: dict[str, Any] = {
    # a list is multi-scale training (conf/experiment/coco_pretrain.yaml): torchvision's transform takes both
    "min_size": Any,
}


def _field(default: Any) -> Any:
    """A dataclass field; containers get a factory (a dataclass may not share one mutable default)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=functools.partial(copy.deepcopy, default))
    return dataclasses.field(default=default)


def make_schema(
    name: str,
    target: str,
    parameters: Iterable[Parameter],
    types: Mapping[str, Any] | None = None,
    with_target: bool = True,
) -> type:
    """A dataclass with one typed field per parameter (``types`` replaces a field's type), led by ``_target_``
    unless the node holds plain keyword arguments (``with_target=False``: Hydra must not instantiate it)."""
    types = types or {}
    fields = [("_target_", str, _field(target))] if with_target else []
    fields += [(p.name, types.get(p.name, p.type), _field(p.default)) for p in parameters]
    schema = dataclasses.make_dataclass(name, fields)
    schema.__module__ = __name__  # pickled by reference (multirun launchers), found by __getattr__ below
    schema.__doc__ = f"Keyword arguments of ``{target}``, typed from its signature."
    return schema


def _init_parameters(target: str) -> list[Parameter]:
    """The ``__init__`` parameters of the class at dotted path ``target``."""
    module, cls = target.rsplit(".", 1)
    return read_parameters(module, f"{cls}.__init__")


def _model_config_parameters() -> list[Parameter]:
    """``build_ovsnet``'s own parameters, then those its ``**detector_kwargs`` forward to ``build_maskrcnn``."""
    own = read_parameters("ovsnet.models.ovsnet", "build_ovsnet")
    names = {p.name for p in own}
    forwarded = [
        p for p in read_parameters("ovsnet.models.detector", "build_maskrcnn") if p.name not in names
    ]
    return own + forwarded


@functools.cache
def build_schemas() -> dict[str, type]:
    """Every schema by dataclass name, read from the current source of the code it describes."""
    model_config = make_schema(
        "ModelBuildConfig",
        "ovsnet.models.build_ovsnet",
        _model_config_parameters(),
        MODEL_CONFIG_WIDENED,
        with_target=False,
    )
    module = make_schema(
        "OVSNetModuleConfig",
        MODULE_TARGET,
        _init_parameters(MODULE_TARGET),
        {"model_config": Optional[model_config]},  # noqa: UP045 (OmegaConf 2.3 needs typing.Optional)
    )
    # pytorch_lightning.Trainer is re-exported: its class lives in pytorch_lightning.trainer.trainer
    trainer = make_schema(
        "TrainerConfig",
        TRAINER_TARGET,
        read_parameters("pytorch_lightning.trainer.trainer", "Trainer.__init__"),
    )
    data = [
        make_schema(name, target, _init_parameters(target)) for name, target in DATAMODULE_TARGETS.items()
    ]
    return {schema.__name__: schema for schema in (model_config, module, trainer, *data)}


def schema_of_target(target: str) -> type:
    """The schema whose ``_target_`` default is ``target`` (tests: which schema a group file should carry)."""
    for schema in build_schemas().values():
        field = schema.__dataclass_fields__.get("_target_")
        if field is not None and field.default == target:
            return schema
    raise KeyError(f"no schema for {target!r}")


def register() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent; run on ``import ovsnet.schemas``)."""
    store = ConfigStore.instance()
    schemas = build_schemas()
    for (group, name), schema_name in SCHEMAS.items():
        store.store(group=group, name=name, node=schemas[schema_name], provider="ovsnet")


def __getattr__(name: str) -> type:
    """``ovsnet.schemas.registry.TrainerConfig`` etc.: how pickle finds a composed config's node type."""
    schemas = build_schemas()
    if name in schemas:
        return schemas[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
