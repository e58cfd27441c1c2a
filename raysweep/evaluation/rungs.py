"""Evaluation in rungs: a search trial's items in one fixed seeded order, scored in chunks.

Each task's items are ranked as :func:`~raysweep.evaluation.subsets.random_subset` ranks them
(the SHA-256 of seed, task, size and index), so the first ``k`` items of the order are exactly
``random_subset(task, size, k, seed)``: rung ``k`` of a search trial scores the items a one-shot
evaluation with ``limit=k`` and random item selection scores, and the last rung (the full set)
those of the search's own evaluation. A chunk is the items between two rungs; no item is in two.

Rung sizes are item counts per task, as ``limit`` is: a task with fewer items than a rung is
complete at that rung. Plain Python: no lm-eval, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from raysweep.evaluation.dimensions import Suite, get_suite
from raysweep.evaluation.subsets import effective_limit, random_subset


def full_items(suite: str | Mapping[str, Any] | Suite, limit: int | None) -> int | None:
    """Items per task of the full set (the last rung): the largest effective limit or declared
    size over the suite's tasks; None when a task has neither (its size is learnt only when
    lm-eval reads its dataset, too late to place rungs)."""
    counts = []
    for spec in get_suite(suite).tasks:
        cap = effective_limit(spec, limit)
        known = [c for c in (cap, spec.size) if c is not None]
        if not known:
            return None
        counts.append(min(known))
    return max(counts)


def rung_sizes(
    full: int, rungs: Sequence[int] | None, grace_period: int, reduction_factor: float
) -> tuple[int, ...]:
    """Items per task scored by the end of each rung, strictly increasing, the last ``full``:
    ``rungs`` below ``full``, or (None) ``grace_period x reduction_factor^k`` below it, where
    Tune's ASHA places its milestones, so each report meets one."""
    if rungs is None:
        sizes, k = [], 0
        while (size := math.ceil(grace_period * reduction_factor**k)) < full:
            sizes.append(size)
            k += 1
    else:
        sizes = [r for r in rungs if r < full]
    return (*sizes, full)


def chunk_items(task: str, size: int, start: int, stop: int, seed: int) -> list[int]:
    """Ascending document indices of the items at positions ``[start, stop)`` of ``task``'s
    seeded order (empty when the task has ``start`` items or fewer)."""
    if start >= min(stop, size):
        return []
    inner = set(random_subset(task, size, start, seed)) if start > 0 else set()
    return [i for i in random_subset(task, size, stop, seed) if i not in inner]


__all__ = ["chunk_items", "full_items", "rung_sizes"]
