"""Read a run's per-item side files (``<run>/items/*.json``) and check them against the records.

The files follow the producer's contract (format 1):

- ``items/<trial_id>.json``: ``{"format": 1, "trial_id", "dense": "dense-<key>", "tasks": {task:
  {"dimension", "chance", "metric", "doc_ids": [...], "values": [...]}}}``, one per ok trial;
- ``items/dense-<key>.json``: the same with ``"dense_key": "<key>"`` instead of ``trial_id`` and
  ``dense``, one per dense baseline.

A trial is usable for paired statistics only when its side file and its dense baseline's side
file are readable and well formed and agree with its record: the same tasks as
``task_scores``, each task's item mean equal to ``task_scores[task]`` (and the dense file's to
``dense_task_scores[task]``), the record's ``dense_cache_key`` naming that dense file, and the
retention recomputed from the item means equal to the record's ``retention``. Anything else
(a missing, truncated or malformed file, a length or mean mismatch) leaves the trial out, with
one note saying why; nothing here raises on bad input.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ITEMS_DIR = "items"
FORMAT = 1
DENSE_PREFIX = "dense-"
# The item mean of a task must reproduce the record's task score to this (absolute) tolerance;
# the contract promises 1e-9 for accuracies, which JSON floats keep exactly.
SCORE_TOLERANCE = 1e-9


class ItemsError(ValueError):
    """A side file that cannot be used; the message says why."""


@dataclass(frozen=True)
class TaskItems:
    """One task's per-item values (``values[i]`` belongs to ``doc_ids[i]``)."""

    dimension: str
    chance: float
    metric: str
    doc_ids: tuple[Any, ...]
    values: np.ndarray  # (n_items,) float

    @property
    def mean(self) -> float:
        return float(self.values.mean())


@dataclass(frozen=True)
class ItemFile:
    """One side file: a trial's (``trial_id`` and ``dense`` set) or a dense baseline's
    (``dense_key`` set)."""

    path: Path
    tasks: dict[str, TaskItems]
    trial_id: str | None = None
    dense: str | None = None  # file stem of the trial's dense side file
    dense_key: str | None = None

    @property
    def stem(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class RunItems:
    """The usable side files of one run's ok trials, and a note per trial left out."""

    directory: Path
    trials: dict[str, ItemFile]  # trial_id -> its side file
    dense: dict[str, ItemFile]  # dense file stem -> the dense side file
    notes: tuple[str, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)  # trial_id -> why it was left out

    def dense_of(self, trial_id: str) -> ItemFile:
        stem = self.trials[trial_id].dense
        assert stem is not None
        return self.dense[stem]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _task(name: str, raw: Any) -> TaskItems:
    if not isinstance(raw, Mapping):
        raise ItemsError(f"task {name!r} is not an object")
    missing = [k for k in ("dimension", "chance", "metric", "doc_ids", "values") if k not in raw]
    if missing:
        raise ItemsError(f"task {name!r} lacks {', '.join(missing)}")
    dimension, chance, metric = raw["dimension"], raw["chance"], raw["metric"]
    doc_ids, values = raw["doc_ids"], raw["values"]
    if not isinstance(dimension, str) or not dimension:
        raise ItemsError(f"task {name!r}: dimension is not a name")
    if not _number(chance) or not math.isfinite(chance):
        raise ItemsError(f"task {name!r}: chance is not a number")
    if not isinstance(metric, str):
        raise ItemsError(f"task {name!r}: metric is not a name")
    if not isinstance(doc_ids, list) or not isinstance(values, list):
        raise ItemsError(f"task {name!r}: doc_ids and values must be lists")
    if len(doc_ids) != len(values):
        raise ItemsError(f"task {name!r}: {len(doc_ids)} doc_ids but {len(values)} values")
    if not values:
        raise ItemsError(f"task {name!r} has no items")
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in doc_ids):
        raise ItemsError(f"task {name!r}: a doc_id is not an integer")
    if not all(_number(v) for v in values):
        raise ItemsError(f"task {name!r}: a value is not a number")
    array = np.asarray(values, dtype=float)
    if not np.isfinite(array).all():
        raise ItemsError(f"task {name!r}: a value is not finite")
    return TaskItems(dimension, float(chance), metric, tuple(doc_ids), array)


def read_item_file(path: str | Path) -> ItemFile:
    """Parse and check one side file against the contract's format; :class:`ItemsError`
    names the first problem (unreadable, truncated, wrong format, mismatched lists)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ItemsError(f"{path.name} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ItemsError(f"{path.name} cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ItemsError(f"{path.name} is not valid JSON ({exc.msg}, char {exc.pos})") from None
    if not isinstance(data, dict):
        raise ItemsError(f"{path.name} is not a JSON object")
    if data.get("format") != FORMAT:
        raise ItemsError(f"{path.name} has format {data.get('format')!r}, not {FORMAT}")
    tasks = data.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise ItemsError(f"{path.name} has no tasks")
    try:
        parsed = {str(name): _task(str(name), raw) for name, raw in tasks.items()}
    except ItemsError as exc:
        raise ItemsError(f"{path.name}: {exc}") from None
    if path.stem.startswith(DENSE_PREFIX):
        key = data.get("dense_key")
        if not isinstance(key, str) or DENSE_PREFIX + key != path.stem:
            raise ItemsError(f"{path.name}: dense_key {key!r} does not match the file name")
        return ItemFile(path, parsed, dense_key=key)
    trial_id, dense = data.get("trial_id"), data.get("dense")
    if not isinstance(trial_id, str) or trial_id != path.stem:
        raise ItemsError(f"{path.name}: trial_id {trial_id!r} does not match the file name")
    if not isinstance(dense, str) or not dense.startswith(DENSE_PREFIX):
        raise ItemsError(f"{path.name}: dense {dense!r} is not a dense side file's name")
    return ItemFile(path, parsed, trial_id=trial_id, dense=dense)


def items_dir(run_dir: str | Path) -> Path:
    """``<run>/items``; a records file stands for its directory."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        run_dir = run_dir.parent
    return run_dir / ITEMS_DIR


def has_items(run_dir: str | Path) -> bool:
    directory = items_dir(run_dir)
    return directory.is_dir() and any(directory.glob("*.json"))


def _scores(record: Mapping[str, Any], key: str) -> dict[str, float] | None:
    """``record[key]`` (nested or flattened as ``key.<task>``) as floats, or None."""
    nested = record.get(key)
    if isinstance(nested, Mapping):
        return {str(k): v for k, v in nested.items()}
    prefix = key + "."
    flat = {k[len(prefix) :]: v for k, v in record.items() if str(k).startswith(prefix)}
    return flat or None


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def dimension_means(tasks: Mapping[str, TaskItems]) -> tuple[dict[str, float], dict[str, float]]:
    """Dimension scores (unweighted mean of its tasks' item means) and chance levels (mean of
    its tasks' chances), as the contract and ``raysweep.evaluation.scoring`` define them."""
    by_dimension: dict[str, list[TaskItems]] = {}
    for task in tasks.values():
        by_dimension.setdefault(task.dimension, []).append(task)
    scores = {d: sum(t.mean for t in ts) / len(ts) for d, ts in by_dimension.items()}
    chance = {d: sum(t.chance for t in ts) / len(ts) for d, ts in by_dimension.items()}
    return scores, chance


def item_retention(trial: ItemFile, dense: ItemFile) -> dict[str, float | None]:
    """Retention per dimension recomputed from item means (None where the dense dimension
    score is at or below the mean chance of its tasks)."""
    pruned, _ = dimension_means(trial.tasks)
    base, chance = dimension_means(dense.tasks)
    return {d: (pruned[d] / base[d] if base[d] > chance[d] else None) for d in base}


def _check_scores(file: ItemFile, scores: Mapping[str, Any] | None, what: str) -> None:
    if scores is None:
        raise ItemsError(f"the record has no {what}")
    scores = {k: v for k, v in scores.items() if _present(v)}
    if set(scores) != set(file.tasks):
        extra, lacking = (
            sorted(set(file.tasks) - set(scores)),
            sorted(set(scores) - set(file.tasks)),
        )
        raise ItemsError(
            f"{file.path.name} and the record's {what} name different tasks"
            + (f" (only in the side file: {', '.join(extra)})" if extra else "")
            + (f" (only in the record: {', '.join(lacking)})" if lacking else "")
        )
    for name, task in file.tasks.items():
        try:
            recorded = float(scores[name])
        except (TypeError, ValueError):
            raise ItemsError(f"the record's {what}[{name!r}] is not a number") from None
        if abs(task.mean - recorded) > SCORE_TOLERANCE:
            raise ItemsError(
                f"{file.path.name}: the mean of {name!r} ({task.mean:.6g}, {len(task.values)} "
                f"items) disagrees with the record's {what} ({recorded:.6g})"
            )


def _check_trial(record: Mapping[str, Any], trial: ItemFile, dense: ItemFile) -> None:
    _check_scores(trial, _scores(record, "task_scores"), "task_scores")
    _check_scores(dense, _scores(record, "dense_task_scores"), "dense_task_scores")
    key = record.get("dense_cache_key")
    if isinstance(key, str) and key and DENSE_PREFIX + key != trial.dense:
        raise ItemsError(
            f"{trial.path.name} names dense baseline {trial.dense!r} but the record's "
            f"dense_cache_key is {key!r}"
        )
    for name, task in trial.tasks.items():
        base = dense.tasks[name]
        if (task.dimension, task.chance) != (base.dimension, base.chance):
            raise ItemsError(f"{name!r} has another dimension or chance than in {dense.path.name}")
        if aligned_order(base.doc_ids, task.doc_ids) is None:
            raise ItemsError(f"{name!r} is scored on other items than in {dense.path.name}")
    recorded = _scores(record, "retention") or {}
    for dimension, value in item_retention(trial, dense).items():
        theirs = recorded.get(dimension)
        if (value is None) != (not _present(theirs)) or (
            value is not None and abs(value - float(theirs)) > 1e-9 * max(1.0, abs(value))
        ):
            raise ItemsError(
                f"the retention of {dimension!r} recomputed from the items ({value}) disagrees "
                f"with the record's ({theirs})"
            )


def aligned_order(reference: tuple, other: tuple) -> np.ndarray | None:
    """Indices that put ``other``'s items in ``reference``'s order, or None when the two are
    not the same items. Identical lists pair by position (duplicated doc_ids included);
    otherwise both must hold the same distinct doc_ids, paired by value."""
    if reference == other:
        return np.arange(len(other))
    if len(reference) != len(other) or len(set(reference)) != len(reference):
        return None
    position = {doc: i for i, doc in enumerate(other)}
    if len(position) != len(other) or set(position) != set(reference):
        return None
    return np.fromiter((position[doc] for doc in reference), dtype=int, count=len(reference))


def _trial_label(record: Mapping[str, Any]) -> str:
    mix = record.get("mix_name") or record.get("source") or "?"
    return f"trial {record.get('trial_id')} ({mix}, seed {record.get('seed')})"


def load_items(run_dir: str | Path, records: Iterable[Mapping[str, Any]]) -> RunItems:
    """The side files of ``records`` (ok trial records, nested or flattened as in
    ``analysis.records``) found in ``<run_dir>/items``, each checked against its record.

    Every trial whose side files are missing or do not agree is left out of ``trials``; its
    reason is in ``skipped``. ``notes`` names each broken file once: a trial's own side file with
    the trial's label, a broken dense baseline's side file with the number of trials it takes out
    (one note, not one per trial that rests on it). Never raises on bad files.
    """
    directory = items_dir(run_dir)
    trials: dict[str, ItemFile] = {}
    dense: dict[str, ItemFile] = {}
    broken_dense: dict[str, str] = {}
    skipped: dict[str, str] = {}
    notes: list[str] = []
    resting: dict[str, list[str]] = {}  # broken dense stem -> labels of the trials it takes out
    for record in records:
        trial_id = record.get("trial_id")
        if not isinstance(trial_id, str) or not trial_id:
            continue
        try:
            trial = read_item_file(directory / f"{trial_id}.json")
            stem = trial.dense
            assert stem is not None
            if stem not in dense and stem not in broken_dense:
                try:
                    dense[stem] = read_item_file(directory / f"{stem}.json")
                except ItemsError as exc:
                    broken_dense[stem] = f"its dense baseline's side file: {exc}"
            if stem in broken_dense:
                resting.setdefault(stem, []).append(_trial_label(record))
                skipped[trial_id] = broken_dense[stem]
                continue
            _check_trial(record, trial, dense[stem])
        except ItemsError as exc:
            skipped[trial_id] = str(exc)
            notes.append(f"{_trial_label(record)} left out of paired statistics: {exc}")
            continue
        trials[trial_id] = trial
    for stem, labels in resting.items():
        why = broken_dense[stem].removeprefix("its dense baseline's side file: ")
        who = labels[0] if len(labels) == 1 else f"{len(labels)} trials resting on it"
        notes.append(f"dense baseline side file {ITEMS_DIR}/{stem}.json is broken ({why}): "
                     f"{who} left out of paired statistics")  # fmt: skip
    return RunItems(directory, trials, dense, tuple(notes), skipped)
