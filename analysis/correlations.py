"""Spearman correlations between calibration metrics and per-dimension retention.

Within each group (default: method, structure, sparsity) the population is the single-source
grid trials, averaged over seeds per source, so ``n`` counts sources, not trials. For every
(metric, dimension) pair: rho and its two-sided p-value (``scipy.stats.spearmanr``), a paired
percentile bootstrap 95 % interval over sources (``scipy.stats.bootstrap``, seeded identically
for every pair so any row can be reproduced alone), and Benjamini-Hochberg q-values over the
group's family of tests (``scipy.stats.false_discovery_control``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.records import (
    GROUP_KEYS,
    TOTAL,
    RecordSet,
    dimensions_in,
    metrics_in,
    ok_trials,
    retention_column,
    source_means,
)

CORRELATION_COLUMNS = (
    "method",
    "structure",
    "sparsity",
    "metric",
    "dimension",
    "n",
    "rho",
    "p_value",
    "ci_low",
    "ci_high",
    "q_value",
)
NOTE_COLUMNS = ("method", "structure", "sparsity", "metric", "dimension", "reason")
MIN_SOURCES = 4


@dataclass(frozen=True)
class CorrelationResult:
    """``table`` has exactly :data:`CORRELATION_COLUMNS` (plus any extra group keys first);
    ``notes`` says why a row is NaN, one row per NaN row."""

    table: pd.DataFrame
    notes: pd.DataFrame


@dataclass(frozen=True)
class PairStatistics:
    n: int
    rho: float
    p_value: float
    ci_low: float
    ci_high: float
    degenerate_resamples: int  # bootstrap resamples where a column was constant (dropped)


def spearman_rho(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman rho along ``axis`` (average ranks for ties); NaN where a side is constant."""
    rx = stats.rankdata(x, axis=axis)
    ry = stats.rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    denominator = np.sqrt((rx * rx).sum(axis=axis) * (ry * ry).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip((rx * ry).sum(axis=axis) / denominator, -1.0, 1.0)


def spearman_with_ci(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_resamples: int = 9999,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> PairStatistics:
    """rho, p and a paired percentile bootstrap interval for one metric/retention pair.

    Resamples in which x or y is constant have no rank correlation; they are dropped from the
    bootstrap distribution (and counted) instead of turning the whole interval into NaN.
    """
    result = stats.spearmanr(x, y)
    rho, p_value = float(result.statistic), float(result.pvalue)
    if n_resamples <= 0:
        return PairStatistics(len(x), rho, p_value, float("nan"), float("nan"), 0)
    with warnings.catch_warnings():
        # Degenerate resamples give NaN in the distribution; handled below.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        boot = stats.bootstrap(
            (x, y),
            spearman_rho,
            paired=True,
            vectorized=True,
            n_resamples=n_resamples,
            confidence_level=confidence_level,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    distribution = np.asarray(boot.bootstrap_distribution)
    degenerate = int(np.isnan(distribution).sum())
    low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    if degenerate and degenerate < distribution.size:
        alpha = (1 - confidence_level) / 2
        low, high = (float(v) for v in np.nanquantile(distribution, [alpha, 1 - alpha]))
    return PairStatistics(len(x), rho, p_value, low, high, degenerate)


def _nan_reason(x: np.ndarray, y: np.ndarray, metric: str, dimension: str, min_sources: int):
    if len(x) < min_sources:
        return f"fewer than {min_sources} sources with values (n={len(x)})"
    if np.all(x == x[0]):
        return f"metric {metric!r} is constant across sources"
    if np.all(y == y[0]):
        label = "total retention" if dimension == TOTAL else f"{dimension} retention"
        return f"{label} is constant across sources"
    return None


def correlations(
    records: RecordSet | pd.DataFrame,
    *,
    group_by: tuple[str, ...] = GROUP_KEYS,
    n_resamples: int = 9999,
    seed: int = 0,
    confidence_level: float = 0.95,
    min_sources: int = MIN_SOURCES,
) -> CorrelationResult:
    """The correlation table of every group, with BH q-values within each group's family."""
    means = source_means(ok_trials(records), group_by)
    metrics = metrics_in(means)
    dimensions = [*dimensions_in(means), TOTAL]
    extra_keys = [k for k in group_by if k not in GROUP_KEYS]
    rows: list[dict] = []
    notes: list[dict] = []
    groups = means.groupby(list(group_by), sort=True, dropna=False) if group_by else [((), means)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        labels = {k: "all" for k in GROUP_KEYS} | dict(zip(group_by, key, strict=True))
        # A metric or dimension the group never measured gives no row at all.
        present = {c for c in group.columns if group[c].notna().any()}
        family: list[dict] = []
        for metric in metrics:
            for dimension in dimensions:
                columns = [f"calib_metrics.{metric}", retention_column(dimension)]
                if not set(columns) <= present:
                    continue
                pair = group[columns].dropna().to_numpy(dtype=float)
                head = {**labels, "metric": metric, "dimension": dimension}
                values, note = _pair_row(
                    pair[:, 0],
                    pair[:, 1],
                    metric,
                    dimension,
                    min_sources,
                    n_resamples,
                    seed,
                    confidence_level,
                )
                family.append({**head, **values})
                if note is not None:
                    notes.append({**head, "reason": note})
        _add_q_values(family)
        rows.extend(family)
    columns = [*extra_keys, *CORRELATION_COLUMNS]
    table = pd.DataFrame(rows, columns=columns)
    table["n"] = table["n"].astype(int)
    note_frame = pd.DataFrame(notes, columns=[*extra_keys, *NOTE_COLUMNS])
    return CorrelationResult(table, note_frame)


def _pair_row(
    x: np.ndarray,
    y: np.ndarray,
    metric: str,
    dimension: str,
    min_sources: int,
    n_resamples: int,
    seed: int,
    confidence_level: float,
) -> tuple[dict, str | None]:
    """The statistics of one pair (NaN with a reason when undefined) and its note, if any."""
    reason = _nan_reason(x, y, metric, dimension, min_sources)
    if reason is not None:
        return {"n": len(x)} | dict.fromkeys(
            ("rho", "p_value", "ci_low", "ci_high"), np.nan
        ), reason
    s = spearman_with_ci(
        x, y, n_resamples=n_resamples, seed=seed, confidence_level=confidence_level
    )
    values = {
        "n": s.n,
        "rho": s.rho,
        "p_value": s.p_value,
        "ci_low": s.ci_low,
        "ci_high": s.ci_high,
    }
    note = None
    if s.degenerate_resamples:
        note = (
            f"{s.degenerate_resamples} of {n_resamples} bootstrap resamples had a constant "
            "column and were dropped"
        )
    return values, note


def _add_q_values(family: list[dict]) -> None:
    """Benjamini-Hochberg over the tests of one group that produced a p-value."""
    tested = [row for row in family if not np.isnan(row["p_value"])]
    if tested:
        q = stats.false_discovery_control([row["p_value"] for row in tested], method="bh")
        for row, value in zip(tested, q, strict=True):
            row["q_value"] = float(value)
    for row in family:
        row.setdefault("q_value", np.nan)
