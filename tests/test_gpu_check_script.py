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
    # The evaluation rates the projection reads, measured before the prunes.
    rates = result["evaluation"]
    assert rates["loglik"]["tokens_per_s"] > 0 and rates["loglik"]["tokens"] == 4 * 32 * 2
    assert rates["generation"]["generated"] == rates["generation"]["steps"] == 8
    assert rates["generation"]["step_s"] > 0
    projection = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "eval_projection.py"), "--measured",
         str(tmp_path / "out" / "gpu_check.json")],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "Rates (measured: " in projection and "| gsm8k | math |" in projection


def test_without_a_python_that_has_torch_the_script_says_what_to_set(tmp_path):
    """python3 without torch on PATH and no PYTHON: the checkout's .venv is tried, else one line."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python3").write_text("#!/bin/sh\nexit 1\n")  # imports nothing
    (shim / "python3").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    env["PATH"] = f"{shim}:/usr/bin:/bin"
    copy = tmp_path / "checkout"
    (copy / "benchmarks").mkdir(parents=True)
    (copy / "benchmarks" / "gpu_check.sh").write_text(
        (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    )
    proc = subprocess.run(["bash", str(copy / "benchmarks" / "gpu_check.sh"), "--tiny"],
                          capture_output=True, text=True, timeout=60, env=env, check=False)  # fmt: skip
    assert proc.returncode == 2
    assert "no python with torch and transformers" in proc.stderr and "PYTHON=" in proc.stderr


def test_the_projection_with_assumed_rates_matches_the_background_estimate():
    """One trial of the study suite at 8B on one H100: 20-35 minutes, generation most of it."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from eval_projection import ASSUMED, project
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    result = project(ASSUMED)
    dense, longest = result["scenarios"]["dense"], result["scenarios"]["longest"]
    assert 20 * 60 <= dense["trial_s"] <= longest["trial_s"] <= 35 * 60
    assert 0.55 <= dense["generation_share"] < longest["generation_share"]
    assert {r["task"] for r in dense["tasks"]} >= {"gsm8k", "humaneval", "mbpp", "mmlu"}
