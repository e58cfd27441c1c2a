"""Run the grid of sweep points as one Ray Tune experiment; records stream into records.jsonl."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune

from raysweep.config import SweepConfig, TrialConfig
from raysweep.dense import DenseBaseline, dense_baseline
from raysweep.records import TrialRecord
from raysweep.trainables.callbacks import ProgressLine, RecordWriter, write_failures
from raysweep.trainables.tracking import tracking_callbacks
from raysweep.trainables.trial import sweep_trial


@dataclass
class GridOutcome:
    ok: int = 0
    errors: list[TrialRecord] = field(default_factory=list)
    wall_s: float = 0.0


def compute_dense(point: TrialConfig) -> DenseBaseline:
    """:func:`raysweep.dense.dense_baseline` as one Ray task with a trial's resources."""
    res = point.resources
    task = ray.remote(num_cpus=res.cpu, num_gpus=res.gpu, max_retries=2)(_dense_task)
    return DenseBaseline.from_dict(ray.get(task.remote(point.model_dump(mode="json"))))


def _dense_task(point: dict[str, Any]) -> dict[str, Any]:
    return dense_baseline(TrialConfig.model_validate(point), items=True).to_dict()


def _label(trial: Any) -> str:
    return TrialConfig.model_validate(trial.config["point"]).label


def _dirname(trial: Any) -> str:
    return f"{_label(trial)}-{trial.trial_id}"[:120]


def run_grid(
    cfg: SweepConfig,
    points: list[TrialConfig],
    dense: DenseBaseline,
    records_path: Path,
    storage_path: str,
    *,
    phase: str = "grid",
    callbacks: list[Any] = (),  # type: ignore[assignment]
    redo: Collection[str] = (),
) -> GridOutcome:
    """Run ``points`` (those without an ok record, and ``redo``: those whose ok record's side
    file is broken) as a grid Tuner; returns what happened."""
    from raysweep.models import reuses_actors

    out = GridOutcome()
    if not points:
        return out
    t0 = time.monotonic()
    res = cfg.resources
    resources = {"cpu": res.cpu, "gpu": res.gpu}
    writer = RecordWriter(records_path, redo=redo)
    tuner = tune.Tuner(
        tune.with_resources(sweep_trial, resources),
        param_space={
            "point": tune.grid_search([p.model_dump(mode="json") for p in points]),
            "dense": dense.without_items().to_dict(),
        },
        tune_config=tune.TuneConfig(
            max_concurrent_trials=cfg.ray.max_concurrent_trials,
            # Reusing a worker keeps the dense model and lm-eval's task index in memory
            # between trials; with GPUs a fresh process per trial is the safe choice.
            reuse_actors=reuses_actors(res),
            trial_name_creator=_label,
            trial_dirname_creator=_dirname,
        ),
        run_config=tune.RunConfig(
            name=f"{phase}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=cfg.ray.max_failures),
            callbacks=[
                writer,
                ProgressLine(phase, len(points)),
                *callbacks,
                *tracking_callbacks(cfg, records_path.parent),
            ],  # fmt: skip
            verbose=0,
            log_to_file=True,
        ),
    )
    with write_failures(writer):
        tuner.fit()
    out.ok = writer.ok
    out.errors = writer.errors
    out.wall_s = time.monotonic() - t0
    return out
