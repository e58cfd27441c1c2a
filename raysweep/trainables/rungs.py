"""A search trial evaluated in rungs, for Tune's early-stopping schedulers.

The trial prunes its mix once per search seed (each model its own: they are scored side by
side, so a trial over three seeds holds three pruned models), then scores every model's next
chunk of items (:func:`raysweep.dense.evaluate_between`) rung by rung. After each rung but the
last it reports the mean objective over its seeds on the items scored so far, the items per task
(``ITEMS_PER_TASK``, the schedulers' time attribute) and, under ``RUNG_KEY``, the records it
would leave if stopped there (status ``stopped``, ``stopped_at_items``): the driver's record
writer writes them only when the scheduler ends the trial. The last rung reports exactly what a
one-shot search trial reports (its records and side files under ``RECORD_KEY`` / ``ITEMS_KEY``),
its scores those of the whole evaluation.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import ray

from raysweep.config import TrialConfig
from raysweep.dense import DenseBaseline, evaluate_between
from raysweep.evaluation import get_suite
from raysweep.evaluation.rungs import items_scored, merge, rung_scores
from raysweep.items import dumps
from raysweep.pipeline import (
    PrunedTrial,
    describe_failure,
    error_record,
    is_deterministic,
    prune_trial,
    scored_outcome,
)
from raysweep.records import TrialRecord
from raysweep.search.objectives import (
    ITEMS_PER_TASK,
    ITEMS_SCORED,
    METRIC,
    RUNG_KEY,
    objective_value,
)


class _Failed(Exception):
    """A seed's deterministic failure, already turned into its error record."""

    def __init__(self, record: TrialRecord) -> None:
        self.record = record


Result = Callable[[list[TrialRecord], list[str | None]], dict[str, Any]]
Log = Callable[[str], tuple[Callable[[str], None], Callable[[int, int], None]]]


def run_in_rungs(
    config: Mapping[str, Any], trials: Sequence[TrialConfig], dense: DenseBaseline, *,
    report: Callable[[dict[str, Any]], None], result: Result, log: Log,
) -> None:  # fmt: skip
    """Prune each of ``trials`` (a search trial's seeds) and score them rung by rung
    (``config["rungs"]``: items per task by the end of each, the last the full set), calling
    ``report`` after each rung; the last reports ``result(records, side files)``, as a one-shot
    trial does. A deterministic failure is an error record reported at once through ``result``
    (a NaN objective: Optuna's FAIL); any other is raised for Tune to retry. ``log(label)``
    gives a trial's ``stage`` and ``progress`` callbacks."""
    try:
        _rungs(config, trials, dense, report, result, log)
    except _Failed as failed:
        report(result([failed.record], [None]))


def _rungs(config: Mapping[str, Any], trials: Sequence[TrialConfig], dense: DenseBaseline,
           report: Callable[[dict[str, Any]], None], result: Result, log: Log) -> None:  # fmt: skip
    started, t0 = _now(), time.perf_counter()
    pruned = [_guarded(trial, partial(_prune, trial, log)) for trial in trials]
    suite = get_suite(trials[0].evaluation.suite)
    scored: list[dict[str, Any]] = [{} for _ in trials]
    sizes, start = list(config["rungs"]), 0
    for k in sizes:
        for j, (trial, model) in enumerate(zip(trials, pruned, strict=True)):
            chunk = _guarded(trial, partial(_chunk, trial, model, start, k))
            scored[j] = merge(scored[j], chunk)
        start = k
        outcomes = [
            _guarded(trial, partial(_outcome, trial, model, items, dense, suite,
                                    last=k == sizes[-1], started=started, t0=t0))
            for trial, model, items in zip(trials, pruned, scored, strict=True)
        ]  # fmt: skip
        records = [_placed(o.record) for o in outcomes]
        progress = {ITEMS_PER_TASK: k, ITEMS_SCORED: sum(items_scored(s) for s in scored)}
        if k == sizes[-1]:
            # The full set: the records and side files a one-shot search trial reports.
            report({**result(records, [dumps(o.items) for o in outcomes]), **progress})
            return
        report({**_rung_scores(config, records, k), **progress})


def _outcome(trial: TrialConfig, model: PrunedTrial, items: Mapping[str, Any],
             dense: DenseBaseline, suite: Any, *, last: bool, started: str,
             t0: float) -> Any:  # fmt: skip
    base, scores = _against(dense, items, suite, last=last)
    return scored_outcome(trial, base, model, scores, started=started,
                          total_s=time.perf_counter() - t0)  # fmt: skip


def _against(dense: DenseBaseline, items: Mapping[str, Any], suite: Any, *,
             last: bool) -> tuple[DenseBaseline, Any]:  # fmt: skip
    """(the dense baseline a rung's retention is against, the pruned model's scores there): at
    the last rung the dense baseline itself, as a one-shot trial's; before it, the dense model's
    scores on the same first items."""
    pruned, on_items = rung_scores(items, dense.scores, suite)
    return (dense if last else DenseBaseline(dense.key, on_items)), pruned


def _rung_scores(config: Mapping[str, Any], records: list[TrialRecord], k: int) -> dict[str, Any]:
    """A rung's report: the mean objective over the seeds on the items scored so far, and the
    records the trial leaves if stopped here."""
    stopped = [r.model_copy(update={"status": "stopped", "stopped_at_items": k}) for r in records]
    values = [objective_value(r.model_dump(mode="json"), config["objective"]) for r in records]
    return {METRIC: sum(values) / len(values), RUNG_KEY: "\n".join(r.to_json() for r in stopped)}


def _prune(trial: TrialConfig, log: Log) -> PrunedTrial:
    stage, progress = log(trial.label)
    # Not the worker's cached dense model: each seed's pruned model lives through every rung.
    return prune_trial(trial, stage=stage, progress=progress, keep_pristine=False)


def _chunk(trial: TrialConfig, pruned: PrunedTrial, start: int, stop: int) -> dict[str, Any]:
    loaded = pruned.loaded
    with pruned.timer.phase("eval"):
        return evaluate_between(loaded.model, loaded.tokenizer, trial.evaluation.suite,
                                trial.evaluation, start, stop)  # fmt: skip


def _guarded(trial: TrialConfig, work: Callable[[], Any]) -> Any:
    """``work()``; a deterministic failure becomes the trial's error record (:class:`_Failed`),
    any other is raised for Tune to retry."""
    try:
        return work()
    except Exception as exc:
        if not is_deterministic(exc):
            raise
        record = error_record(trial, describe_failure(exc, "evaluating in rungs", trial), 1)
        raise _Failed(_placed(record)) from exc


def _placed(record: TrialRecord) -> TrialRecord:
    record.node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    record.host = platform.node()
    return record


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


__all__ = ["run_in_rungs"]
