"""Ray and Optuna live at the edges: only run.py, trainables/ and search/ import them; benchmarks
depend on the package, never on the tests."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EDGES = ("raysweep/run.py", "raysweep/trainables/", "raysweep/search/")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_edges_import_ray_or_optuna():
    offenders = []
    for path in sorted((ROOT / "raysweep").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(EDGES):
            continue
        if hit := _imports(path) & {"ray", "optuna"}:
            offenders.append(f"{rel}: {', '.join(sorted(hit))}")
    assert offenders == []


def test_no_benchmark_imports_the_tests():
    offenders = [
        path.relative_to(ROOT).as_posix()
        for path in sorted((ROOT / "benchmarks").rglob("*.py"))
        if "tests" in _imports(path)
    ]
    assert offenders == []
