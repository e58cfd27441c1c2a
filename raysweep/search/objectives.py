"""What a search maximises, read from a trial record (plain Python)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OBJECTIVES = ("worst_retention", "total_retention", "worst_retention_above_chance")
METRIC = "objective"
# What a search trial scored in rungs reports beside METRIC after each rung: the items per task
# scored so far (the early-stopping schedulers' time attribute), the items over every task,
# and, before the last rung, the records a trial stopped there leaves.
ITEMS_PER_TASK = "items_per_task"
ITEMS_SCORED = "items_scored"
RUNG_KEY = "rung_records_json"


def objective_value(record: Mapping[str, Any], objective: str) -> float:
    """The scalar to maximise; an undefined dimension counts as 0 retained (never NaN)."""
    if objective == "worst_retention":
        v = record.get("worst_retention")
    elif objective == "total_retention":
        v = record.get("total_retention")
    elif objective == "worst_retention_above_chance":
        vals = [x for x in (record.get("retention_above_chance") or {}).values() if x is not None]
        v = min(vals) if vals else None
    else:
        raise ValueError(f"unknown objective {objective!r}; allowed: {', '.join(OBJECTIVES)}")
    return float(v) if v is not None else 0.0


def dimension_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """One metric per dimension (``retention_<dim>``) for multi-objective search."""
    return {f"retention_{d}": float(v or 0.0) for d, v in (record.get("retention") or {}).items()}


def is_stopped_result(result: Mapping[str, Any] | None) -> bool:
    """Whether ``result`` is a rung's report (a trial ended there was stopped early), not a
    finished trial's."""
    return result is not None and RUNG_KEY in result
