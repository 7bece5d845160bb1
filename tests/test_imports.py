"""The module structure of ``src/ovsnet``: imports point down the layers of docs/architecture.md, no modules
import each other in a circle, and no module outgrows 500 lines.

Imports are read with ``ast`` (nothing is imported), at any depth: a lazy import inside a function is as much
a dependency as one at the top. Importing ``ovsnet.a.b.c`` also runs the ``__init__`` of ``ovsnet.a`` and
``ovsnet.a.b``, so those count as imported too (unless they enclose the importing module itself).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "ovsnet"
MAX_LINES = 500

# docs/architecture.md: entry points → training, evaluation, lightning → inference → models → data, metrics,
# utils. Higher ranks may import lower ones and their own rank, never higher ones.
LAYERS: dict[str, float] = {
    # entry points
    "cli": 5,
    "demo": 5,
    "export": 5,
    # the jobs
    "training": 4,
    "evaluation": 4,
    "lightning": 4,
    # helpers of the entry points and the jobs, below them (composing a config imports no Lightning)
    "hydra_utils": 3.5,
    "wandb_utils": 3.5,
    # inference, and the model-free trackers it scores beside the model
    "inference": 3,
    "baselines": 3,
    # plain PyTorch networks
    "models": 2,
    # data and what only reads it
    "data": 1,
    "metrics": 1,
    "utils": 1,
    "utils_logging": 1,
    "viz": 1,
    "errors": 1,
    "schemas": 1,
}
# same-rank imports the architecture rules out
FORBIDDEN: set[tuple[str, str]] = {
    ("evaluation", "lightning"),  # evaluation runs without Lightning
    ("lightning", "evaluation"),  # the validation callback imports inference, models, data, metrics only
    ("evaluation", "training"),
    ("lightning", "training"),
}
# packages whose modules import no Lightning at all (docs/architecture.md)
NO_LIGHTNING = ("data", "metrics", "models", "inference")
LIGHTNING_PACKAGES = ("pytorch_lightning", "lightning")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _statements(path: Path) -> Iterable[ast.Import | ast.ImportFrom]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return (node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]  # below the root package "ovsnet"


@cache
def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]], list[str]]:
    """``(edges, third_party, unknown)``: ovsnet modules each module imports (with the packages whose
    ``__init__`` that runs), the top-level third-party names it imports, and ovsnet imports naming no module."""
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    third_party: dict[str, set[str]] = {name: set() for name in known}
    unknown: list[str] = []
    for module, path in known.items():
        targets: set[str] = set()
        for node in _statements(path):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
                modules_named = names
            else:
                prefix = _absolute(module, path, node)
                names = [prefix]
                # ``from package import module`` imports the module; ``from module import name`` a name
                modules_named = [prefix, *(f"{prefix}.{alias.name}" for alias in node.names)]
            for name in names:
                top = name.split(".")[0]
                if top != "ovsnet":
                    third_party[module].add(top)
                elif name not in known:
                    unknown.append(f"{module} imports {name}, which is no module of src/ovsnet")
            targets.update(name for name in modules_named if name in known)
        own = set(_ancestors(module)) | {module}
        for target in list(targets):
            targets.update(a for a in _ancestors(target) if a not in own and a in known)
        targets -= own
        edges[module] = {t for t in targets if t != "ovsnet"}
    return edges, third_party, unknown


def _layer(name: str) -> str:
    return name.split(".")[1]


def strongly_connected(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of the graph, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def test_every_top_level_module_has_a_layer() -> None:
    tops = {_layer(name) for name in modules() if name != "ovsnet"}
    missing = sorted(tops - set(LAYERS))
    assert not missing, f"add {missing} to LAYERS (docs/architecture.md says where they belong)"


def test_imports_name_existing_modules() -> None:
    _, _, unknown = import_graph()
    assert not unknown, "\n".join(unknown)


def test_imports_point_down_the_layers() -> None:
    edges, third_party, _ = import_graph()
    violations = []
    for module, targets in sorted(edges.items()):
        if module == "ovsnet":
            continue
        source = _layer(module)
        for target in sorted(targets):
            dest = _layer(target)
            if dest == source:
                continue
            if LAYERS.get(dest, 0) > LAYERS.get(source, 0) or (source, dest) in FORBIDDEN:
                violations.append(f"{module} ({source}) imports {target} ({dest})")
        if source in NO_LIGHTNING and third_party[module] & set(LIGHTNING_PACKAGES):
            violations.append(f"{module} ({source}) imports Lightning")
    assert not violations, "imports against the layers:\n" + "\n".join(violations)


def test_no_modules_import_each_other_in_a_circle() -> None:
    edges, _, _ = import_graph()
    circles = [c for c in strongly_connected(edges) if len(c) > 1]
    assert not circles, "modules importing each other:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_the_checks_catch_what_they_are_for() -> None:
    """The graph helpers on a made-up graph: a circle is one component, a chain is not."""
    circle = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [c for c in strongly_connected(circle) if len(c) > 1] == [["a", "b", "c"]]
    assert all(len(c) == 1 for c in strongly_connected({"a": {"b"}, "b": {"c"}, "c": set()}))
    edges, _, _ = import_graph()
    # a lazy import inside a function counts, and importing a module runs its packages' __init__
    assert "ovsnet.data.io" in edges["ovsnet.metrics.parallel"]
    assert "ovsnet.data.photo_videos" in edges["ovsnet.data.synthetic.writer"]
    assert "ovsnet.inference" in edges["ovsnet.baselines"]


def test_no_module_over_500_lines() -> None:
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"
