"""Imports point down: the import graph of src/ckptlint has no cycle, counting imports inside
functions and under ``TYPE_CHECKING``; only front ends and the engine use the plugin manager;
the data layer and the renderers never import the engine.

The graph is read from the source with ``ast`` (nothing is imported): ``import a.b`` and
``from a import b`` (b a module) point at ``a.b``, ``from a import name`` at ``a``, and a string
that is a module's full name (``importlib.import_module``, the built-in plugin list) at that module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ckptlint

SRC = Path(ckptlint.__file__).parent
PACKAGE = "ckptlint"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value \
                    and node.value in files:
                edges.add(node.value)  # imported by name: importlib.import_module, BUILTIN_PLUGINS
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    edges.add(sub if sub in files else target)
        graph[name] = {e for e in edges if e in files and e != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read() -> None:
    g = _graph()
    assert "ckptlint.results" in g["ckptlint.checker"]
    assert "ckptlint.vocab" in g["ckptlint.results"]
    assert "ckptlint.rules.input" in g["ckptlint.plugin.manager"]  # registered by name


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


MANAGER = {"ckptlint.plugin.manager", "ckptlint.plugins"}
MAY_USE_THE_MANAGER = {"ckptlint.cli", "ckptlint.pytest_plugin", "ckptlint.checker", "ckptlint.plugins",
                       "ckptlint.plugin.manager", "ckptlint.conversion.api"}  # convert's engine: resolver hooks


def test_only_front_ends_and_the_engine_use_the_plugin_manager() -> None:
    users = {m for m, edges in _graph().items() if edges & MANAGER}
    assert "ckptlint.checker" in users
    assert users - MAY_USE_THE_MANAGER == set()


DATA_LAYER = {"ckptlint.vocab", "ckptlint.results", "ckptlint.findings", "ckptlint.errors", "ckptlint.limits",
              "ckptlint.inventory", "ckptlint.rule", "ckptlint.assertions", "ckptlint.config", "ckptlint.filenames",
              "ckptlint.compat_report", "ckptlint.record"}
ENGINE_AND_FRONT_ENDS = {"ckptlint.checker", "ckptlint.cli", "ckptlint.pytest_plugin", "ckptlint.__main__"}


def test_the_data_layer_imports_only_the_data_layer() -> None:
    g = _graph()
    for m in DATA_LAYER:
        assert g[m] - DATA_LAYER == set(), m


def test_model_users_never_import_the_engine() -> None:
    g = _graph()
    users = {m for m in g if m.startswith("ckptlint.report.")} | {"ckptlint.assertions", "ckptlint.pytest_plugin"}
    for m in users:
        assert g[m] & {"ckptlint.checker", "ckptlint.cli"} == set(), m
