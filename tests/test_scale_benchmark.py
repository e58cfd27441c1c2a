"""benchmarks/scale.py runs end to end in its narrow form (the README's 8B table comes from it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_scale_benchmark_runs_and_passes_its_checks(tmp_path):
    out = tmp_path / "scale.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--quick", "--threads", "1",
         "--json", str(out), "--cache-dir", str(tmp_path / "stores")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "FAIL" not in proc.stdout
    assert json.loads(out.read_text())
