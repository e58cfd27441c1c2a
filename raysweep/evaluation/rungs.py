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
from raysweep.evaluation.scoring import CapabilityScores, TaskItems, make_scores
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


def merge(scored: Mapping[str, TaskItems], chunk: Mapping[str, TaskItems]) -> dict[str, TaskItems]:
    """The items scored so far and a new chunk's, each task's in ``doc_id`` order (the order a
    one-shot evaluation logs them in); ValueError if an item comes twice."""
    out = dict(scored)
    for task, new in chunk.items():
        old = out.get(task, TaskItems((), ()))
        pairs = sorted(zip(old.doc_ids + new.doc_ids, old.values + new.values, strict=True))
        ids = tuple(i for i, _ in pairs)
        if len(set(ids)) != len(ids):
            raise ValueError(f"task {task!r}: an item was scored twice")
        out[task] = TaskItems(ids, tuple(v for _, v in pairs))
    return out


def rung_scores(
    scored: Mapping[str, TaskItems], dense: CapabilityScores, suite: Suite
) -> tuple[CapabilityScores, CapabilityScores]:
    """(pruned, dense) scores on the items scored so far: each task's score the mean of its
    values, the dense model's on the same items, read from its full evaluation's per-item
    values. Every task of ``suite`` must have items."""
    if dense.items is None:
        raise ValueError("the dense baseline carries no per-item values (evaluate with items=True)")
    missing = [t.name for t in suite.tasks if t.name not in scored or t.name not in dense.items]
    if missing:
        raise ValueError(f"no per-item values of tasks {missing}: they cannot be scored in rungs")
    dense_items = {}
    for task, items in scored.items():
        by_id = dict(zip(dense.items[task].doc_ids, dense.items[task].values, strict=True))
        absent = [i for i in items.doc_ids if i not in by_id]
        if absent:
            raise ValueError(f"task {task!r}: items {absent[:5]} are not in the dense baseline's")
        dense_items[task] = TaskItems(items.doc_ids, tuple(by_id[i] for i in items.doc_ids))
    pruned = make_scores({t: i.mean() for t, i in scored.items()}, suite, items=dict(scored))
    base = make_scores({t: i.mean() for t, i in dense_items.items()}, suite, items=dense_items)
    return pruned, base


def items_scored(scored: Mapping[str, TaskItems]) -> int:
    """Items scored so far over every task."""
    return sum(len(items.values) for items in scored.values())


__all__ = ["chunk_items", "full_items", "items_scored", "merge", "rung_scores", "rung_sizes"]
