"""The Ray Tune function trainable: validate the point, run it, report its record."""

from __future__ import annotations

import platform
import sys
import time
from typing import Any

import ray
from ray import tune

from raysweep.config import TrialConfig
from raysweep.pipeline import DenseBaseline, run_trial

RECORD_KEY = "record_json"


def sweep_trial(config: dict[str, Any]) -> None:
    """One sweep point: ``config = {"point": TrialConfig dump, "dense": DenseBaseline dict}``."""
    trial = TrialConfig.model_validate(config["point"])
    dense = DenseBaseline.from_dict(config["dense"])
    label = trial.label

    def stage(name: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} [{label}] {name}", file=sys.stderr, flush=True)

    record = run_trial(trial, dense, stage=stage)
    record.node_id = ray.get_runtime_context().get_node_id()
    record.host = platform.node()
    tune.report(
        {
            RECORD_KEY: record.to_json(),
            "total_retention": record.total_retention,
            "worst_retention": record.worst_retention,
        }
    )
