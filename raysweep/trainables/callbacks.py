"""Tune callbacks run in the driver: write each finished trial's record (and its per-item side
file), show live progress."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ray.tune import Callback

from raysweep.atomic import WriteError
from raysweep.items import trial_items_path, write_items
from raysweep.pipeline import error_record, summarise_traceback
from raysweep.records import TrialRecord, append_record, finished_ids
from raysweep.search.objectives import RUNG_KEY, is_stopped_result
from raysweep.trainables.trial import ITEMS_KEY, RECORD_KEY, record_texts, trial_configs


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    try:
        if path and Path(path).exists():
            return summarise_traceback(Path(path).read_text())
    except OSError:
        pass
    return "trial failed (no error file was written; the worker may have died)"


class RecordWriter(Callback):
    """Append one record per finished point to ``records.jsonl``, never twice for one trial id
    (a search trial over several seeds reports a list of records, one per seed).

    An ok trial's per-item scores (reported under ``ITEMS_KEY``) are written first, to
    ``items/<trial_id>.json`` beside ``records.jsonl`` (:mod:`raysweep.items`): a record is never
    there without its side file. The payload is taken out of the result, so that Tune's result
    logs and experiment state keep only the record. ``redo``: trials with an ok record whose side
    file is broken (:mod:`raysweep.verify`), run again: their side file and record are written
    again.
    """

    def __init__(self, records_path: Path, redo: Iterable[str] = ()) -> None:
        self.path = Path(records_path)
        self.out = self.path.parent
        self.written: set[str] = finished_ids(self.path) - set(redo)
        self.errors: list[TrialRecord] = []
        self.ok = 0
        self.stopped = 0  # search trials an early-stopping scheduler ended at a rung
        self.failure: WriteError | None = None
        self._started: dict[str, float] = {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._started[trial.trial_id] = time.monotonic()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._started.pop(trial.trial_id, None)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        raw = record_texts(result.get(RECORD_KEY))
        if not raw:
            return
        # Tune lets callbacks change the result in place, before it is logged and kept.
        items = result.pop(ITEMS_KEY, None)
        if items is None or isinstance(items, str):
            items = [items] + [None] * (len(raw) - 1)
        # A search trial over several seeds reports one record (and side file) per seed.
        for one, payload in zip(raw, items, strict=True):
            self._write(trial, one, payload)

    def _write(self, trial: Any, raw: str, items: str | None) -> None:
        record = TrialRecord.model_validate_json(raw)
        record.attempts = int(getattr(trial, "num_failures", 0)) + 1
        started = self._started.get(trial.trial_id)
        if started is not None:
            # Seen from the driver: scheduling, actor start and reporting included.
            record.timings["trial_wall_s"] = time.monotonic() - started
        if record.trial_id in self.written:
            return
        if record.status == "ok":
            self._write_items(record, items)
        self._append(record)
        self.written.add(record.trial_id)
        if record.status == "ok":
            self.ok += 1
        elif record.status == "stopped":
            self.stopped += 1
        else:
            self.errors.append(record)

    def _write_items(self, record: TrialRecord, raw: str | None) -> None:
        """The trial's side file; a missing or inconsistent payload is reported, not written."""
        try:
            if raw is None:
                raise ValueError("the trial reported no per-item scores")
            payload = json.loads(raw)
            if isinstance(payload, dict) and payload.get("trial_id") != record.trial_id:
                raise ValueError(f"they are trial {payload.get('trial_id')!r}'s")
            write_items(self.out, payload, task_scores=record.task_scores)
        except ValueError as exc:
            print(f"[raysweep] WARNING: trial {record.trial_id} ({record.mix_name}): no per-item "
                  f"side file: {exc}", file=sys.stderr, flush=True)  # fmt: skip
        except OSError as exc:
            raise self._failed(trial_items_path(self.out, record.trial_id), exc) from None

    def _append(self, record: TrialRecord) -> None:
        try:
            append_record(self.path, record)
        except OSError as exc:
            raise self._failed(self.path, exc) from None

    def _failed(self, path: Path, exc: OSError) -> WriteError:
        """The sweep stops: a record or side file it owes cannot be written. Kept, so that the
        driver can name it once Tune has wrapped it (:func:`write_failures`)."""
        self.failure = exc if isinstance(exc, WriteError) else WriteError(path, exc)
        return self.failure

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # A trial whose last report was a rung's was stopped there by the scheduler: it leaves
        # the records it reported for that case (status "stopped"), never a finished one.
        last = getattr(trial, "last_result", None) or {}
        if is_stopped_result(last):
            for raw in record_texts(last[RUNG_KEY]):
                self._write(trial, raw, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Every point the Tune trial ran (a search trial's proposed mix, once per seed) that has
        # no record yet: the error is written under the mix that failed, never the base point's.
        for point in trial_configs(trial.config):
            if point.trial_id in self.written:
                continue
            record = error_record(point, _error_text(trial), attempts=int(trial.num_failures))
            self._append(record)
            self.written.add(point.trial_id)
            self.errors.append(record)


@contextlib.contextmanager
def write_failures(writer: RecordWriter) -> Iterator[None]:
    """Around ``Tuner.fit()``: Tune wraps a callback's exception in a TuneError holding the
    whole traceback; a record or side file the writer could not write comes out as its own
    :class:`~raysweep.atomic.WriteError` instead (one line: the file and the cause)."""
    try:
        yield
    except Exception:
        if writer.failure is not None:
            raise writer.failure from None
        raise


class ProgressLine(Callback):
    """``[raysweep] grid 12/96 done, 2 running, 1 failed, 3 retried, ETA 3m20s`` as trials move."""

    def __init__(self, phase: str, total: int) -> None:
        self.phase, self.total = phase, total
        self.start = time.monotonic()
        self.done = self.failed = self.retried = 0
        self.running: set[str] = set()
        self.in_error: set[str] = set()  # trials that reported an error record

    def _show(self) -> None:
        finished = self.done + self.failed
        elapsed = time.monotonic() - self.start
        eta = "?"
        if finished:
            left = elapsed / finished * (self.total - finished)
            eta = f"{int(left // 60)}m{int(left % 60):02d}s"
        print(
            f"[raysweep] {self.phase} {finished}/{self.total} done, {len(self.running)} running, "
            f"{self.failed} failed, {self.retried} retried, elapsed {elapsed:.0f}s, ETA {eta}"
            + self._extra(),
            file=sys.stdout,  # looked up per call: Tune pickles callbacks with its state
            flush=True,
        )

    def _extra(self) -> str:
        return ""

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)
        self._show()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        texts = record_texts(result.get(RECORD_KEY))
        if any(json.loads(t).get("status") != "ok" for t in texts):
            self.in_error.add(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        # A deterministic failure completes the Tune trial with an error record: a failure.
        if trial.trial_id in self.in_error:
            self.failed += 1
        else:
            self.done += 1
        self._show()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.retried += 1

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.failed += 1
        self._show()


class SearchProgress(ProgressLine):
    """:class:`ProgressLine` of a mix search, with the best objective so far and its mix:
    ``..., best worst_retention 0.812 (toy_a 0.41, toy_b 0.59)``."""

    def __init__(self, phase: str, total: int, metric: str, objective: str) -> None:
        super().__init__(phase, total)
        self.metric, self.objective = metric, objective
        self.best: float | None = None
        self.best_weights: dict[str, float] = {}

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        super().on_trial_result(iteration, trials, trial, result, **info)
        if is_stopped_result(result):
            return  # a rung's value, on part of the items: not comparable with a finished trial's
        value = result.get(self.metric)
        if value is None or value != value or (self.best is not None and value <= self.best):
            return
        self.best = float(value)
        weights = trial.config.get("weights", {})
        self.best_weights = {k: float(v) for k, v in weights.items() if v > 0}

    def _extra(self) -> str:
        if self.best is None:
            return ""
        mix = ", ".join(f"{k} {v:.2f}" for k, v in self.best_weights.items())
        return f", best {self.objective} {self.best:.3f} ({mix})"
