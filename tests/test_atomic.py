"""One home for crash-safe writes: raysweep/atomic.py; nothing else renames files into place."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from raysweep.atomic import atomic_path, replace_dir, write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
_RENAMES = re.compile(r"os\.replace\(|os\.rename\(|\.rename\(|shutil\.move\(")


def test_no_module_but_atomic_py_renames_into_place():
    found = [
        f"{path.relative_to(ROOT)}:{i}"
        for path in sorted((ROOT / "raysweep").rglob("*.py"))
        if path.name != "atomic.py" or path.parent.name != "raysweep"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if _RENAMES.search(line)
    ]
    assert found == []


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    path = tmp_path / "a.json"
    write_json_atomic(path, {"b": 1, "a": [1, 2]})
    assert path.read_text() == json.dumps({"a": [1, 2], "b": 1}, indent=2)
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("partial")
        raise RuntimeError
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_replace_dir_swaps_a_whole_directory(tmp_path):
    target = tmp_path / "best"
    for version in ("one", "two"):
        staging = tmp_path / f".staging-{version}"
        staging.mkdir()
        write_text_atomic(staging / "card.txt", version)
        replace_dir(staging, target)
        assert (target / "card.txt").read_text() == version
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
