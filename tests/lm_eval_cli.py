"""Run the stock ``lm_eval`` command line offline on a saved model and read its results file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def stock_cli_results(
    model_dir: Path | str,
    tasks: Sequence[str],
    include_path: Path | str,
    out: Path,
    *,
    limit: int | None = None,
    samples: dict[str, list[int]] | None = None,
    max_length: int,
    seed: int,
    batch_size: int,
    timeout: int = 600,
    unsafe_code: bool = False,
) -> dict:
    """The whole results JSON of one ``python -m lm_eval --model hf`` run on the CPU, one thread,
    on each task's first ``limit`` items or on the items ``samples`` names (task -> indices).
    ``unsafe_code`` lets tasks execute model-written code, as lm-eval's documentation says to
    (``HF_ALLOW_CODE_EVAL=1`` and ``--confirm_run_unsafe_code``)."""
    if (limit is None) == (samples is None):
        raise ValueError("give limit or samples")
    items = ["--limit", str(limit)] if samples is None else ["--samples", json.dumps(samples)]
    cmd = [
        sys.executable, "-m", "lm_eval", "--model", "hf",
        "--model_args", f"pretrained={model_dir},max_length={max_length}",
        "--tasks", ",".join(tasks), "--include_path", str(include_path), *items,
        "--seed", str(seed), "--batch_size", str(batch_size), "--device", "cpu",
        "--output_path", str(out), *(["--confirm_run_unsafe_code"] if unsafe_code else []),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    if unsafe_code:
        env["HF_ALLOW_CODE_EVAL"] = "1"
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result_file,) = out.rglob("results_*.json")
    return json.loads(result_file.read_text())
