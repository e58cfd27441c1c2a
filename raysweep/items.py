"""Per-item side files: every ok trial's, and every dense baseline's, per-item task scores.

A record holds each task's score; a paired comparison with a confidence interval needs the
items behind it. The sweep driver keeps them beside the records, one compact JSON file each::

    <output>/items/<trial_id>.json      one per trial with status ok (grid, search, confirm)
    <output>/items/dense-<key>.json     one per dense baseline the run used (<key>: dense_key)

Trial file (the dense file has ``"dense_key": "<key>"`` instead of ``trial_id`` and ``dense``)::

    {"format": 1, "trial_id": "<16 hex>", "dense": "dense-<key>",
     "tasks": {"<lm-eval task>": {"dimension": "math", "chance": 0.25, "metric": "acc",
                                  "doc_ids": [0, 1, ...], "values": [1, 0, ...]}, ...}}

``dimension``, ``chance`` and ``metric`` are the suite table's; ``doc_ids`` are lm-eval's (a
group's members numbered as :class:`~raysweep.evaluation.scoring.TaskItems` says) and
``values`` the primary metric per item, in the same order, integral values written as
integers. ``mean(values)`` is the record's ``task_scores[task]`` (to 1e-9); a task whose score is
not the mean of per-item values (a corpus-level metric, a group not weighted by size) has no
entry.
Two trials on the same suite and item selection share ``doc_ids``: pair them by
``(task, doc_id)``.

Files are written atomically (:func:`raysweep.atomic.write_text_atomic`), a trial's before its
record is appended, by the driver only (``raysweep.trainables.callbacks.RecordWriter``;
``raysweep.dense.sweep_baseline`` for the dense ones). Plain Python: no Ray, torch or lm-eval.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from raysweep.atomic import write_text_atomic
from raysweep.evaluation.dimensions import Suite
from raysweep.evaluation.scoring import ITEM_MEAN_TOLERANCE, CapabilityScores

FORMAT = 1
ITEMS_DIR = "items"  # under a run's output directory

_TRIAL_ID = re.compile(r"[0-9a-f]{16}")
_ENTRY_KEYS = {"dimension", "chance", "metric", "doc_ids", "values"}


def dense_stem(key: str) -> str:
    """The file stem of dense baseline ``key``'s side file (a trial file's ``dense``)."""
    return f"dense-{key}"


def trial_items_path(out: str | Path, trial_id: str) -> Path:
    return Path(out) / ITEMS_DIR / f"{trial_id}.json"


def dense_items_path(out: str | Path, key: str) -> Path:
    return Path(out) / ITEMS_DIR / f"{dense_stem(key)}.json"


def _tasks(scores: CapabilityScores, suite: Suite) -> dict[str, Any]:
    if scores.items is None:
        raise ValueError("the scores carry no per-item values (evaluate with items=True)")
    specs = {t.name: t for t in suite.tasks}
    unknown = sorted(set(scores.items) - set(specs))
    if unknown:
        raise ValueError(f"per-item values of task(s) not in suite {suite.name!r}: {unknown}")
    return {
        name: {"dimension": specs[name].dimension, "chance": float(specs[name].chance),
               "metric": specs[name].metric, **items.to_dict()}
        for name, items in scores.items.items()
    }  # fmt: skip


def trial_payload(
    trial_id: str, dense_key: str, scores: CapabilityScores, suite: Suite
) -> dict[str, Any]:
    """A trial's side file: its pruned model's per-item values on ``suite``."""
    return {"format": FORMAT, "trial_id": trial_id, "dense": dense_stem(dense_key),
            "tasks": _tasks(scores, suite)}  # fmt: skip


def dense_payload(dense_key: str, scores: CapabilityScores, suite: Suite) -> dict[str, Any]:
    """A dense baseline's side file: the dense model's per-item values on ``suite``."""
    return {"format": FORMAT, "dense_key": dense_key, "tasks": _tasks(scores, suite)}


def dumps(payload: Mapping[str, Any]) -> str:
    """The compact JSON text of a payload (what a trial reports to the driver)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate(
    payload: Any, task_scores: Mapping[str, float] | None = None
) -> dict[str, Any]:  # fmt: skip
    """``payload`` if it follows the format, else ValueError naming what does not. With
    ``task_scores`` (a record's), every task must be one of them and average to its score."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"not a format-{FORMAT} items file")
    head = set(payload) - {"format", "tasks"}
    if head == {"trial_id", "dense"}:
        if not (isinstance(payload["trial_id"], str) and _TRIAL_ID.fullmatch(payload["trial_id"])):
            raise ValueError(f"trial_id {payload['trial_id']!r} is not 16 hex digits")
        if not (isinstance(payload["dense"], str) and payload["dense"].startswith("dense-")):
            raise ValueError(f"dense {payload['dense']!r} is not a dense side file's stem")
    elif head == {"dense_key"}:
        if not (isinstance(payload["dense_key"], str) and payload["dense_key"]):
            raise ValueError("dense_key must be a non-empty string")
    else:
        raise ValueError(f"expected trial_id and dense, or dense_key; got {sorted(head)}")
    tasks = payload.get("tasks")
    if not isinstance(tasks, dict):
        raise ValueError("tasks must be an object")
    for name, entry in tasks.items():
        _check_entry(name, entry, task_scores)
    return payload


def _check_entry(name: str, entry: Any, task_scores: Mapping[str, float] | None) -> None:
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise ValueError(f"task {name!r}: expected keys {sorted(_ENTRY_KEYS)}, got {keys}")
    doc_ids, values = entry["doc_ids"], entry["values"]
    if not (isinstance(entry["dimension"], str) and isinstance(entry["metric"], str)
            and _number(entry["chance"])):  # fmt: skip
        raise ValueError(f"task {name!r}: dimension and metric are strings, chance a number")
    if not (isinstance(doc_ids, list) and isinstance(values, list)) or not values:
        raise ValueError(f"task {name!r}: doc_ids and values must be non-empty lists")
    if len(doc_ids) != len(values):
        raise ValueError(f"task {name!r}: {len(doc_ids)} doc_ids but {len(values)} values")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in doc_ids):
        raise ValueError(f"task {name!r}: doc_ids must be integers")
    if len(set(doc_ids)) != len(doc_ids):
        raise ValueError(f"task {name!r}: a doc_id appears twice")
    if not all(_number(v) for v in values):
        raise ValueError(f"task {name!r}: values must be finite numbers")
    if task_scores is not None:
        check_mean(name, values, task_scores)


def check_mean(name: str, values: Sequence[float], task_scores: Mapping[str, float]) -> None:
    """ValueError unless task ``name`` has a score in ``task_scores`` and its per-item
    ``values`` average to it (to :data:`ITEM_MEAN_TOLERANCE`)."""
    if name not in task_scores:
        raise ValueError(f"task {name!r} has no score in the record")
    mean = sum(values) / len(values)
    if abs(mean - task_scores[name]) > ITEM_MEAN_TOLERANCE:
        raise ValueError(f"task {name!r}: values average {mean}, the score is {task_scores[name]}")


def write_items(
    out: str | Path, payload: Mapping[str, Any], task_scores: Mapping[str, float] | None = None
) -> Path:
    """Validate ``payload`` (against ``task_scores`` as :func:`validate` does) and write its
    :func:`dumps` text, atomically, where its kind and id say under ``out``."""
    validate(dict(payload), task_scores)
    if "trial_id" in payload:
        path = trial_items_path(out, payload["trial_id"])
    else:
        path = dense_items_path(out, payload["dense_key"])
    write_text_atomic(path, dumps(payload))
    return path


def read_items(path: str | Path) -> dict[str, Any]:
    """A side file's payload (ValueError when it does not follow the format; OSError)."""
    return validate(json.loads(Path(path).read_text(encoding="utf-8")))


def read_json_checked(path: str | Path) -> tuple[Any, str | None]:
    """``(parsed JSON, None)``, or ``(None, why it cannot be read)``: missing, unreadable, not
    valid JSON (the reasons ``raysweep verify`` prints)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg}, char {exc.pos})"
    except UnicodeDecodeError as exc:
        return None, f"not text ({exc.reason})"


def check_side_file(
    path: str | Path, task_scores: Mapping[str, float], **expected: str
) -> str | None:
    """Why the side file at ``path`` cannot be trusted, or None: it must exist, parse, follow the
    format with every task averaging to its score in ``task_scores`` (:func:`validate`), and
    name what ``expected`` says (``trial_id=``, ``dense=``, ``dense_key=``)."""
    data, why = read_json_checked(path)
    if why is not None:
        return why
    try:
        payload = validate(data, task_scores)
    except ValueError as exc:
        return str(exc)
    for key, value in expected.items():
        if payload.get(key) != value:
            return f"{key} is {payload.get(key)!r}, not {value!r}"
    return None


def check_trial_file(out: str | Path, record: Any) -> str | None:
    """:func:`check_side_file` of an ok ``record``'s side file under ``out``: its own, scored
    against the dense baseline the record names, averaging to the record's task scores."""
    return check_side_file(trial_items_path(out, record.trial_id), record.task_scores,
                           trial_id=record.trial_id, dense=dense_stem(record.dense_cache_key))  # fmt: skip


__all__ = [
    "FORMAT",
    "ITEMS_DIR",
    "check_mean",
    "check_side_file",
    "check_trial_file",
    "dense_items_path",
    "dense_payload",
    "dense_stem",
    "dumps",
    "read_items",
    "trial_items_path",
    "trial_payload",
    "validate",
    "write_items",
]
