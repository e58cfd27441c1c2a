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
from dataclasses import dataclass, field
from typing import Any

from raysweep.evaluation.dimensions import Suite


@dataclass(frozen=True)
class CapabilityScores:
    """Scores of one model on one suite: plain task names and floats, never lm-eval metric keys."""

    task_scores: dict[str, float]
    dimension_scores: dict[str, float]
    # Held-out perplexity per corpus name (empty unless requested).
    perplexity: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_scores": dict(self.task_scores),
            "dimension_scores": dict(self.dimension_scores),
            "perplexity": dict(self.perplexity),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CapabilityScores:
        return cls(
            task_scores={k: float(v) for k, v in data["task_scores"].items()},
            dimension_scores={k: float(v) for k, v in data["dimension_scores"].items()},
            perplexity={k: float(v) for k, v in data.get("perplexity", {}).items()},
        )


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
) -> CapabilityScores:
    return CapabilityScores(
        task_scores={t.name: float(task_scores[t.name]) for t in suite.tasks},
        dimension_scores=dimension_scores(task_scores, suite),
        perplexity=dict(perplexity or {}),
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
