"""benchmarks/gpu_check runs end to end on the CPU (--tiny) with only torch and transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("pydantic", "ray", "datasets", "lm_eval", "optuna")


def _blocker(tmp_path: Path) -> Path:
    """Modules that refuse to import, first on the child's sys.path: importing one fails."""
    folder = tmp_path / "blocked"
    folder.mkdir()
    for name in BLOCKED:
        (folder / f"{name}.py").write_text(
            f"raise ImportError('{name} is not installed on the GPU machine')\n"
        )
    return folder


def test_tiny_gpu_check_passes_without_pydantic_ray_or_an_install(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(_blocker(tmp_path)), "OUT": str(tmp_path / "out"),
           "PYTHON": sys.executable}  # fmt: skip
    # Run from elsewhere: raysweep must come from the script's checkout, not the cwd.
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--tiny"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert result["verdict"] == "PASS" and result["device"] == "cpu"
    runs = {(r["method"], r["mode"]): r for r in result["runs"]}
    assert set(runs) == {(m, o) for m in ("wanda", "sparsegpt") for o in ("sequential", "oneshot")}
    for run in runs.values():
        assert run["verdict"] == "PASS" and run["restored_dense"]
        assert run["achieved_sparsity"] == 0.5
        assert run["timings_s"]["total"] > 0 and run["timings_s"]["prune"] > 0
        assert run["peak_device_bytes"] is None  # no CUDA: no device figure
    assert {"capture", "statistics", "propagate"} <= set(runs["wanda", "sequential"]["timings_s"])
    assert "PASS" in proc.stdout
