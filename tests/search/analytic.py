"""A cheap analytic objective with a known max-min optimum: per-dimension scores linear in weights."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

SOURCES = ("s_general", "s_commonsense", "s_code", "s_math")
# rows: dimensions, columns: sources. Each source is best on its own dimension, with spill-over.
A = np.array(
    [
        [0.90, 0.50, 0.20, 0.30],
        [0.55, 0.85, 0.25, 0.35],
        [0.15, 0.30, 0.95, 0.40],
        [0.25, 0.20, 0.45, 0.80],
    ]
)


def scores(weights: dict[str, float]) -> np.ndarray:
    w = np.array([weights[s] for s in SOURCES])
    return A @ w


def optimum() -> float:
    """max_w min_d (A w)_d on the simplex, by linear programming: maximise t s.t. A w >= t."""
    k = len(SOURCES)
    c = np.zeros(k + 1)
    c[-1] = -1.0
    a_ub = np.hstack([-A, np.ones((A.shape[0], 1))])
    res = linprog(c, A_ub=a_ub, b_ub=np.zeros(A.shape[0]), A_eq=[[1.0] * k + [0.0]], b_eq=[1.0],
                  bounds=[(0, 1)] * k + [(None, None)])  # fmt: skip
    return float(-res.fun)


def trainable(config: dict) -> None:
    from ray import tune

    s = scores(config["weights"])
    tune.report(
        {"objective": float(s.min()), **{f"retention_{i}": float(v) for i, v in enumerate(s)}}
    )
