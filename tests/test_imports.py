"""The import graph of the project, read from the source with `ast`: no circles, and `layered` stands alone.

Every import counts, lazy ones inside functions included, and so does `importlib.import_module("literal")`;
only imports under `if TYPE_CHECKING:` (never run) are left out. The one way from `layered` to `psd_pipeline`
or `training` is the CLI's dispatch of `layered psd` and `layered train` (`layered/cli.py`); there the target is
a module name in a table, so any string constant in `layered` that names a module of those packages counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("layered", "psd_pipeline", "training")
DISPATCH = "layered.cli"  # the only module of `layered` that may reach the other two packages


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    """Every module of the three packages: dotted name -> file."""
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST):
    """Every node, except the bodies of `if TYPE_CHECKING:` blocks (their `else` still runs)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _absolute(name: str, node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return name
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, name] if name else base)


def imported_names(path: Path, module: str, modules: dict | frozenset = frozenset()) -> list[tuple[str, int]]:
    """(dotted name, line) of every module `path` imports, at module level or lazily, in source order.

    `from a import b` imports the module a.b when that is one of `modules`, else names from a (`a`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module or "", node, module, path.name == "__init__.py")
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.append((name if name in modules else base, node.lineno))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, node.lineno))
    return sorted(set(found), key=lambda item: (item[1], found.index(item)))


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {project module it imports: first line}."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        for name, line in imported_names(path, module, modules):
            if name in modules and name != module:
                edges.setdefault(name, line)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    """The edges inside one circle, with the line of each import: 'a:12 -> b'."""
    inside = set(component)
    return "; ".join(
        f"{source}:{line} -> {target}"
        for source in component
        for target, line in sorted(graph[source].items())
        if target in inside
    )


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, int]]:
    return import_graph(project_modules())


def test_the_reader_sees_lazy_and_module_level_imports(tmp_path):
    source = tmp_path / "x.py"
    source.write_text(
        "import importlib\nfrom typing import TYPE_CHECKING\nimport a.b\nfrom c import d\n"
        "if TYPE_CHECKING:\n    import never\nelse:\n    import runs\n"
        "def f():\n    from e.f import g\n    importlib.import_module('h.i')\n"
    )
    names = [name for name, _ in imported_names(source, "x", {"c.d"})]
    assert names == ["importlib", "typing", "a.b", "c.d", "runs", "e.f", "h.i"]


def test_a_circle_is_found():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert describe(["a", "b", "c"], graph) == "a:1 -> b; b:2 -> c; c:3 -> a"


def test_every_project_module_is_read(graph):
    assert {"layered.cli", "layered.decompose", "psd_pipeline.cli", "training.cli", "training.loop"} <= set(graph)
    assert "layered.limits" in graph["layered.decompose"]  # the vocabulary comes from the leaf
    assert "layered.classic" in graph["layered.decompose"]  # a lazy import, inside a function


def test_no_import_circle(graph):
    found = cycles(graph)
    assert not found, "import circles: " + " | ".join(describe(c, graph) for c in found)


def test_the_vocabulary_is_a_leaf(graph):
    assert set(graph["layered.limits"]) <= {"layered.errors"}


def test_layered_reaches_the_other_packages_only_through_the_cli_dispatch():
    modules = project_modules()
    others = {name for name in modules if name.split(".")[0] in PACKAGES[1:]} | set(PACKAGES[1:])
    reached = []
    for module, path in modules.items():
        if module.split(".")[0] != "layered" or module == DISPATCH:
            continue
        names = [
            (name, line) for name, line in imported_names(path, module, modules) if name.split(".")[0] in PACKAGES[1:]
        ]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names += [
            (node.value, node.lineno)
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in others
        ]
        reached += [f"{module}:{line} -> {name}" for name, line in names]
    assert not reached, "layered reaches psd_pipeline/training outside the CLI's dispatch: " + "; ".join(reached)
