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
_VALUES = ("calib_metrics.", "retention.", "total_retention")


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


def _resample_weights(index: np.ndarray, n: int) -> np.ndarray:
    """How often each source is drawn in each resample: (resamples, n) from (resamples, n)."""
    resamples = index.shape[0]
    offsets = index + n * np.arange(resamples).reshape(-1, 1)
    return np.bincount(offsets.ravel(), minlength=resamples * n).reshape(resamples, n).astype(float)


def _standardised_ranks(dense: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per resample, each source's average rank among the drawn values, centred and scaled
    (weighted by how often it was drawn) so that the dot product of two columns is Spearman's
    rho of the resample; NaN where a column is constant in a resample.

    dense: (columns, n) dense ranks of the original values (ties share a value);
    weights: (resamples, n) from :func:`_resample_weights`. Returns (columns, resamples, n).
    """
    n = dense.shape[-1]
    root = np.sqrt(weights)
    out = np.empty((dense.shape[0], *weights.shape))
    for c, ranks in enumerate(dense):
        order = np.argsort(ranks, kind="stable")
        starts = np.flatnonzero(np.diff(ranks[order], prepend=-1))  # first source of each value
        counts = np.add.reduceat(weights[:, order], starts, axis=1)  # (resamples, values) drawn
        average = np.cumsum(counts, axis=1) - counts + (counts + 1) / 2  # ties share a rank
        per_source = average[:, ranks]  # (resamples, n)
        centred = per_source - (weights * per_source).sum(axis=1, keepdims=True) / n
        norm = np.sqrt((weights * centred * centred).sum(axis=1, keepdims=True))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[c] = root * centred / np.where(norm > 1e-9, norm, np.nan)
    return out


def bootstrap_rho_intervals(
    x_columns: np.ndarray,
    y_columns: np.ndarray,
    pairs: list[tuple[int, int]],
    *,
    n_resamples: int = 9999,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paired percentile bootstrap intervals of Spearman rho for many (x, y) pairs at once.

    x_columns (mx, n) and y_columns (my, n) share their n sources; ``pairs`` indexes them.
    ``scipy.stats.bootstrap`` resamples the source indices (which is what its ``paired=True``
    does internally, with the same draws for a given seed), so every pair's interval equals a
    separate ``bootstrap((x, y), spearman, paired=True)`` call while the ranks of each column
    are computed once per resample, from how often each source was drawn. Resamples where a side is constant have no rho: they are
    dropped from that pair's distribution and counted. Returns (low, high, degenerate), each
    of length ``len(pairs)``.
    """
    n = x_columns.shape[-1]
    dense_x = stats.rankdata(x_columns, method="dense", axis=-1) - 1
    dense_y = stats.rankdata(y_columns, method="dense", axis=-1) - 1
    pair_x = np.array([p[0] for p in pairs])
    pair_y = np.array([p[1] for p in pairs])

    def statistic(index: np.ndarray, axis: int = -1) -> np.ndarray:
        # index: (pairs, resamples, n); every pair row holds the same resampled indices.
        weights = _resample_weights(index.reshape(-1, *index.shape[-2:])[0], n)
        zx = _standardised_ranks(dense_x, weights)  # (mx, resamples, n)
        zy = _standardised_ranks(dense_y, weights)  # (my, resamples, n)
        every = np.einsum("xrn,yrn->rxy", zx, zy, optimize=True)  # (resamples, mx, my)
        rho = every[:, pair_x, pair_y].T  # (pairs, resamples)
        return np.clip(rho, -1.0, 1.0).reshape(*index.shape[:-2], -1)

    with warnings.catch_warnings():
        # Degenerate resamples give NaN in the distribution; handled below.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        boot = stats.bootstrap(
            (np.broadcast_to(np.arange(n, dtype=np.int32), (len(pairs), n)),),
            statistic,
            vectorized=True,
            axis=-1,
            n_resamples=n_resamples,
            confidence_level=confidence_level,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    distribution = np.asarray(boot.bootstrap_distribution).reshape(len(pairs), -1)
    low = np.asarray(boot.confidence_interval.low, dtype=float).reshape(-1).copy()
    high = np.asarray(boot.confidence_interval.high, dtype=float).reshape(-1).copy()
    degenerate = np.isnan(distribution).sum(axis=-1)
    alpha = (1 - confidence_level) / 2
    for k in np.flatnonzero((degenerate > 0) & (degenerate < distribution.shape[-1])):
        low[k], high[k] = np.nanquantile(distribution[k], [alpha, 1 - alpha])
    return low, high, degenerate


def spearman_with_ci(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_resamples: int = 9999,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> PairStatistics:
    """rho, p (``scipy.stats.spearmanr``) and a paired percentile bootstrap interval for one
    metric/retention pair (see :func:`bootstrap_rho_intervals`)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    result = stats.spearmanr(x, y)
    rho, p_value = float(result.statistic), float(result.pvalue)
    if n_resamples <= 0:
        return PairStatistics(len(x), rho, p_value, float("nan"), float("nan"), 0)
    low, high, degenerate = bootstrap_rho_intervals(
        x[None], y[None], [(0, 0)], n_resamples=n_resamples, seed=seed,
        confidence_level=confidence_level,
    )  # fmt: skip
    return PairStatistics(len(x), rho, p_value, float(low[0]), float(high[0]), int(degenerate[0]))


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
        family, family_notes = _group_family(
            group, labels, metrics, dimensions, min_sources, n_resamples, seed, confidence_level
        )
        add_q_values(family)
        rows.extend(family)
        notes.extend(family_notes)
    columns = [*extra_keys, *CORRELATION_COLUMNS]
    table = pd.DataFrame(rows, columns=columns)
    table["n"] = table["n"].astype(int)
    note_frame = pd.DataFrame(notes, columns=[*extra_keys, *NOTE_COLUMNS])
    return CorrelationResult(table, note_frame)


def _group_family(
    group: pd.DataFrame,
    labels: dict,
    metrics: list[str],
    dimensions: list[str],
    min_sources: int,
    n_resamples: int,
    seed: int,
    confidence_level: float,
) -> tuple[list[dict], list[dict]]:
    """Rows (without q-values) and notes of one group's (metric, dimension) tests."""
    arrays = {c: group[c].to_numpy(dtype=float) for c in group.columns if c.startswith(_VALUES)}
    # A metric or dimension the group never measured gives no row at all.
    present = {c for c, v in arrays.items() if not np.isnan(v).all()}
    family: list[dict] = []
    notes: list[dict] = []
    # Pairs observed on the same set of sources share one bootstrap call.
    pending: dict[tuple[bool, ...], list[tuple[int, str, str]]] = {}
    for metric in metrics:
        for dimension in dimensions:
            columns = [f"calib_metrics.{metric}", retention_column(dimension)]
            if not set(columns) <= present:
                continue
            values = np.stack([arrays[c] for c in columns], axis=1)  # (sources, 2)
            observed = ~np.isnan(values).any(axis=1)
            x, y = values[observed, 0], values[observed, 1]
            head = {**labels, "metric": metric, "dimension": dimension, "n": int(len(x))}
            reason = _nan_reason(x, y, metric, dimension, min_sources)
            if reason is not None:
                family.append(head | dict.fromkeys(("rho", "p_value", "ci_low", "ci_high"), np.nan))
                notes.append({**head, "reason": reason})
                continue
            family.append(head | dict.fromkeys(("rho", "p_value", "ci_low", "ci_high"), np.nan))
            pending.setdefault(tuple(observed), []).append((len(family) - 1, *columns))
    for observed, items in pending.items():
        mask = np.array(observed)
        x_names = list(dict.fromkeys(item[1] for item in items))
        y_names = list(dict.fromkeys(item[2] for item in items))
        x_columns = np.stack([arrays[c][mask] for c in x_names])  # (metrics, sources)
        y_columns = np.stack([arrays[c][mask] for c in y_names])  # (dimensions, sources)
        pairs = [(x_names.index(item[1]), y_names.index(item[2])) for item in items]
        # One spearmanr call gives every pair's rho and p (a matrix over all columns).
        result = stats.spearmanr(np.concatenate([x_columns, y_columns]), axis=1)
        rho = np.atleast_2d(result.statistic)
        p_value = np.atleast_2d(result.pvalue)
        if rho.shape == (1, 1):  # two columns: scipy returns scalars
            rho = np.array([[1.0, rho[0, 0]], [rho[0, 0], 1.0]])
            p_value = np.array([[0.0, p_value[0, 0]], [p_value[0, 0], 0.0]])
        offset = len(x_names)
        for (position, _, _), (i, j) in zip(items, pairs, strict=True):
            family[position]["rho"] = float(rho[i, offset + j])
            family[position]["p_value"] = float(p_value[i, offset + j])
        if n_resamples <= 0:
            continue
        low, high, degenerate = bootstrap_rho_intervals(
            x_columns,
            y_columns,
            pairs,
            n_resamples=n_resamples,
            seed=seed,
            confidence_level=confidence_level,
        )
        for k, (position, _, _) in enumerate(items):
            row = family[position]
            row["ci_low"], row["ci_high"] = float(low[k]), float(high[k])
            if degenerate[k]:
                reason = (
                    f"{int(degenerate[k])} of {n_resamples} bootstrap resamples had a constant "
                    "column and were dropped"
                )
                notes.append(
                    {k_: row[k_] for k_ in (*labels, "metric", "dimension")} | {"reason": reason}
                )
    return family, notes


def add_q_values(family: list[dict]) -> None:
    """Benjamini-Hochberg over the tests of one group that produced a p-value."""
    tested = [row for row in family if not np.isnan(row["p_value"])]
    if tested:
        q = stats.false_discovery_control([row["p_value"] for row in tested], method="bh")
        for row, value in zip(tested, q, strict=True):
            row["q_value"] = float(value)
    for row in family:
        row.setdefault("q_value", np.nan)
