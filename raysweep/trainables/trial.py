"""The one Ray Tune function trainable of grid, confirmation and search points: validate the
point, run it (once per seed of a search trial), report its records and, for an ok trial, its
per-item scores (the driver writes them to a side file, not to the record). The deterministic
error rule lives here once: a fault that would recur is an error record, never retried."""

from __future__ import annotations

import math
import platform
import sys
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

import ray
from ray import tune

from raysweep.config import TrialConfig
from raysweep.dense import DenseBaseline
from raysweep.items import dumps
from raysweep.names import EQUAL_SOURCES_MIX
from raysweep.pipeline import (
    describe_failure,
    error_record,
    is_deterministic,
    run_trial_with_items,
)
from raysweep.records import TrialRecord
from raysweep.search.objectives import METRIC, dimension_metrics, objective_value
from raysweep.trainables.rungs import run_in_rungs

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


def mix_label(weights: Mapping[str, float]) -> str:
    """``toy_math`` for a one-hot mix, ``equal_sources`` for equal weights per source (not the
    grid's ``uniform``, equal per dimension), else ``search``."""
    nz = {s: w for s, w in weights.items() if w > 0}
    if len(nz) == 1:
        return next(iter(nz))
    if len(nz) == len(weights) and max(nz.values()) - min(nz.values()) < 1e-9:
        return EQUAL_SOURCES_MIX
    return "search"


def trial_configs(config: Mapping[str, Any]) -> list[TrialConfig]:
    """The trials one Tune trial runs: its ``point``; with ``weights`` (a search proposal) the
    point takes that mix, and with ``seeds`` it runs once per calibration seed. Error records
    are written under these, the mix that actually ran."""
    point = dict(config["point"])
    weights = config.get("weights")
    if weights is not None:
        point.update(mix={s: w for s, w in weights.items() if w > 0}, mix_name=mix_label(weights))
    seeds = config.get("seeds") or [point["seed"]]
    return [TrialConfig.model_validate({**point, "seed": seed}) for seed in seeds]


def run_point(trial: TrialConfig, dense: DenseBaseline) -> tuple[TrialRecord, str | None]:
    """(the trial's record, its side-file payload or None). A deterministic failure is an error
    record, not retried; any other failure is raised for Tune to retry (``max_failures``)."""
    current = ["starting"]
    stage, progress = trial_log(trial.label, current)
    payload = None
    try:
        check_source_files(trial)
        outcome = run_trial_with_items(trial, dense, stage=stage, progress=progress)
        record, payload = outcome.record, dumps(outcome.items)
    except Exception as exc:
        if not is_deterministic(exc):
            raise  # Tune retries it (max_failures): a worker fault may not recur
        # Bad data or names fail every attempt alike: record it once, no retry.
        record = error_record(trial, describe_failure(exc, current[0], trial), attempts=1)
    record.node_id = ray.get_runtime_context().get_node_id()
    record.host = platform.node()
    return record, payload


def check_source_files(trial: TrialConfig) -> None:
    """ValueError (an error record) when a local calibration file differs from the one the point
    was planned with: its trial id names the planned content, so its windows must come from it.
    A file this machine does not hold is not checked (the build itself reports it)."""
    from raysweep.calibration.digests import file_digest

    for source, files in trial.source_files.items():
        for name, planned in files.items():
            now = file_digest(name)
            if now is not None and now != planned:
                raise ValueError(
                    f"calibration source {source!r}: {name} changed since the sweep was planned; "
                    "run the sweep again to plan its points on the new content"
                )


def sweep_trial(config: dict[str, Any]) -> None:
    """Tune's one trainable, for grid, confirmation and search points alike:
    ``config = {"point": TrialConfig dump, "dense": DenseBaseline dict}``, plus for a search
    trial ``weights``, ``seeds``, ``objective`` and ``metrics`` (what the searcher reads).

    Each trial of :func:`trial_configs` runs in turn, stopping at the first error record (a
    deterministic fault would fail the other seeds alike); the records travel as one string of
    JSON lines under ``RECORD_KEY`` (a string: Tune's TensorBoard logger skips it), their
    side files under ``ITEMS_KEY``. With ``rungs`` (search.early_stopping) the trial is scored
    in rungs instead (:func:`raysweep.trainables.rungs.run_in_rungs`)."""
    dense = DenseBaseline.from_dict(config["dense"])
    if config.get("rungs"):
        run_in_rungs(config, trial_configs(config), dense, report=tune.report,
                     result=partial(trial_result, config), log=trial_log)  # fmt: skip
        return
    records: list[TrialRecord] = []
    items: list[str | None] = []
    for trial in trial_configs(config):
        record, payload = run_point(trial, dense)
        records.append(record)
        items.append(payload)
        if record.status != "ok":
            break
    tune.report(trial_result(config, records, items))


def trial_result(
    config: Mapping[str, Any], records: list[TrialRecord], items: list[str | None]
) -> dict[str, Any]:
    """What a Tune trial reports: its records as one string of JSON lines (Tune's TensorBoard
    logger skips strings, where a list would be logged as a histogram and warned about with the
    whole record), the side files (taken out by the driver's record writer before any logger
    sees them) and the scores Tune and the searcher read."""
    text = "\n".join(r.to_json() for r in records)
    return {RECORD_KEY: text, ITEMS_KEY: items, **_scores(config, records)}


def _scores(config: Mapping[str, Any], records: list[TrialRecord]) -> dict[str, float]:
    """The numbers Tune and the searcher read: a search trial's mean objective over its seeds
    (NaN when a seed failed: Optuna marks the trial FAIL, its sampler ignores it), else the
    record's retentions."""
    ok = all(r.status == "ok" for r in records)
    if "objective" in config:
        if not ok:
            return {name: math.nan for name in config.get("metrics") or [METRIC]}
        return seed_mean([r.model_dump(mode="json") for r in records], config["objective"])
    if not ok:
        return {}
    (record,) = records
    return {"total_retention": record.total_retention, "worst_retention": record.worst_retention}


def seed_mean(rows: list[Mapping[str, Any]], objective: str) -> dict[str, float]:
    """What one search trial reports for its records (one per seed): the mean ``objective``
    and the mean retention per dimension (multi-objective search)."""
    values = [objective_value(row, objective) for row in rows]
    dims = [dimension_metrics(row) for row in rows]
    return {METRIC: sum(values) / len(values),
            **{k: sum(d[k] for d in dims) / len(dims) for k in dims[0]}}  # fmt: skip


def record_texts(value: Any) -> list[str]:
    """The record JSON texts a result carries under ``RECORD_KEY``: JSON lines, or a list."""
    if isinstance(value, str):
        return [line for line in value.splitlines() if line.strip()]
    return list(value or [])
