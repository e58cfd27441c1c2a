"""``--validate`` checks a sweep and writes nothing: no cache, no output directory, no task files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--smoke-test"]], ids=["default", "smoke"])
def test_validate_writes_no_file(tmp_path, extra):
    env = dict(os.environ)
    env.update(
        HOME=str(tmp_path / "home"),
        RAYSWEEP_CACHE_DIR=str(tmp_path / "cache"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
    )
    run = subprocess.run(
        [sys.executable, "-m", "raysweep.run", "--validate", "--output", str(tmp_path / "out"),
         *extra],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "grid points" in run.stdout
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == []
