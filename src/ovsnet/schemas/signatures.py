"""Keyword parameters of a function or ``__init__``, read from its source with ``ast`` instead of importing it.

The config schemas are derived from the code they configure (``pytorch_lightning.Trainer``, the
LightningModule, the DataModules, ``build_ovsnet``), so they follow it when it changes. Importing those modules
costs seconds (torch, Lightning, torchvision); a wrong value must fail at compose time before any of that, so the
signatures are parsed from the source files instead. Annotations become types OmegaConf can check:
int/float/bool/str, ``Optional``, ``List`` of one of them, ``Dict[str, Any]``; a union OmegaConf cannot express
(``int | float``, ``str | Accelerator``) becomes ``Any`` so every value the code accepts stays allowed.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

# OmegaConf 2.3 checks typing's Optional/List/Dict, not PEP 604 unions or PEP 585 generics
from typing import Any, Dict, List, Optional  # noqa: UP035

from omegaconf import MISSING

__all__ = ["Parameter", "SignatureError", "annotation_type", "read_parameters", "source_path"]

_SCALARS: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}
# paths are written as strings in YAML; a str field keeps them checked without rejecting a valid value
_PATH_NAMES = {"Path", "PathLike", "os.PathLike", "pathlib.Path", "StrPath", "_PATH"}  # _PATH: Lightning
_SEQUENCES = {"list", "List", "Sequence", "tuple", "Tuple", "Iterable", "collections.abc.Sequence"}
_MAPPINGS = {"dict", "Dict", "Mapping", "MutableMapping", "collections.abc.Mapping"}
_UNIONS = {"Optional", "Union", "typing.Optional", "typing.Union"}


class SignatureError(RuntimeError):
    """The source cannot be turned into a schema (a moved class, a default that is not a literal)."""


@dataclass(frozen=True)
class Parameter:
    """One keyword parameter: its name, an OmegaConf-checkable type and its default (``MISSING``: required)."""

    name: str
    type: Any
    default: Any


def source_path(module: str) -> Path:
    """The ``.py`` file of ``module`` found without importing it (only its top-level package is located)."""
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise SignatureError(f"package {top!r} is not installed")
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise SignatureError(f"no source file for module {module!r} under {base.parent}")


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        parent = _dotted(node.value)
        return f"{parent}.{node.attr}" if parent else None
    return None


def _union_members(node: ast.expr) -> list[ast.expr]:
    """``A | B``, ``Optional[A]`` and ``Union[A, B]`` flattened into their members."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union_members(node.left) + _union_members(node.right)
    if isinstance(node, ast.Subscript) and _dotted(node.value) in _UNIONS:
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        members = [m for item in items for m in _union_members(item)]
        if _dotted(node.value).endswith("Optional"):  # type: ignore[union-attr]
            members.append(ast.Constant(None))
        return members
    return [node]


def _is_none(node: ast.expr) -> bool:
    return (isinstance(node, ast.Constant) and node.value is None) or _dotted(node) == "NoneType"


def _element_type(node: ast.expr) -> Any:
    """A container's element: a scalar type, or ``Any`` when it is anything else."""
    element = _member_type(node)
    return element if element in _SCALARS.values() else Any


def _subscript_type(node: ast.Subscript) -> Any:
    name = _dotted(node.value) or ""
    items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    if name in _SEQUENCES:
        elements = [i for i in items if not (isinstance(i, ast.Constant) and i.value is Ellipsis)]
        types = {_element_type(i) for i in elements}
        return List[types.pop()] if len(types) == 1 and Any not in types else Any  # noqa: UP006
    if name in _MAPPINGS:
        return Dict[str, Any]  # noqa: UP006
    if name in {"Literal", "typing.Literal"}:
        kinds = {type(i.value) if isinstance(i, ast.Constant) else object for i in items}
        kind = kinds.pop() if len(kinds) == 1 else None
        return kind if kind in _SCALARS.values() else Any
    return Any


def _member_type(node: ast.expr) -> Any:
    """One non-None member of an annotation → an OmegaConf type (``Any`` when it has none)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a quoted forward reference
        return annotation_type(ast.parse(node.value, mode="eval").body)
    name = _dotted(node)
    if name in _SCALARS:
        return _SCALARS[name]
    if name in _PATH_NAMES:
        return str
    if isinstance(node, ast.Subscript):
        return _subscript_type(node)
    return Any


def annotation_type(node: ast.expr | None) -> Any:
    """The type OmegaConf checks for an annotation: exact where it can be, ``Any`` for a mixed union."""
    if node is None:
        return Any
    members = _union_members(node)
    optional = any(_is_none(m) for m in members)
    types = []
    for member in members:
        if not _is_none(member) and (kind := _member_type(member)) not in types:
            types.append(kind)
    if len(types) != 1 or types[0] is Any:
        return Any
    return Optional[types[0]] if optional else types[0]  # noqa: UP045


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    """Module-level ``NAME = <literal>`` assignments: defaults such as ``TORCHVISION_MASK_HEAD``."""
    constants: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                try:
                    constants[target.id] = ast.literal_eval(value)
                except ValueError:
                    continue
    return constants


def _default(node: ast.expr, constants: dict[str, Any], where: str) -> Any:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        if isinstance(node, ast.Name) and node.id in constants:
            value = constants[node.id]
        else:
            raise SignatureError(f"{where}: default {ast.unparse(node)!r} is not a literal") from None
    return list(value) if isinstance(value, tuple) else value


def _find_function(tree: ast.Module, qualname: str) -> ast.FunctionDef:
    scope: list[ast.stmt] = tree.body
    node: ast.AST | None = None
    for part in qualname.split("."):
        node = next(
            (
                n
                for n in scope
                if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == part
            ),
            None,
        )
        if node is None:
            raise SignatureError(f"{qualname}: {part!r} not found")
        scope = node.body  # type: ignore[attr-defined]
    if not isinstance(node, ast.FunctionDef):
        raise SignatureError(f"{qualname} is not a function")
    return node


def read_parameters(module: str, qualname: str) -> list[Parameter]:
    """The named parameters of ``module.qualname`` (``self``, ``*args`` and ``**kwargs`` left out), in order."""
    where = f"{module}.{qualname}"
    tree = ast.parse(source_path(module).read_text(encoding="utf-8"))
    args = _find_function(tree, qualname).args
    constants = _module_constants(tree)
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = [*zip(positional, defaults, strict=True), *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if qualname.endswith("__init__") and pairs and pairs[0][0].arg == "self":
        pairs = pairs[1:]
    return [
        Parameter(
            arg.arg,
            annotation_type(arg.annotation),
            MISSING if default is None else _default(default, constants, f"{where}({arg.arg})"),
        )
        for arg, default in pairs
    ]
