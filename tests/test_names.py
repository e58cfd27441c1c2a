"""Shared names have one home, raysweep/names.py; analysis' copy of DIMENSIONS agrees with it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import analysis.records
from raysweep import names

ROOT = Path(__file__).resolve().parents[1]
SHARED = {"DIMENSIONS", "METHODS", "parse_structure", "NMStructure"}


def _definitions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in SHARED:
            found.add(node.name)
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])  # fmt: skip
        found |= {t.id for t in targets if isinstance(t, ast.Name) and t.id in SHARED}
    return found


def test_shared_names_are_defined_only_in_names_py():
    where = {}
    for path in sorted((ROOT / "raysweep").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "raysweep/names.py":
            continue
        if found := _definitions(path):
            where[rel] = sorted(found)
    assert where == {}


def test_analysis_keeps_the_same_dimensions():
    assert analysis.records.DIMENSIONS == names.DIMENSIONS


def test_names_imports_nothing_of_the_project_or_beyond_the_standard_library():
    code = ("import sys; before = set(sys.modules); import raysweep.names; "
            "print(sorted(m for m in set(sys.modules) - before if not m.startswith('raysweep')"
            " and m.split('.')[0] not in sys.stdlib_module_names))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_structure_syntax():
    assert names.parse_structure("unstructured") is None
    assert names.parse_structure(" 2 : 4 ") == names.NMStructure(2, 4) == (2, 4)
    assert (
        str(names.parse_structure("4:8")) == "4:8" and names.parse_structure("4:8").sparsity == 0.5
    )
    assert names.METHODS == ("magnitude", "wanda", "sparsegpt", "ria")
