"""Mix weights: validation, normalisation, and exact integer sample counts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from numbers import Real


def _checked_weights(weights: Mapping[str, float]) -> dict[str, float]:
    if not weights:
        raise ValueError(
            "calibration mix is empty; give at least one source with a positive weight"
        )
    checked: dict[str, float] = {}
    for name, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, Real):
            raise ValueError(f"calibration weight for {name!r} must be a number, got {weight!r}")
        value = float(weight)
        if not math.isfinite(value):
            raise ValueError(f"calibration weight for {name!r} is {value}; weights must be finite")
        if value < 0:
            raise ValueError(
                f"calibration weight for {name!r} is negative ({value}); weights must be >= 0"
            )
        checked[str(name)] = value
    if not any(checked.values()):
        raise ValueError(
            "calibration weights are all zero; give at least one source a positive weight"
        )
    return checked


def normalize_mix(mix: str | Mapping[str, float]) -> dict[str, float]:
    """``{source: weight}`` normalised to sum to 1 (a bare name means ``{name: 1.0}``).

    Zero weights are kept (as 0.0) so a record shows every source that was offered.
    """
    if isinstance(mix, str):
        mix = {mix: 1.0}
    weights = _checked_weights(mix)
    total = math.fsum(weights.values())
    return {name: w / total for name, w in weights.items()}


def allocate_counts(weights: Mapping[str, float], n: int) -> dict[str, int]:
    """Integer counts summing exactly to ``n``, proportional to ``weights`` (need not sum to 1).

    Largest-remainder (Hamilton) rounding, computed exactly on the weights' binary values; equal
    remainders go to sources in name order. Keys keep the order of ``weights``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"number of samples must be a non-negative integer, got {n!r}")
    checked = _checked_weights(weights)
    exact = {name: Fraction(w) for name, w in checked.items()}
    total = sum(exact.values())
    quotas = {name: w * n / total for name, w in exact.items()}
    counts = {name: math.floor(q) for name, q in quotas.items()}
    left = n - sum(counts.values())
    by_remainder = sorted(quotas, key=lambda name: (-(quotas[name] - counts[name]), name))
    for name in by_remainder[:left]:
        counts[name] += 1
    return counts
