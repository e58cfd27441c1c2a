"""Read ``records.jsonl`` into a flat table, without Ray, torch or the ``raysweep`` package.

Each line is one JSON trial record (see ``raysweep.records.TrialRecord``). Nested mappings of
scalars (``retention``, ``calib_metrics``, ``mix``, ...) become dotted columns
(``retention.code``); deeper values (``config``) are kept as JSON text. A line that does not
parse (a crash mid-write leaves a partial last line) is skipped and reported, never raised.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RECORDS_FILE = "records.jsonl"
DIMENSIONS = ("general", "commonsense", "code", "math")
GROUP_KEYS = ("method", "structure", "sparsity")
TOTAL = "total"
WORST = "worst"

# Record fields whose mapping values are numbers: coerced to float so ``None`` becomes NaN.
_NUMERIC_MAPPINGS = (
    "calib_metrics",
    "task_scores",
    "dense_task_scores",
    "dimension_scores",
    "dense_dimension_scores",
    "retention",
    "retention_above_chance",
    "timings",
    "mix",
    "dense_kept",
    "generated_tokens",
    "dense_generated_tokens",
    "truncated_share",
)
_NUMERIC_FIELDS = ("sparsity", "achieved_sparsity", "decoder_zero_fraction", "total_retention",
                   "worst_retention", "peak_host_bytes", "peak_device_bytes")  # fmt: skip


class RecordsWarning(UserWarning):
    """A line of a records file could not be read and was skipped."""


@dataclass(frozen=True)
class BrokenLine:
    line: int  # 1-based line number in the file
    reason: str


@dataclass(frozen=True)
class RecordSet:
    """The latest record of every trial in one file, flattened; ``ok`` holds the rows
    statistics use. ``superseded`` counts earlier records of retried trials, left out."""

    path: Path
    trials: pd.DataFrame
    broken_lines: tuple[BrokenLine, ...]
    superseded: int = 0

    @property
    def ok(self) -> pd.DataFrame:
        return self.trials[self.trials["status"] == "ok"]

    @property
    def n_errors(self) -> int:
        # A search trial stopped early at a rung is neither a result nor an error.
        return int((self.trials["status"] == "error").sum())

    def error_counts(self) -> dict[str, int]:
        """First line of each distinct error message, with how many trials failed with it."""
        failed = self.trials[self.trials["status"] == "error"]
        first_lines = failed["error"].fillna("(no message)").astype(str).str.split("\n").str[0]
        return {str(k): int(v) for k, v in first_lines.value_counts().items()}


def resolve_records_path(path: str | Path) -> Path:
    """A run directory means its ``records.jsonl``; a file path is used as given."""
    path = Path(path)
    if path.is_dir():
        path = path / RECORDS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no records file at {path}")
    return path


def flatten_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record as a flat row: ``{"retention": {"code": 0.5}}`` -> ``{"retention.code": 0.5}``."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            if all(not isinstance(v, Mapping | list) for v in value.values()):
                for sub, sub_value in value.items():
                    row[f"{key}.{sub}"] = sub_value
            else:
                row[key] = json.dumps(value, sort_keys=True)
        elif isinstance(value, list):
            row[key] = json.dumps(value)
        else:
            row[key] = value
    mix = record.get("mix")
    mix = mix if isinstance(mix, Mapping) else {}
    if "peak_memory_bytes" in row and "peak_host_bytes" not in row:
        # Before host and device peaks were recorded apart, one field held max(host, device).
        # On a CPU trial that is the host peak; on CUDA which of the two it was is unknown.
        legacy = row.pop("peak_memory_bytes")
        on_cpu = str(record.get("device", "")).startswith("cpu")
        row["peak_host_bytes"] = legacy if on_cpu else None
        row["peak_device_bytes"] = None
    row["n_sources"] = len(mix)
    row["source"] = next(iter(mix)) if len(mix) == 1 else record.get("mix_name")
    return row


def _frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    for required in ("status", "phase", "error", "mix_name", "source", *GROUP_KEYS):
        if required not in frame.columns:
            frame[required] = None
    if "n_sources" not in frame.columns:
        frame["n_sources"] = 0
    _pruning_variant(frame)
    numeric = [
        c
        for c in frame.columns
        if c in _NUMERIC_FIELDS or c.split(".", 1)[0] in _NUMERIC_MAPPINGS and "." in c
    ]
    for column in numeric:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


# Pruning choices beside the method, at the value that leaves the method as it is.
_VARIANT_COLUMNS = (("allocation", "uniform"), ("refine", "none"))


def _pruning_variant(frame: pd.DataFrame) -> None:
    """``method`` becomes the pruning variant, e.g. ``wanda+owl+dsnot`` (``base_method`` keeps
    the method alone), so every group of the study holds one variant; records without an
    allocation or refinement keep their method's name."""
    frame["base_method"] = frame["method"]
    method = frame["method"].astype(object)
    for column, plain in _VARIANT_COLUMNS:
        if column not in frame.columns:
            continue
        value = frame[column]
        other = value.notna() & (value != plain)
        method = method.where(~other, method.astype(str) + "+" + value.astype(str))
    frame["method"] = method


def parse_records(lines: Iterable[str]) -> tuple[list[dict[str, Any]], list[BrokenLine]]:
    """Parse JSON lines; blank lines are ignored, unreadable ones are returned as ``BrokenLine``."""
    records: list[dict[str, Any]] = []
    broken: list[BrokenLine] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.strip())
        except json.JSONDecodeError as exc:
            broken.append(BrokenLine(number, f"not valid JSON: {exc.msg}, column {exc.colno}"))
            continue
        if not isinstance(value, dict):
            broken.append(BrokenLine(number, f"not a JSON object ({type(value).__name__})"))
            continue
        records.append(value)
    return records, broken


def load_records(path: str | Path, *, warn: bool = True) -> RecordSet:
    """Load a run directory's ``records.jsonl`` (or a records file) into a :class:`RecordSet`.

    Unreadable lines are skipped; each is listed in ``broken_lines`` and, with ``warn``, emitted
    as a :class:`RecordsWarning` naming the file and line number. Trials recorded more than
    once keep one record (see :func:`latest_per_trial`).
    """
    path = resolve_records_path(path)
    with open(path, encoding="utf-8", errors="replace") as handle:
        records, broken = parse_records(handle)
    if warn:
        for item in broken:
            warnings.warn(
                f"{path}:{item.line}: skipped unreadable record: {item.reason}",
                RecordsWarning,
                stacklevel=2,
            )
    latest = latest_per_trial(records)
    frame = _frame(flatten_record(r) for r in latest)
    return RecordSet(path, frame, tuple(broken), superseded=len(records) - len(latest))


def latest_per_trial(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per ``trial_id``: its last ``ok`` record, else its last record; file order
    is kept. A retried trial (an error, then a success) counts once, and a trial rerun after
    success is not averaged in twice. Records without a ``trial_id`` are all kept."""
    chosen: dict[str, int] = {}
    for position, record in enumerate(records):
        trial = record.get("trial_id")
        if trial is None:
            continue
        previous = chosen.get(trial)
        if (
            previous is None
            or record.get("status") == "ok"
            or records[previous].get("status") != "ok"
        ):
            chosen[trial] = position
    keep = set(chosen.values())
    return [r for i, r in enumerate(records) if i in keep or r.get("trial_id") is None]


def ok_trials(records: RecordSet | pd.DataFrame) -> pd.DataFrame:
    """The rows statistics use: a RecordSet's ``ok`` rows, or a frame filtered the same way."""
    frame = records.trials if isinstance(records, RecordSet) else records
    return frame[frame["status"] == "ok"]


def columns_with_prefix(frame: pd.DataFrame, prefix: str) -> list[str]:
    """Names after ``prefix.`` of the columns that hold at least one number."""
    names = []
    for column in frame.columns:
        if column.startswith(prefix + ".") and frame[column].notna().any():
            names.append(column[len(prefix) + 1 :])
    return names


def dimensions_in(frame: pd.DataFrame) -> list[str]:
    """Dimensions with retention values: the study's four first, in their order, then others."""
    present = columns_with_prefix(frame, "retention")
    known = [d for d in DIMENSIONS if d in present]
    return known + sorted(d for d in present if d not in DIMENSIONS)


def metrics_in(frame: pd.DataFrame) -> list[str]:
    return sorted(columns_with_prefix(frame, "calib_metrics"))


def retention_column(dimension: str) -> str:
    """The record column of a dimension's retention, or of ``total`` / ``worst`` retention."""
    return {TOTAL: "total_retention", WORST: "worst_retention"}.get(dimension,
                                                                    f"retention.{dimension}")  # fmt: skip


def single_source_trials(frame: pd.DataFrame) -> pd.DataFrame:
    """Grid trials calibrated on exactly one source: the correlation study's population."""
    return frame[(frame["n_sources"] == 1) & (frame["phase"] == "grid")]


SEED_RANGE = "seed_range"


def seed_range_column(column: str) -> str:
    """The column holding ``column``'s range over seeds: ``seed_range:total_retention`` (a
    colon, so that prefix scans such as ``retention.`` never mistake it for a value)."""
    return f"{SEED_RANGE}:{column}"


def _range(values: pd.Series) -> float:
    """Max − min of the known values, NaN with fewer than two."""
    values = values.dropna()
    return float(values.max() - values.min()) if len(values) > 1 else float("nan")


def seed_ranges(trials: pd.DataFrame, columns: list[str]) -> dict[str, float]:
    """Max − min over ``trials`` (one per seed) of each column, NaN with fewer than two values."""
    return {
        seed_range_column(c): _range(trials[c]) if c in trials else float("nan") for c in columns
    }


def half_seed_range(frame: pd.DataFrame, column: str) -> pd.Series:
    """Half of each row's range over seeds of ``column`` (a fraction, as the column); NaN where a
    row has one seed or the frame holds no ranges."""
    name = seed_range_column(column)
    return frame[name] / 2 if name in frame else pd.Series(np.nan, index=frame.index)


def groups(frame: pd.DataFrame, group_by: tuple[str, ...]) -> Iterator[tuple[tuple, pd.DataFrame]]:
    """``(key tuple, rows)`` per group of ``frame`` in key order; ``((), frame)`` without
    grouping; nothing for an empty frame that is grouped."""
    if not group_by:
        yield (), frame
        return
    if frame.empty:
        return
    for key, part in frame.groupby(list(group_by), sort=True, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), part


def source_means(frame: pd.DataFrame, group_by: tuple[str, ...] = GROUP_KEYS) -> pd.DataFrame:
    """Seed-averaged single-source trials: one row per (group, source) with ``n_seeds``.

    Every calibration metric, dimension retention, total and worst retention is the mean over
    that source's ok trials in the group (missing values are skipped, not zero); each retention
    also has its range over seeds (``seed_range_column``; NaN with one seed).
    """
    single = single_source_trials(frame)
    retentions = [retention_column(d) for d in dimensions_in(single)]
    retentions += [c for c in ("total_retention", "worst_retention") if c in single.columns]
    retentions = list(dict.fromkeys(retentions))
    values = [f"calib_metrics.{m}" for m in metrics_in(single)] + retentions
    ranges = [seed_range_column(c) for c in retentions]
    keys = [*group_by, "source"]
    if single.empty:
        return pd.DataFrame(columns=[*keys, "n_seeds", *values, *ranges])
    grouped = single.groupby(keys, sort=True, dropna=False)
    means = grouped[values].mean()
    means.insert(0, "n_seeds", grouped.size())
    spread = grouped[retentions].agg(_range)
    spread.columns = ranges
    return pd.concat([means, spread], axis=1).reset_index()


def group_label(keys: tuple[str, ...], values: tuple[Any, ...]) -> str:
    """Human label of a group: ``sparsegpt · unstructured · 60%``."""
    parts = []
    for key, value in zip(keys, values, strict=True):
        if key == "sparsity" and isinstance(value, float) and not math.isnan(value):
            parts.append(f"{value * 100:g}%")
        else:
            parts.append(str(value))
    return " · ".join(parts) if parts else "all trials"


def group_slug(keys: tuple[str, ...], values: tuple[Any, ...]) -> str:
    """File-name-safe form of a group label."""
    raw = "_".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) or "all"
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in raw)


def chosen_quantities(requested: Sequence[str] | None, frame: pd.DataFrame) -> list[str]:
    """The retention quantities a command ranks or compares: those ``requested``, else total,
    worst and every dimension ``frame`` has. ValueError (the user's message) for one it lacks."""
    known = [TOTAL, WORST, *dimensions_in(frame)]
    quantities = list(requested or known)
    unknown = [q for q in quantities if q not in known]
    if unknown:
        raise ValueError(f"unknown quantity {unknown[0]!r}: the runs have {', '.join(known)}")
    return quantities


def quantity_list(text: str) -> list[str] | None:
    """A ``--quantity a,b`` flag's names; None when it names none (every quantity)."""
    return [q.strip() for q in text.split(",") if q.strip()] or None
