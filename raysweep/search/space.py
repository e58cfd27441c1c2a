"""Mixing weights on the probability simplex, the way Optuna's FAQ samples proportions.

Each source i gets ``u_i ~ U(0, 1]``; the weights are ``-log u_i`` normalised, which is a flat
Dirichlet when the u_i are uniform. ``u_i = 1`` gives weight exactly 0, so single sources and
faces of the simplex are reachable; weights below ``min_weight`` are rounded to zero as well.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_U_LOW = 1e-6  # -log(1e-6) = 13.8: a source can dominate without an infinite weight


def param_name(source: str) -> str:
    return f"u[{source}]"


def weights_from_u(u: Mapping[str, float], min_weight: float = 0.0) -> dict[str, float]:
    """Normalised ``-log u`` weights; tiny ones dropped (guarded against an all-zero sum)."""
    raw = {s: -math.log(min(max(v, _U_LOW), 1.0)) for s, v in u.items()}
    total = sum(raw.values())
    if total <= 0.0:  # every u_i == 1: no preference, so the uniform mix
        return {s: 1.0 / len(raw) for s in raw}
    w = {s: v / total for s, v in raw.items()}
    kept = {s: v for s, v in w.items() if v >= min_weight}
    if not kept:
        top = max(w, key=lambda s: (w[s], s))
        kept = {top: w[top]}
    total = sum(kept.values())
    return {s: kept.get(s, 0.0) / total for s in u}


@dataclass(frozen=True)
class SimplexSpace:
    """An Optuna define-by-run space: only suggests u_i, returns the weights as constants.

    A class rather than a closure so Tune can pickle the searcher when it checkpoints.
    """

    sources: tuple[str, ...]
    min_weight: float = 0.0

    def __call__(self, trial: Any) -> dict[str, Any]:
        u = {s: trial.suggest_float(param_name(s), _U_LOW, 1.0) for s in self.sources}
        return {"weights": weights_from_u(u, self.min_weight)}


def define_by_run(sources: Sequence[str], min_weight: float) -> SimplexSpace:
    return SimplexSpace(tuple(sources), min_weight)


def baseline_points(sources: Sequence[str]) -> list[dict[str, float]]:
    """Points evaluated first: the uniform mix, then every single source of the space."""
    e = math.exp(-1.0)
    points = [{param_name(s): e for s in sources}]
    for s in sources:
        points.append({param_name(t): (_U_LOW if t == s else 1.0) for t in sources})
    return points
