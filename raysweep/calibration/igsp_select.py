"""IGSP's selection step: a pure function over candidate windows, their perplexities and labels.

Greedily picks windows so that the selected set's ``ngram4_aggregation`` (1 - distinct 4-grams /
4-gram occurrences, 4-grams inside windows only, exactly as ``information_metrics`` defines it) is as
low as possible, subject to

- equal counts per label (``allocate_counts`` with equal weights: counts differ by at most one,
  extra windows going to labels first in name order), and
- every label's mean window perplexity lying inside the band ``[median / (1 + tolerance),
  median * (1 + tolerance)]`` around the median perplexity of the whole pool (symmetric in log
  space, since perplexity is a ratio scale).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .mixing import allocate_counts

NGRAM = 4


@dataclass(frozen=True)
class IGSPSelection:
    """What ``select_igsp`` chose: pool indices in selection order, and the constraints it met."""

    indices: tuple[int, ...]
    tolerance: float
    band: tuple[float, float]
    median: float
    quotas: dict[str, int]
    mean_perplexity: dict[str, float]
    ngram4_aggregation: float


def perplexity_band(perplexities: Sequence[float], tolerance: float) -> tuple[float, float, float]:
    """``(low, high, median)``: the band ``[median / (1 + tolerance), median * (1 + tolerance)]``."""
    if tolerance < 0 or not math.isfinite(tolerance):
        raise ValueError(f"perplexity tolerance must be a finite number >= 0, got {tolerance!r}")
    median = float(np.median(np.asarray(perplexities, dtype=np.float64)))
    return median / (1.0 + tolerance), median * (1.0 + tolerance), median


def _as_arrays(candidates: Sequence[Sequence[int]] | np.ndarray) -> list[np.ndarray]:
    if hasattr(candidates, "detach"):  # a torch tensor, without importing torch here
        candidates = candidates.detach().cpu().numpy()
    return [np.asarray(c, dtype=np.int64).reshape(-1) for c in candidates]


def _pack_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense ids of the pairs ``(a[i], b[i])`` (both non-negative int64)."""
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    return np.unique(ia * (int(ib.max()) + 1) + ib, return_inverse=True)[1]


def ngram_profiles(
    candidates: Sequence[Sequence[int]] | np.ndarray, n: int = NGRAM
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each candidate's distinct n-grams as dense ids, and its n-gram occurrence count.

    Returns ``(owner, gram, occurrences)``: ``owner[i]`` and ``gram[i]`` are the candidate index and
    n-gram id of one (candidate, distinct n-gram) pair; ``occurrences[c]`` is ``len(c) - n + 1``
    (0 for windows shorter than ``n``). Equal n-grams get equal ids across candidates.
    """
    arrays = _as_arrays(candidates)
    occurrences = np.array([max(len(a) - n + 1, 0) for a in arrays], dtype=np.int64)
    if occurrences.sum() == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, occurrences
    grams = np.concatenate(
        [np.lib.stride_tricks.sliding_window_view(a, n) for a in arrays if len(a) >= n]
    )  # (total occurrences, n)
    owner = np.repeat(np.arange(len(arrays)), occurrences)
    # Exact n-gram ids without overflow: combine columns pairwise into dense ids, then those.
    ids = grams[:, 0]
    for col in range(1, n):
        ids = _pack_pairs(ids, grams[:, col])
    pairs = np.unique(owner * (int(ids.max()) + 1) + ids)
    return pairs // (int(ids.max()) + 1), pairs % (int(ids.max()) + 1), occurrences


def set_aggregation(candidates: Sequence[Sequence[int]] | np.ndarray, n: int = NGRAM) -> float:
    """``1 - distinct n-grams / n-gram occurrences`` over a set of windows (NaN when it has none)."""
    _, gram, occurrences = ngram_profiles(candidates, n)
    total = int(occurrences.sum())
    return float("nan") if total == 0 else 1.0 - len(np.unique(gram)) / total


def _band_admissible(
    values: np.ndarray, chosen_sum: float, quota: int, k_after: int, low: float, high: float
) -> np.ndarray:
    """For each candidate value ``v`` of one label (all its unselected candidates, ``values``):
    can the label still end with a mean in ``[low, high]`` after taking ``v``?

    Exact when at most one slot is left afterwards; with more slots, the reachable mean range
    (the ``r`` smallest to the ``r`` largest remaining values) must meet the band.
    """
    m = len(values)
    r = quota - k_after
    after = chosen_sum + values  # (m,)
    lo_sum, hi_sum = quota * low, quota * high
    if r < 0 or m - 1 < r:
        return np.zeros(m, dtype=bool)
    if r == 0:
        return (after >= lo_sum) & (after <= hi_sum)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(m, dtype=np.int64)
    ranks[order] = np.arange(m)
    ranked = values[order]
    if r == 1:
        # Some other remaining value must land the final sum inside the band.
        need_lo, need_hi = lo_sum - after, hi_sum - after
        inside = np.searchsorted(ranked, need_hi, side="right") - np.searchsorted(
            ranked, need_lo, side="left"
        )
        inside -= (values >= need_lo) & (values <= need_hi)
        return inside >= 1
    prefix = np.concatenate([[0.0], np.cumsum(ranked)])
    smallest = np.where(ranks < r, prefix[r + 1] - values, prefix[r])
    largest_r = prefix[m] - prefix[m - r]
    largest_r1 = prefix[m] - prefix[m - r - 1]
    largest = np.where(ranks >= m - r, largest_r1 - values, largest_r)
    return (after + smallest <= hi_sum) & (after + largest >= lo_sum)


def select_igsp(
    candidates: Sequence[Sequence[int]] | np.ndarray,
    perplexities: Sequence[float],
    labels: Sequence[str],
    n_samples: int,
    tolerance: float = 0.25,
    *,
    widen: bool = False,
) -> IGSPSelection:
    """Choose ``n_samples`` candidate windows (see the module docstring for the objective).

    ``candidates``: token-id windows (a ``(pool, seqlen)`` array or tensor, or sequences of any
    length); ``perplexities[i]`` and ``labels[i]`` belong to ``candidates[i]``. Each step adds the
    candidate that gives the lowest aggregation of the set so far among those whose label still has
    room and can still end inside the band (ties: lowest index). Raises ``ValueError`` when the
    pool cannot meet the constraints, unless ``widen``: then a tolerance too small for some label
    to reach the band is raised to the smallest one at which every label can (that label then
    gets the windows closest to the band); ``IGSPSelection.tolerance`` records the one used.
    """
    ppl = np.asarray(perplexities, dtype=np.float64)
    labels = [str(label) for label in labels]
    arrays = _as_arrays(candidates)
    if not (len(arrays) == len(ppl) == len(labels)):
        raise ValueError(
            f"IGSP selection: {len(arrays)} candidates, {len(ppl)} perplexities and "
            f"{len(labels)} labels; give one of each per candidate"
        )
    if not np.isfinite(ppl).all():
        raise ValueError("IGSP selection: perplexities must be finite")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    names = sorted(set(labels))
    quotas = allocate_counts(dict.fromkeys(names, 1.0), n_samples)
    label_idx = np.array([names.index(label) for label in labels], dtype=np.int64)
    median = float(np.median(ppl))
    reach = {}  # label -> (mean of its q lowest, mean of its q highest perplexities)
    for d, name in enumerate(names):
        values = np.sort(ppl[label_idx == d])
        q = quotas[name]
        if len(values) < q:
            raise ValueError(
                f"IGSP selection: label {name!r} has {len(values)} candidates, {q} are needed"
            )
        if q:
            reach[name] = (float(values[:q].mean()), float(values[-q:].mean()))
    if widen:
        # The smallest tolerance at which every label's reachable means meet the band.
        needed = max(
            [max(lo_mean / median, median / hi_mean) - 1.0 for lo_mean, hi_mean in reach.values()]
        )
        tolerance = max(tolerance, needed * (1 + 1e-9) + 1e-12)  # rounding margin
    low, high, median = perplexity_band(ppl, tolerance)
    for name, (lo_mean, hi_mean) in reach.items():
        if lo_mean > high or hi_mean < low:
            q = quotas[name]
            raise ValueError(
                f"IGSP selection: label {name!r} cannot reach the perplexity band "
                f"[{low:.4g}, {high:.4g}] around the pool median {median:.4g} (its {q} lowest "
                f"average {lo_mean:.4g}, its {q} highest {hi_mean:.4g}); "
                "raise the tolerance or the pool size"
            )

    owner, gram, occurrences = ngram_profiles(arrays)
    covered = np.zeros(int(gram.max()) + 1 if len(gram) else 0, dtype=bool)
    available = np.ones(len(arrays), dtype=bool)
    counts = np.zeros(len(names), dtype=np.int64)
    sums = np.zeros(len(names), dtype=np.float64)
    distinct, total = 0, 0
    chosen: list[int] = []
    for _ in range(n_samples):
        # New distinct n-grams each candidate would add: (pool,)
        gains = np.bincount(owner[~covered[gram]], minlength=len(arrays))
        denom = total + occurrences
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(denom > 0, 1.0 - (distinct + gains) / np.maximum(denom, 1), 0.0)
        admissible = np.zeros(len(arrays), dtype=bool)
        for d, name in enumerate(names):
            if counts[d] >= quotas[name]:
                continue
            members = np.flatnonzero(available & (label_idx == d))
            admissible[members] = _band_admissible(
                ppl[members], sums[d], quotas[name], int(counts[d]) + 1, low, high
            )
        if not admissible.any():
            raise ValueError(
                "IGSP selection: no candidate keeps every label's mean perplexity inside "
                f"[{low:.4g}, {high:.4g}]; raise the tolerance or the pool size"
            )
        best = int(np.argmin(np.where(admissible, score, np.inf)))
        chosen.append(best)
        available[best] = False
        counts[label_idx[best]] += 1
        sums[label_idx[best]] += ppl[best]
        newly = gram[(owner == best) & ~covered[gram]]
        covered[newly] = True
        distinct += len(newly)
        total += int(occurrences[best])

    means = {name: float(sums[d] / counts[d]) for d, name in enumerate(names) if counts[d] > 0}
    aggregation = float("nan") if total == 0 else 1.0 - distinct / total
    return IGSPSelection(
        tuple(chosen), float(tolerance), (low, high), median, quotas, means, aggregation
    )
