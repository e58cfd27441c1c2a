"""lm-eval functions of the toy code-completion task, written next to its YAML as ``utils.py``.

lm-eval's ``humaneval`` scores with HF evaluate's ``code_eval`` metric, which ``evaluate.load``
fetches from the Hub; this file does the same offline with the standard library only (lm-eval
imports it by path, ``!function utils.pass_at_k``). As ``code_eval`` does, it refuses to run
model-written code unless ``HF_ALLOW_CODE_EVAL=1``; each candidate runs in its own isolated
Python process with a timeout, and passes when the process exits 0.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

TIMEOUT_S = 10.0


def build_predictions(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """The ``create_test`` filter, as humaneval's: each completion appended to its prompt."""
    return [[doc["prompt"] + r for r in resp] for resp, doc in zip(resps, docs, strict=True)]


def passes(program: str, test: str, timeout: float = TIMEOUT_S) -> bool:
    """Whether ``program`` followed by ``test`` runs to completion in a fresh interpreter."""
    try:
        # -I: no user site, environment variables or current directory on the path; -S: no
        # site-packages either (toy programs need builtins only), a third of the start-up time.
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", f"{program}\n\n{test}\n"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _estimate(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` pass (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_at_k(
    references: list[str], predictions: list[list[str]], k: list[int] | int | None = None
) -> dict[str, float]:
    """``code_eval``'s contract: one test per reference, candidate programs per prediction;
    returns ``{"pass@1": ...}`` (one key per ``k``), averaged over the references."""
    if os.environ.get("HF_ALLOW_CODE_EVAL") != "1":
        raise ValueError(
            "this metric executes model-written code: set HF_ALLOW_CODE_EVAL=1 (and pass "
            "--confirm_run_unsafe_code to lm_eval) to allow it"
        )
    ks = [k] if isinstance(k, int) else list(k or [1])
    scores = {f"pass@{j}": 0.0 for j in ks}
    for test, candidates in zip(references, predictions, strict=True):
        correct = sum(passes(program, test) for program in candidates)
        for j in ks:
            scores[f"pass@{j}"] += _estimate(len(candidates), correct, j) / len(references)
    return scores
