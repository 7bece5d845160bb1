"""Typed config schemas for the trainer, model and data groups, registered in Hydra's ConfigStore on import.

Import this module before composing (``train.py``, ``evaluate.py`` and ``ovsnet.training`` do): the group files
name their schema in their defaults list, and Hydra finds it only once it is registered. The import is light:
the schemas are read from source files, nothing from torch or Lightning is imported.
"""

from __future__ import annotations

from ovsnet.schemas.registry import SCHEMAS, build_schemas, register, schema_of_target

__all__ = ["SCHEMAS", "build_schemas", "register", "schema_of_target"]

register()
