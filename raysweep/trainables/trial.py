"""The Ray Tune function trainable: validate the point, run it, report its record and, for an
ok trial, its per-item scores (the driver writes them to a side file, not to the record)."""

from __future__ import annotations

import platform
import sys
import time
from typing import Any

import ray
from ray import tune

from raysweep.config import TrialConfig
from raysweep.dense import DenseBaseline
from raysweep.items import dumps
from raysweep.pipeline import (
    describe_failure,
    error_record,
    is_deterministic,
    run_trial_with_items,
)

RECORD_KEY = "record_json"
# The trial's side-file payload (compact JSON, raysweep.items), reported beside its record.
ITEMS_KEY = "items_json"


def trial_log(label: str, current: list[str] | None = None) -> tuple[Any, Any]:
    """``stage`` and ``progress`` callbacks that write a trial's stage and each pruned layer to
    the trial actor's stderr: its log in the Ray dashboard (Jobs or Actors, then Logs) and in
    ``<ray temp>/session_latest/logs``. ``current[0]`` keeps the stage for error records."""
    current = current if current is not None else ["starting"]

    def stage(name: str) -> None:
        current[0] = name
        print(f"{time.strftime('%H:%M:%S')} [{label}] {name}", file=sys.stderr, flush=True)

    def progress(done: int, total: int) -> None:
        print(f"{time.strftime('%H:%M:%S')} [{label}] pruned layer {done}/{total}",
              file=sys.stderr, flush=True)  # fmt: skip

    return stage, progress


def sweep_trial(config: dict[str, Any]) -> None:
    """One sweep point: ``config = {"point": TrialConfig dump, "dense": DenseBaseline dict}``."""
    trial = TrialConfig.model_validate(config["point"])
    dense = DenseBaseline.from_dict(config["dense"])
    label = trial.label

    current = ["starting"]

    stage, progress = trial_log(label, current)
    items: dict[str, Any] | None = None
    try:
        outcome = run_trial_with_items(trial, dense, stage=stage, progress=progress)
        record, items = outcome.record, outcome.items
    except Exception as exc:
        if not is_deterministic(exc):
            raise  # Tune retries it (max_failures): a worker fault may not recur
        # Bad data or names fail every attempt alike: record it once, no retry.
        record = error_record(trial, describe_failure(exc, current[0], trial), attempts=1)
    record.node_id = ray.get_runtime_context().get_node_id()
    record.host = platform.node()
    metrics: dict[str, Any] = {RECORD_KEY: record.to_json()}
    if items is not None:
        metrics[ITEMS_KEY] = dumps(items)
    if record.status == "ok":
        metrics |= {"total_retention": record.total_retention,
                    "worst_retention": record.worst_retention}  # fmt: skip
    tune.report(metrics)
