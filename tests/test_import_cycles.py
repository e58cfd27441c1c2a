"""No import cycle among the project's modules.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import`` of a
module counts, at top level or inside a function alike. A function-level import defers loading
(of torch, Ray or lm-eval, say) but does not remove the dependency, so it cannot excuse a cycle:
two modules that need each other are one concept split in two, or a shared piece that belongs
to a third. ``from pkg import name`` depends on the submodule ``pkg.name`` when there is one,
else on ``pkg`` itself; a submodule does not depend on its parent package unless it imports it.
Imports by computed name (``importlib.import_module``) are not seen.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("raysweep", "analysis")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for package in PACKAGES
        for p in sorted((ROOT / package).rglob("*.py"))
        if "assets" not in p.parts
    }


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Dotted names ``node`` imports: ``a.b`` for ``import a.b``, ``pkg.name`` per name of
    ``from pkg import name`` (resolved against the module's package when relative)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join([*base, *([node.module] if node.module else [])])
    else:
        prefix = node.module or ""
    return [f"{prefix}.{alias.name}" for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """``module -> modules of the project it imports`` (see the module docstring)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for dotted in _imported(node, name, path.name == "__init__.py"):
                parts = dotted.split(".")
                # The longest prefix that is a module: `pkg.name` is the submodule pkg.name
                # when there is one, else the name `name` of module pkg.
                target = next(
                    (".".join(parts[:n]) for n in range(len(parts), 0, -1)
                     if ".".join(parts[:n]) in modules),
                    None,
                )  # fmt: skip
                if target and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_project_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "raysweep.run" in graph and "raysweep.calibration.registry" in graph
    found = cycles(graph)
    described = [
        " <-> ".join(c) + ": " + "; ".join(
            f"{m} -> {', '.join(sorted(graph[m] & set(c)))}" for m in c
        )
        for c in found
    ]  # fmt: skip
    assert not found, "import cycles:\n" + "\n".join(described)


def test_the_graph_sees_function_level_and_relative_imports() -> None:
    graph = import_graph()
    # models.resolve_model_path imports the plug-in registry inside the function.
    assert "raysweep.worlds" in graph["raysweep.models"]
    # `from .sources import CalibrationSource` inside the calibration package.
    assert "raysweep.calibration.sources" in graph["raysweep.calibration.build"]


def test_cycles_finds_a_component() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
