"""TrialRecord: the one flat row a trial produces, and the append-only ``records.jsonl`` file.

A record is reported to Ray Tune, appended to ``<output>/records.jsonl`` by the driver, and read back
by ``analysis`` without Ray or torch. Appends are crash-safe: each record is one ``write`` of one
line, and a partial last line left by a crash is fenced off by a newline before the next append,
so readers can skip (and report) it without losing any complete record.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raysweep.names import EQUAL_SOURCES_MIX, UNIFORM_MIX

RECORDS_FILE = "records.jsonl"


def trial_id_for(point: Mapping[str, Any]) -> str:
    """Stable id of a trial: a hash of its canonical JSON configuration."""
    blob = json.dumps(point, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class TrialRecord(BaseModel):
    """One trial's row.

    What the hardware did: ``timings`` holds seconds per stage (``load_s``, ``calibrate_s``,
    ``prune_s``, ``eval_s``, ``total_s``) and per phase inside them (``calib_metrics_s``;
    pruning's ``capture_s``, ``statistics_s``, ``sparsify_s``, ``propagate_s``; a phase that did
    not run is absent); see ``raysweep.pipeline``. ``peak_host_bytes`` is the worker process's
    RSS high-water mark, ``peak_device_bytes`` the trial's peak CUDA allocation (None without a
    CUDA device). Records written before the two were separate carry ``peak_memory_bytes``,
    max(host RSS, CUDA allocation): read, never written, and not split (which one it was is
    unknown).
    """

    model_config = ConfigDict(extra="forbid")

    trial_id: str
    sweep: str = "default"
    phase: Literal["grid", "search", "confirm"] = "grid"
    # "stopped": a search trial an early-stopping scheduler ended at a rung; its scores are those
    # of its first ``stopped_at_items`` items per task, never a finished evaluation.
    status: Literal["ok", "error", "stopped"]
    error: str | None = None
    stopped_at_items: int | None = None
    model: str
    method: str
    structure: str
    sparsity: float
    # Zeros over the prunable matrices the target applied to (ignored modules excluded).
    achieved_sparsity: float | None = None
    # Zeros over every decoder-layer parameter, and the share of those parameters kept dense
    # by reason (router, depthwise_conv, state_space, vector, ignored): raysweep.pruning.
    decoder_zero_fraction: float | None = None
    dense_kept: dict[str, float] | None = None
    # Modules pruned without input statistics (read without being called) -> rule used.
    statistics_fallback: dict[str, str] | None = None
    # Layer-wise allocation ("uniform" | "owl") and mask refinement ("none" | "dsnot"); for OWL
    # the target each decoder layer was pruned at (N:M: its structure) and the outlier shares
    # (percent of Wanda scores above M x their mean) they came from.
    allocation: str = "uniform"
    refine: str = "none"
    layer_sparsity: list[float] | None = None
    layer_structure: list[str] | None = None
    outlier_shares: list[float] | None = None
    # Mixture-of-experts models only (None for dense ones): routed experts pruned, how many fell
    # back for want of calibration tokens and by which policy, and the tokens the dense model's
    # routers sent to each (MoE layer, expert) for this calibration set.
    experts: int | None = None
    experts_fallback: int | None = None
    expert_fallback: str | None = None
    expert_tokens: list[list[int]] | None = None
    mix: dict[str, float]
    mix_name: str
    n_samples: int
    seqlen: int
    seed: int
    calib_metrics: dict[str, float] = Field(default_factory=dict)
    task_scores: dict[str, float] = Field(default_factory=dict)
    dense_task_scores: dict[str, float] = Field(default_factory=dict)
    dimension_scores: dict[str, float] = Field(default_factory=dict)
    dense_dimension_scores: dict[str, float] = Field(default_factory=dict)
    perplexity: dict[str, float] = Field(default_factory=dict, description="held-out, pruned")
    dense_perplexity: dict[str, float] = Field(default_factory=dict)
    retention: dict[str, float | None] = Field(default_factory=dict)
    retention_above_chance: dict[str, float | None] = Field(default_factory=dict)
    total_retention: float | None = None
    worst_retention: float | None = None
    # Dimensions the dense model scores at or below chance: their retention is None and total /
    # worst retention are over the other dimensions only.
    unmeasurable: list[str] = Field(default_factory=list)
    # Generative (generate_until) tasks only: mean tokens generated per item, pruned and dense,
    # and the share of the pruned model's generations that max_gen_toks cut before any stop
    # sequence (empty for log-likelihood suites and in records written before generation).
    generated_tokens: dict[str, float] = Field(default_factory=dict)
    dense_generated_tokens: dict[str, float] = Field(default_factory=dict)
    truncated_share: dict[str, float] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    peak_host_bytes: int | None = None
    peak_device_bytes: int | None = None
    peak_memory_bytes: int | None = Field(
        None, description="deprecated: max(host, device) in records before the split; read only"
    )
    host: str = ""
    node_id: str = ""
    device: str = ""
    dense_cache_key: str = ""
    versions: dict[str, str] = Field(default_factory=dict)
    attempts: int = 1
    started_at: str = ""
    finished_at: str = ""
    config: dict[str, Any] = Field(default_factory=dict, description="the trial's full config")
    # How the items of the tasks a limit cuts were chosen: "random" (a seeded random subset of
    # each, ``item_seed``) or "first" (lm-eval's limit: the first N; every item where no limit
    # cuts, and every record written before there was a choice).
    item_selection: Literal["first", "random"] = "first"
    item_seed: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_mix_name(cls, data: Any) -> Any:
        # The search's equal-per-source mix was called "uniform", like the grid's per-dimension one.
        if (
            isinstance(data, dict)
            and data.get("phase") == "search"
            and data.get("mix_name") == UNIFORM_MIX
        ):
            data = {**data, "mix_name": EQUAL_SOURCES_MIX}
        return data

    @model_validator(mode="before")
    @classmethod
    def _legacy_peak(cls, data: Any) -> Any:
        # A legacy peak of a CPU trial was its host peak; on CUDA it stays unsplit.
        if (
            isinstance(data, dict)
            and data.get("peak_memory_bytes") is not None
            and "peak_host_bytes" not in data
            and str(data.get("device", "")).startswith("cpu")
        ):
            data = {**data, "peak_host_bytes": data["peak_memory_bytes"]}
        return data

    def to_json(self) -> str:
        # The deprecated field is written back only by a record that was read with it.
        skip = {"peak_memory_bytes"} if self.peak_memory_bytes is None else set()
        return json.dumps(
            self.model_dump(mode="json", exclude=skip), sort_keys=False, allow_nan=True
        )


@dataclass
class RecordsRead:
    records: list[TrialRecord] = field(default_factory=list)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)  # (1-based line, reason)


def append_record(path: str | Path, record: TrialRecord) -> None:
    """Append one record as one line, atomically with respect to readers and crashes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (record.to_json() + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # A crash left a partial line: end it so it stays one bad line, not two.
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, raw in enumerate(f, start=1):
            if raw.strip():
                yield i, raw


def read_records(path: str | Path, *, warn: bool = True) -> RecordsRead:
    """Read every complete record; unreadable lines are returned (and warned about), not raised."""
    out = RecordsRead()
    path = Path(path)
    if not path.exists():
        return out
    for lineno, raw in iter_lines(path):
        try:
            out.records.append(TrialRecord.model_validate(json.loads(raw)))
        except (json.JSONDecodeError, ValueError) as exc:
            reason = str(exc).splitlines()[0]
            out.bad_lines.append((lineno, reason))
            if warn:
                warnings.warn(
                    f"{path}:{lineno}: skipped unreadable record ({reason})", stacklevel=2
                )
    return out


def latest_per_trial(records: Iterable[TrialRecord]) -> dict[str, TrialRecord]:
    """One record per trial id, in first-appearance order: its last ``ok`` record, else its last
    record. A retried trial (an error, then a success) counts once as the success; a success is
    never hidden by a later error. ``analysis.records.latest_per_trial`` keeps the same rule for
    raw rows (``tests/test_names.py`` checks they agree)."""
    latest: dict[str, TrialRecord] = {}
    for record in records:
        previous = latest.get(record.trial_id)
        if previous is None or record.status == "ok" or previous.status != "ok":
            latest[record.trial_id] = record
    return latest


def latest_records(path: str | Path) -> dict[str, TrialRecord]:
    """:func:`latest_per_trial` of a records file (empty when it does not exist)."""
    return latest_per_trial(read_records(path, warn=False).records)


def finished_ids(path: str | Path) -> set[str]:
    """Trial ids that already have an ``ok`` record (the resume set)."""
    return {i for i, r in latest_records(path).items() if r.status == "ok"}
