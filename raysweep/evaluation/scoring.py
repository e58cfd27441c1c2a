"""Dimension scores and retention of a pruned model relative to its dense original.

Definitions (per dimension ``d`` of a suite):

- dimension score = unweighted mean of its tasks' primary metrics;
- ``retention[d] = pruned[d] / dense[d]``;
- ``retention_above_chance[d] = (pruned[d] - chance[d]) / (dense[d] - chance[d])``, where
  ``chance[d]`` is the mean chance level of the dimension's tasks;
- a dense score at or below chance makes both ratios of that dimension undefined (``None``): the
  dimension is listed in ``undefined`` instead of producing an infinite or sign-flipped ratio;
- ``total_retention`` = mean and ``worst_retention`` = min of ``retention`` over defined dimensions
  (``None`` when no dimension is defined). The dense model is shared by every trial of a sweep, so
  the set of defined dimensions is the same for all of its trials.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from raysweep.evaluation.dimensions import Suite

# A group member's items are numbered ``position * GROUP_DOC_STRIDE + doc_id`` (position among the
# group's member tasks in name order), so that ``doc_id`` names one item within the group.
GROUP_DOC_STRIDE = 1_000_000
# How far the mean of a task's per-item values may be from its score (float summation order).
ITEM_MEAN_TOLERANCE = 1e-9


@dataclass(frozen=True)
class TaskItems:
    """One task's per-item scores: lm-eval's ``doc_id`` of each item and the value of the task's
    primary metric on it, in the same order. Their mean is the task's score.

    Items of a group's member tasks are listed together, member by member in name order, each
    ``doc_id`` offset by ``GROUP_DOC_STRIDE`` times the member's position among them (see
    :func:`raysweep.evaluation.harness.evaluate_capabilities`).
    """

    doc_ids: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.doc_ids) != len(self.values):
            raise ValueError(
                f"{len(self.doc_ids)} doc_ids but {len(self.values)} values: they go in pairs"
            )

    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else float("nan")

    def to_dict(self) -> dict[str, list[Any]]:
        # Integral values (acc, exact_match) are written as 0 / 1: a third of the bytes.
        return {"doc_ids": list(self.doc_ids),
                "values": [int(v) if float(v).is_integer() else v for v in self.values]}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskItems:
        return cls(tuple(int(i) for i in data["doc_ids"]), tuple(float(v) for v in data["values"]))


@dataclass(frozen=True)
class GenerationStats:
    """What greedy generation produced on one ``generate_until`` task: ``count`` generations,
    their mean length in tokens (a stop sequence that ended one included) and the share of them
    that ``max_gen_toks`` cut before any stop sequence (pruned models ramble: both grow)."""

    count: int
    mean_tokens: float
    truncated_share: float

    @classmethod
    def of(cls, rows: list[tuple[int, bool]]) -> GenerationStats:
        """From ``(tokens generated, cut by the cap)`` per generation."""
        n = len(rows)
        return cls(n, sum(t for t, _ in rows) / n, sum(1 for _, cut in rows if cut) / n)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean_tokens": self.mean_tokens,
                "truncated_share": self.truncated_share}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationStats:
        return cls(int(data["count"]), float(data["mean_tokens"]), float(data["truncated_share"]))


@dataclass(frozen=True)
class CapabilityScores:
    """Scores of one model on one suite: plain task names and floats, never lm-eval metric keys.

    ``items``, when the evaluation was asked for them, holds each task's per-item scores
    (:class:`TaskItems`); None otherwise, and then :meth:`to_dict` writes no ``items`` key, so
    entries and records written without them are unchanged. ``generation`` holds, per
    ``generate_until`` task, what the model generated (:class:`GenerationStats`); empty for
    log-likelihood suites, which then write no ``generation`` key either.
    """

    task_scores: dict[str, float]
    dimension_scores: dict[str, float]
    # Held-out perplexity per corpus name (empty unless requested).
    perplexity: dict[str, float] = field(default_factory=dict)
    items: dict[str, TaskItems] | None = None
    generation: dict[str, GenerationStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "task_scores": dict(self.task_scores),
            "dimension_scores": dict(self.dimension_scores),
            "perplexity": dict(self.perplexity),
        }
        if self.items is not None:
            out["items"] = {task: items.to_dict() for task, items in self.items.items()}
        if self.generation:
            out["generation"] = {task: g.to_dict() for task, g in self.generation.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CapabilityScores:
        items = data.get("items")
        return cls(
            task_scores={k: float(v) for k, v in data["task_scores"].items()},
            dimension_scores={k: float(v) for k, v in data["dimension_scores"].items()},
            perplexity={k: float(v) for k, v in data.get("perplexity", {}).items()},
            items=None if items is None else {k: TaskItems.from_dict(v) for k, v in items.items()},
            generation={
                k: GenerationStats.from_dict(v) for k, v in data.get("generation", {}).items()
            },
        )

    def without_items(self) -> CapabilityScores:
        return replace(self, items=None)


@dataclass(frozen=True)
class RetentionScores:
    retention: dict[str, float | None]
    retention_above_chance: dict[str, float | None]
    total_retention: float | None
    worst_retention: float | None
    undefined: tuple[str, ...]


def dimension_scores(task_scores: Mapping[str, float], suite: Suite) -> dict[str, float]:
    """Mean task score per dimension of ``suite`` (every suite task must be scored)."""
    missing = [t.name for t in suite.tasks if t.name not in task_scores]
    if missing:
        raise KeyError(f"no score for task(s) {', '.join(missing)} of suite {suite.name!r}")
    out: dict[str, float] = {}
    for dim in suite.dimensions:
        tasks = suite.tasks_of(dim)
        out[dim] = sum(float(task_scores[t.name]) for t in tasks) / len(tasks)
    return out


def make_scores(
    task_scores: Mapping[str, float],
    suite: Suite,
    perplexity: Mapping[str, float] | None = None,
    items: Mapping[str, TaskItems] | None = None,
    generation: Mapping[str, GenerationStats] | None = None,
) -> CapabilityScores:
    kept = (
        None if items is None else {t.name: items[t.name] for t in suite.tasks if t.name in items}
    )
    generated = generation or {}
    return CapabilityScores(
        task_scores={t.name: float(task_scores[t.name]) for t in suite.tasks},
        dimension_scores=dimension_scores(task_scores, suite),
        perplexity=dict(perplexity or {}),
        items=kept,
        generation={t.name: generated[t.name] for t in suite.tasks if t.name in generated},
    )


def score_retention(
    pruned: CapabilityScores, dense: CapabilityScores, suite: Suite
) -> RetentionScores:
    """Per-dimension retention of ``pruned`` relative to ``dense`` (see the module docstring)."""
    retention: dict[str, float | None] = {}
    above: dict[str, float | None] = {}
    undefined: list[str] = []
    for dim in suite.dimensions:
        if dim not in pruned.dimension_scores or dim not in dense.dimension_scores:
            raise KeyError(f"dimension {dim!r} of suite {suite.name!r} is missing from the scores")
        p = pruned.dimension_scores[dim]
        d = dense.dimension_scores[dim]
        chance = suite.chance(dim)
        if d <= chance:
            retention[dim] = None
            above[dim] = None
            undefined.append(dim)
            continue
        # d > chance >= 0, so both denominators are strictly positive.
        retention[dim] = p / d
        above[dim] = (p - chance) / (d - chance)
    defined = [r for r in retention.values() if r is not None]
    return RetentionScores(
        retention=retention,
        retention_above_chance=above,
        total_retention=sum(defined) / len(defined) if defined else None,
        worst_retention=min(defined) if defined else None,
        undefined=tuple(undefined),
    )
