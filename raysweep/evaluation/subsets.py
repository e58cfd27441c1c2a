"""Which items of a task a limited evaluation scores: lm-eval's first N, or a seeded random N.

lm-eval's ``limit=N`` scores the first N documents of a task, which are not a random sample (a
dataset is often sorted by source, topic or difficulty). With ``item_selection: random`` a task
that a limit cuts is scored on :func:`random_subset` instead: N of its documents drawn by a hash
of (seed, task name, task size, document index), handed to lm-eval as ``samples``. The subset
depends on nothing else, so every trial and the dense baseline of one evaluation see the same
items (a paired comparison), and a smaller limit's subset lies inside a larger one's.

Where no limit cuts a task the selection does not matter, and nothing that hashes an
evaluation (trial ids, dense-baseline keys, a run's meaning) changes: :func:`selection_key` is
empty then. Whether a limit cuts a task is decided from the suite table, before any dataset is
read: a limit below a task's declared ``size`` cuts it, and so does any limit of a task that
declares none (the harness then finds the true size; a limit at or above it scores every item,
as lm-eval's limit would). Plain Python: no lm-eval, no torch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

from raysweep.evaluation.dimensions import Suite, TaskSpec, get_suite

ItemSelection = Literal["random", "first"]


def effective_limit(spec: TaskSpec, limit: int | None) -> int | None:
    """The items per task (per member, for a group) an evaluation with ``limit`` asks of
    ``spec``: the smaller of ``limit`` and the task's own limit (None: all)."""
    caps = [c for c in (spec.limit, limit) if c is not None]
    return min(caps) if caps else None


def cut_tasks(suite: str | Mapping[str, Any] | Suite, limit: int | None) -> tuple[str, ...]:
    """Tasks of ``suite`` whose items a limit may cut: an effective limit below the declared
    size, or any effective limit of a task without a declared size."""
    out = []
    for spec in get_suite(suite).tasks:
        cap = effective_limit(spec, limit)
        if cap is not None and (spec.size is None or cap < spec.size):
            out.append(spec.name)
    return tuple(out)


def selection_key(
    suite: str | Mapping[str, Any] | Suite,
    limit: int | None,
    item_selection: str,
    item_seed: int,
) -> dict[str, Any]:
    """What the item selection adds to whatever hashes an evaluation: ``{"item_selection":
    "random", "item_seed": seed}`` when random subsets are drawn for some task, else nothing
    (lm-eval's first N, or no limit that cuts a task: the items every earlier run scored)."""
    if item_selection == "first" or not cut_tasks(suite, limit):
        return {}
    return {"item_selection": item_selection, "item_seed": int(item_seed)}


def random_subset(task: str, size: int, limit: int, seed: int) -> list[int]:
    """``min(limit, size)`` document indices of a task of ``size`` documents, ascending.

    Each index is ranked by the SHA-256 of ``seed``, ``task``, ``size`` and the index, and the
    ``limit`` lowest ranks are kept: the same subset on every machine and Python version, a
    different one per task and per seed, and the subset of a smaller limit is inside that of a
    larger one. Ascending order is what lm-eval's ``samples`` needs to log each item's own
    index as its ``doc_id``.
    """
    if size < 0 or limit <= 0:
        raise ValueError(f"random_subset: size {size} and limit {limit} must be >= 0 and > 0")
    if limit >= size:
        return list(range(size))
    prefix = f"{int(seed)}\0{task}\0{int(size)}\0".encode()

    def rank(index: int) -> bytes:
        return hashlib.sha256(prefix + str(index).encode()).digest()

    return sorted(sorted(range(size), key=rank)[:limit])


__all__ = [
    "ItemSelection",
    "cut_tasks",
    "effective_limit",
    "random_subset",
    "selection_key",
]
