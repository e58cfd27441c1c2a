"""Scores of a few fixed toy-world trials, to check that a change leaves results unchanged.

    PYTHONPATH=<checkout A> python benchmarks/same_scores.py run a.json
    PYTHONPATH=<checkout B> python benchmarks/same_scores.py run b.json
    python benchmarks/same_scores.py compare a.json b.json

``run`` runs four trials with ``run_trial`` (no Ray): Wanda sequential, SparseGPT 2:4 on a mix,
magnitude, Wanda one-shot from per-source statistics; it writes each trial's id, task scores,
retention, perplexity, calibration metrics and achieved sparsity. ``compare`` exits 1 on any
difference. Use a fresh ``RAYSWEEP_CACHE_DIR`` per checkout.
"""

from __future__ import annotations

import json
import sys


def run(path: str) -> None:
    from raysweep.config import EvaluationConfig, TrialConfig
    from raysweep.dense import dense_baseline
    from raysweep.pipeline import run_trial

    ev = EvaluationConfig(suite="toy", limit=40, batch_size=32, max_length=256, perplexity=True)
    base = {"model": {"path": "raysweep-toy", "device": "cpu"}, "n_samples": 8, "seqlen": 64,
            "evaluation": ev}  # fmt: skip
    points = [
        {"mix": {"toy_math_word": 1.0}, "mix_name": "toy_math_word", "method": "wanda",
         "sparsity": 0.6},
        {"mix": {"toy_general_prose": 0.5, "toy_math_word": 0.5}, "mix_name": "m",
         "method": "sparsegpt", "sparsity": 0.5, "structure": "2:4"},
        {"mix": {"toy_general_prose": 1.0}, "mix_name": "g", "method": "magnitude",
         "sparsity": 0.5},
        {"mix": {"toy_general_prose": 0.3, "toy_math_word": 0.7}, "mix_name": "o",
         "method": "wanda", "sparsity": 0.7, "mode": "oneshot"},
    ]  # fmt: skip
    out, dense = [], None
    for point in points:
        trial = TrialConfig(**base, **point)
        dense = dense or dense_baseline(trial)
        r = run_trial(trial, dense)
        out.append({"id": trial.trial_id, "task_scores": r.task_scores, "retention": r.retention,
                    "perplexity": r.perplexity, "calib_metrics": r.calib_metrics,
                    "achieved_sparsity": r.achieved_sparsity})  # fmt: skip
    with open(path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)


def compare(a: str, b: str) -> int:
    with open(a) as fa, open(b) as fb:
        left, right = json.load(fa), json.load(fb)
    same = left == right
    print("same scores, retention and ids for every trial" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["run"]:
        run(sys.argv[2])
    elif sys.argv[1:2] == ["compare"]:
        raise SystemExit(compare(sys.argv[2], sys.argv[3]))
    else:
        raise SystemExit(__doc__)
