"""The packages' module graphs: no module imports one that imports it back.

The graph is read from the source with ``ast``, function-level (lazy) imports included, so
a lazy import cannot hide a cycle. Imports under ``if TYPE_CHECKING:`` never run; they are
checked too, separately, so that no module needs one back even to name a type. A subpackage
(``publisher_core.testing``) is one node.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGES = ["publisher_core", "publisher_local", "publisher_s3"]


def _in_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``node`` lies in an ``if TYPE_CHECKING:`` block (never run)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _node(package: str, module: str, modules: set[str]) -> str | None:
    """The graph node ``module`` (dotted, absolute) stands for, if it is in ``package``."""
    head, _, rest = module.partition(".")
    if head != package:
        return None
    first = rest.split(".")[0]
    return first if first in modules else "__init__" if not rest else None


def imports(package: str, *, type_checking: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules it imports when run (and for type checking, if asked)."""
    root = Path(importlib.import_module(package).__file__ or "").parent
    files = {p.stem: p for p in root.glob("*.py")}
    files.update({p.parent.name: p for p in root.glob("*/__init__.py")})
    subpackages = {p.parent.name for p in root.glob("*/__init__.py")}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in sorted(files.items()):
        sources = sorted(path.parent.glob("*.py")) if name in subpackages else [path]
        found: set[str] = set()
        for source in sources:
            tree = ast.parse(source.read_text(encoding="utf-8"))
            parents = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
            inside = [package, name] if name in subpackages else [package]
            for node in ast.walk(tree):
                if not type_checking and _in_type_checking(node, parents):
                    continue
                targets: list[str] = []
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = inside[: len(inside) - node.level + 1] if node.level else []
                    module = ".".join([*base, *([node.module] if node.module else [])])
                    named = [f"{module}.{alias.name}" for alias in node.names]
                    submodules = [t for t in named if _node(package, t, modules) != "__init__"]
                    if module == package and all(
                        _node(package, t, modules) is not None for t in named
                    ):
                        targets = submodules  # ``from . import hookspecs``: the modules
                    else:
                        targets = [module, *named]
                for target in targets:
                    hit = _node(package, target, modules)
                    if hit is not None:
                        found.add(hit)
        graph[name] = found - {name}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that returns to its start, or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_lazy_and_subpackage_imports():
    """Imports inside functions count, and a subpackage's relative imports resolve."""
    s3 = imports("publisher_s3")
    assert {"_directory", "_archive", "_upload"} <= s3["_plugin"]
    assert "_directory" in s3["_helper_main"]
    core = imports("publisher_core")
    assert "_api" in core["__init__"]
    assert "_hookspecs" not in core and "hookspecs" in core["_registry"]
    assert "__init__" not in core["_registry"]  # ``from . import hookspecs`` is the module
    assert "_api" in core["testing"]  # ``from .._api import ...`` in the subpackage


def test_a_cycle_is_found():
    """The cycle finder finds a cycle of three, and none in a chain."""
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package: str):
    """No module imports one that imports it back, directly or not."""
    found = cycle(imports(package))
    assert found is None, " -> ".join(found or [])


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_even_for_type_checking(package: str):
    """No module names a type of one that imports it, under ``if TYPE_CHECKING:`` either."""
    found = cycle(imports(package, type_checking=True))
    assert found is None, " -> ".join(found or [])


def test_type_checking_imports_are_seen_when_asked():
    """``_attributes`` names ``_spec``'s classes for type checking only."""
    assert "_spec" not in imports("publisher_s3")["_attributes"]
    assert "_spec" in imports("publisher_s3", type_checking=True)["_attributes"]
