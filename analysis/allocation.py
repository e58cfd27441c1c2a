"""Layer-wise allocation (OWL) and mask refinement (DSnoT): what the calibration data does to
them, and what they do to retention.

A trial's pruning variant is its method plus its non-plain choices (``analysis.records``:
``wanda+owl``, ``ria+dsnot``, ``wanda+owl+dsnot``); records written before these choices
existed are ``allocation == "uniform"`` and ``refine == "none"``. Groups here are
``(base_method, structure, sparsity)`` (plus any extra grouping key of the report but the run):
the variants of one method are compared inside one group.

(a) :func:`owl_allocations`: per group, each calibration set's (source's or mix's) OWL
    allocation, the ``layer_sparsity`` vector of its ok grid trials averaged over seeds
    (trials of two OWL variants on the same calibration set and seed, e.g. ``wanda+owl`` and
    ``wanda+owl+dsnot``, share one allocation and are averaged first). :func:`allocation_spread`:
    how far the calibration sets' allocations differ, per layer the range (max − min over sets)
    and the mean over pairs of sets of ``|a_l − b_l|``, whose sum over layers is the mean
    pairwise L1 distance between allocation vectors.
(b) :func:`variant_comparisons`: every non-plain variant B against its partner A, the same
    base method with ``allocation == "uniform"`` and ``refine == "none"`` (a variant with both
    choices, e.g. ``wanda+owl+dsnot``, is also compared with each variant that has one of them:
    ``wanda+owl`` and ``wanda+dsnot``), per calibration set: B − A of every retention quantity.
    A and B trials are matched by ``(mix_name, seed)`` inside the group, in any run (the
    DSnoT run may be another output directory); one calibration set pruned two ways, so the
    paired bootstrap (``analysis.paired``) draws the calibration seeds once for both sides.
    Without usable side files the difference comes from the records, without an interval.
(c) :func:`allocation_correlations`: across single calibration sources within a group,
    Spearman ρ of each calibration metric with each layer's OWL sparsity and with the
    allocation's spread (max − min layer sparsity), with the correlation study's bootstrap
    intervals and Benjamini-Hochberg q-values over the group's family of tests
    (``analysis.correlations``).

Grid trials only (``phase == "grid"``), as the other comparisons of the report.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.comparisons import compare_trials, load_run_items
from analysis.correlations import MIN_SOURCES, add_q_values, bootstrap_rho_intervals
from analysis.items import RunItems
from analysis.paired import DEFAULT_RESAMPLES, TOTAL, WORST, PairedUnavailable
from analysis.records import (
    RecordSet,
    dimensions_in,
    group_label,
    groups,
    metrics_in,
    ok_trials,
    retention_column,
)
from analysis.runs import RUN

ALLOCATION_KEYS = ("base_method", "structure", "sparsity")
PLAIN_ALLOCATION = "uniform"
PLAIN_REFINE = "none"
SPREAD = "spread"  # the correlation target: max − min layer sparsity of an allocation
# Report keys that never split these groups: the variant (compared here) and the run (pairs
# are made across runs).
_NOT_SPLITTING = frozenset({"method", "base_method", "structure", "sparsity", RUN})
_FAMILY_VALUES = ("rho", "p_value", "ci_low", "ci_high")
VARIANT_COLUMNS = (
    "change", "b", "a", "mix_name", "n_sources", "run_b", "run_a", "seeds", "n_items",
    "quantity", "b_value", "a_value", "difference", "ci_low", "ci_high", "p_positive",
    "contains_zero", "n_resamples",
)  # fmt: skip
SUMMARY_COLUMNS = (
    "change", "b", "a", "n_sets", "n_intervals", "total_difference", "total_above",
    "total_below", "worst_difference", "worst_above", "worst_below",
)  # fmt: skip


@dataclass(frozen=True)
class AllocationResults:
    """Every table of the report's allocation section (see the module docstring); each
    table's first columns are ``group_by``. Allocations are fractions (0.8 = 80 %)."""

    group_by: tuple[str, ...]
    allocations: pd.DataFrame  # one row per (group, calibration set, layer)
    spread: pd.DataFrame  # one row per (group, layer)
    distances: pd.DataFrame  # one row per group: largest range, pairwise L1 distances
    variants: pd.DataFrame  # one row per (group, B, A, calibration set, quantity)
    variant_summary: pd.DataFrame  # one row per (group, B, A): over calibration sets
    correlations: pd.DataFrame  # one row per (group, metric, target)
    headlines: dict[str, list[str]]  # group label -> sentences
    notes: tuple[str, ...]
    n_resamples: int  # paired bootstrap replicates
    seed: int


def variant_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``allocation``, ``refine`` and ``base_method`` always set (records from
    before these choices existed: uniform, none, the method)."""
    frame = frame.copy()
    for column, plain in (("allocation", PLAIN_ALLOCATION), ("refine", PLAIN_REFINE)):
        values = frame[column] if column in frame else pd.Series(None, index=frame.index)
        frame[column] = values.where(values.notna(), plain).astype(str)
    if "base_method" not in frame:
        frame["base_method"] = frame["method"]
    return frame


def has_variants(records: RecordSet | pd.DataFrame) -> bool:
    """Whether any ok trial was pruned with OWL or refined (the report's section then)."""
    ok = variant_columns(ok_trials(records))
    return bool(((ok["allocation"] != PLAIN_ALLOCATION) | (ok["refine"] != PLAIN_REFINE)).any())


def allocation_keys(group_by: Sequence[str] = ()) -> tuple[str, ...]:
    """The groups of this module: :data:`ALLOCATION_KEYS` and every other report key but the
    variant and the run."""
    return (*ALLOCATION_KEYS, *(k for k in group_by if k not in _NOT_SPLITTING))


def layer_vector(value: Any) -> list[float] | None:
    """A record's ``layer_sparsity`` / ``outlier_shares`` (a list, or its JSON text in a
    flattened row) as floats; None when absent or unreadable."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if not isinstance(value, list | tuple) or not value:
        return None
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(v) for v in out) else None


def _calibration(row: Mapping[str, Any]) -> str:
    source = row.get("source")
    return str(source if isinstance(source, str) and source else row.get("mix_name"))


# (a) ---------------------------------------------------------------------------------------


def owl_allocations(
    records: RecordSet | pd.DataFrame, group_by: tuple[str, ...] = ALLOCATION_KEYS
) -> tuple[pd.DataFrame, list[str]]:
    """Per group and calibration set, the seed-averaged OWL allocation: a long table (columns
    ``group_by``, ``source``, ``mix_name``, ``n_sources``, ``n_seeds``, ``layer``,
    ``layer_sparsity``, ``outlier_share``) and notes on trials left out."""
    trials = variant_columns(ok_trials(records))
    owl = trials[(trials["allocation"] == "owl") & (trials["phase"] == "grid")]
    columns = [*group_by, "source", "mix_name", "n_sources", "n_seeds", "layer",
               "layer_sparsity", "outlier_share"]  # fmt: skip
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for key, group in groups(owl, group_by):
        label = group_label(group_by, key)
        vectors = [layer_vector(v) for v in group.get("layer_sparsity", [None] * len(group))]
        shares = [layer_vector(v) for v in group.get("outlier_shares", [None] * len(group))]
        missing = sum(v is None for v in vectors)
        if missing:
            notes.append(f"{label}: {missing} OWL trial(s) without layer_sparsity left out")
        lengths = pd.Series([len(v) for v in vectors if v is not None])
        if lengths.empty:
            continue
        n_layers = int(lengths.mode().iloc[0])
        if (lengths != n_layers).any():
            notes.append(f"{label}: {int((lengths != n_layers).sum())} OWL trial(s) with another "
                         f"number of layers than {n_layers} left out")  # fmt: skip
        by_set: dict[str, dict[Any, list[tuple[list[float], list[float] | None]]]] = {}
        meta: dict[str, tuple[str, int]] = {}
        for (_, row), vector, share in zip(group.iterrows(), vectors, shares, strict=True):
            if vector is None or len(vector) != n_layers:
                continue
            name = _calibration(row)
            share = share if share is not None and len(share) == n_layers else None
            by_set.setdefault(name, {}).setdefault(row.get("seed"), []).append((vector, share))
            meta.setdefault(name, (str(row.get("mix_name")), int(row.get("n_sources") or 0)))
        for name in sorted(by_set):
            seeds = by_set[name]
            # Trials on one calibration set and seed share an allocation: average them first.
            allocation = np.mean([np.mean([v for v, _ in s], axis=0) for s in seeds.values()],
                                 axis=0)  # fmt: skip
            known = [[x for _, x in s if x is not None] for s in seeds.values()]
            known = [np.mean(k, axis=0) for k in known if k]
            share = np.mean(known, axis=0) if known else np.full(n_layers, np.nan)
            for layer in range(n_layers):
                rows.append({**dict(zip(group_by, key, strict=True)), "source": name,
                             "mix_name": meta[name][0], "n_sources": meta[name][1],
                             "n_seeds": len(seeds), "layer": layer,
                             "layer_sparsity": float(allocation[layer]),
                             "outlier_share": float(share[layer])})  # fmt: skip
    return pd.DataFrame(rows, columns=columns), notes


def allocation_matrix(part: pd.DataFrame) -> pd.DataFrame:
    """One group's allocations as calibration sets (rows) x layers (columns)."""
    return part.pivot(index="source", columns="layer", values="layer_sparsity").sort_index()


def allocation_spread(
    allocations: pd.DataFrame, group_by: tuple[str, ...] = ALLOCATION_KEYS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How far the calibration sets' allocations differ, per group.

    Per layer (first table): ``range`` = max − min over sets (NaN with one set), the sets at
    both ends, and ``mean_pairwise_abs`` = mean over pairs of sets of ``|a_l − b_l|``. Per group
    (second table): the largest range and its layer, ``mean_pairwise_l1`` = mean over pairs of
    ``sum_l |a_l − b_l|`` (the per-layer column summed) and the most distant pair."""
    per_layer: list[dict[str, Any]] = []
    per_group: list[dict[str, Any]] = []
    for key, part in groups(allocations, group_by):
        head = dict(zip(group_by, key, strict=True))
        matrix = allocation_matrix(part)
        values = matrix.to_numpy(float)  # (sets, layers)
        names = list(matrix.index)
        n_sets, n_layers = values.shape
        pairs = list(combinations(range(n_sets), 2))
        gaps = np.array([np.abs(values[i] - values[j]) for i, j in pairs]).reshape(-1, n_layers)
        mean_abs = gaps.mean(axis=0) if pairs else np.full(n_layers, np.nan)
        ranges = values.max(axis=0) - values.min(axis=0) if n_sets > 1 else mean_abs
        for layer in range(n_layers):
            low, high = int(values[:, layer].argmin()), int(values[:, layer].argmax())
            per_layer.append({**head, "layer": layer, "n_sets": n_sets,
                              "mean": float(values[:, layer].mean()),
                              "min": float(values[low, layer]), "min_source": names[low],
                              "max": float(values[high, layer]), "max_source": names[high],
                              "range": float(ranges[layer]),
                              "mean_pairwise_abs": float(mean_abs[layer])})  # fmt: skip
        l1 = gaps.sum(axis=1)
        widest = int(np.nanargmax(ranges)) if n_sets > 1 else -1
        far = int(l1.argmax()) if pairs else -1
        per_group.append({
            **head, "n_sets": n_sets, "n_layers": n_layers,
            "max_range": float(ranges[widest]) if widest >= 0 else np.nan,
            "max_range_layer": widest if widest >= 0 else np.nan,
            "max_range_low": names[int(values[:, widest].argmin())] if widest >= 0 else None,
            "max_range_high": names[int(values[:, widest].argmax())] if widest >= 0 else None,
            "mean_pairwise_l1": float(l1.mean()) if pairs else np.nan,
            "max_pairwise_l1": float(l1[far]) if pairs else np.nan,
            "farthest_pair": " / ".join(names[k] for k in pairs[far]) if pairs else None,
        })  # fmt: skip
    layer_columns = [*group_by, "layer", "n_sets", "mean", "min", "min_source", "max",
                     "max_source", "range", "mean_pairwise_abs"]  # fmt: skip
    group_columns = [*group_by, "n_sets", "n_layers", "max_range", "max_range_layer",
                     "max_range_low", "max_range_high", "mean_pairwise_l1", "max_pairwise_l1",
                     "farthest_pair"]  # fmt: skip
    return (pd.DataFrame(per_layer, columns=layer_columns),
            pd.DataFrame(per_group, columns=group_columns))  # fmt: skip


def _pct(value: float) -> str:
    return f"{100 * value:g}%" if isinstance(value, float) and not math.isnan(value) else "?"


def allocation_headline(row: Mapping[str, Any], allocations: pd.DataFrame) -> str:
    """``the calibration source moves layer 3's sparsity by up to 4.2 points at 80% (...)``."""
    if row["n_sets"] < 2:
        return f"one calibration set only ({allocations['source'].iloc[0]}): nothing to compare."
    layer = int(row["max_range_layer"])
    at = allocations[allocations["layer"] == layer].set_index("source")["layer_sparsity"]
    low, high = row["max_range_low"], row["max_range_high"]
    return (
        f"the calibration source moves layer {layer}'s sparsity by up to "
        f"{100 * row['max_range']:.1f} points at {_pct(row.get('sparsity', math.nan))} "
        f"({100 * at[low]:.1f}% with {low}, {100 * at[high]:.1f}% with {high}); mean pairwise "
        f"L1 distance between the {row['n_sets']} allocations {row['mean_pairwise_l1']:.3f} "
        f"({100 * row['mean_pairwise_l1'] / row['n_layers']:.2f} points per layer)."
    )


# (b) ---------------------------------------------------------------------------------------


def variant_name(base: str, allocation: str, refine: str) -> str:
    """``wanda``, ``wanda+owl``, ``wanda+dsnot``, ``wanda+owl+dsnot`` (as analysis.records)."""
    parts = [base]
    parts += [allocation] if allocation != PLAIN_ALLOCATION else []
    parts += [refine] if refine != PLAIN_REFINE else []
    return "+".join(parts)


def partners(allocation: str, refine: str) -> list[tuple[str, str]]:
    """The (allocation, refine) choices a variant is compared with: plain always, and with
    both choices made, each variant that makes one of them."""
    out = [(PLAIN_ALLOCATION, PLAIN_REFINE)]
    if allocation != PLAIN_ALLOCATION and refine != PLAIN_REFINE:
        out += [(allocation, PLAIN_REFINE), (PLAIN_ALLOCATION, refine)]
    return out


def _item_file(items: Mapping[str | None, RunItems] | None, row: pd.Series) -> bool:
    if items is None:
        return False
    run = items.get(None if None in items else row.get(RUN))
    return run is not None and str(row["trial_id"]) in run.trials


def _matched(rows_b: pd.DataFrame, rows_a: pd.DataFrame) -> tuple[list, list, list[Any]]:
    """One B and one A trial per calibration seed both have (the first B in file and run
    order; the A from B's run where there is one), and the seeds only B has."""
    picked_b, picked_a, lonely = [], [], []
    a_by_seed = dict(iter(rows_a.groupby("seed", sort=True)))
    for seed, part in rows_b.groupby("seed", sort=True):
        b = part.iloc[0]
        if seed not in a_by_seed:
            lonely.append(seed)
            continue
        candidates = a_by_seed[seed]
        if RUN in candidates:
            same = candidates[candidates[RUN] == b.get(RUN)]
            candidates = same if not same.empty else candidates
        picked_b.append(b)
        picked_a.append(candidates.iloc[0])
    return picked_b, picked_a, lonely


def _record_differences(b: pd.DataFrame, a: pd.DataFrame, dimensions: list[str]) -> list[dict]:
    """B − A of the seed means of the records' retentions, without an interval."""
    rows = []
    for quantity in [*dimensions, TOTAL, WORST]:
        column = retention_column(quantity)
        value_b = float(b[column].mean()) if column in b else math.nan
        value_a = float(a[column].mean()) if column in a else math.nan
        if math.isnan(value_b) and math.isnan(value_a):
            continue
        rows.append({"quantity": quantity, "b": value_b, "a": value_a,
                     "difference": value_b - value_a, "ci_low": math.nan, "ci_high": math.nan,
                     "p_positive": math.nan, "contains_zero": math.nan})  # fmt: skip
    return rows


def _run_text(rows: list[pd.Series]) -> str | None:
    names = sorted({str(r[RUN]) for r in rows if RUN in r and pd.notna(r[RUN])})
    return ", ".join(names) or None


def variant_comparisons(
    records: RecordSet,
    *,
    group_by: tuple[str, ...] = ALLOCATION_KEYS,
    runs: Sequence[Any] = (),
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(b) of the module docstring: the per-calibration-set table (:data:`VARIANT_COLUMNS`
    after ``group_by``), the summary over calibration sets (:data:`SUMMARY_COLUMNS`) and notes."""
    ok = variant_columns(ok_trials(records))
    grid = ok[ok["phase"] == "grid"]
    dimensions = dimensions_in(grid)
    notes: list[str] = []
    items = None
    loaded = load_run_items(records, runs) if n_resamples > 0 else None
    if loaded is not None:
        items, item_notes = loaded
        notes += item_notes
    rows: list[dict[str, Any]] = []
    no_items_noted = False
    for key, group in groups(grid, group_by):
        label = group_label(group_by, key)
        head = dict(zip(group_by, key, strict=True))
        base = str(group["base_method"].iloc[0])
        choices = group.groupby(["allocation", "refine"], sort=True)
        by_choice = {c: part for c, part in choices}
        for (allocation, refine), rows_b_all in by_choice.items():
            if (allocation, refine) == (PLAIN_ALLOCATION, PLAIN_REFINE):
                continue
            name_b = variant_name(base, allocation, refine)
            for partner in partners(allocation, refine):
                name_a = variant_name(base, *partner)
                change = name_b[len(base) :] if partner == (PLAIN_ALLOCATION, PLAIN_REFINE) else (
                    "+" + (refine if partner[0] == allocation else allocation))  # fmt: skip
                rows_a_all = by_choice.get(partner)
                if rows_a_all is None:
                    if partner == (PLAIN_ALLOCATION, PLAIN_REFINE):
                        notes.append(f"{label}: {name_b} has no {name_a} trial to be compared "
                                     "with (a run of its own? give both runs: python -m "
                                     "analysis RUN_A RUN_B)")  # fmt: skip
                    continue
                for mix_name, rows_b in rows_b_all.groupby("mix_name", sort=True):
                    rows_a = rows_a_all[rows_a_all["mix_name"] == mix_name]
                    picked_b, picked_a, lonely = _matched(rows_b, rows_a)
                    if lonely:
                        notes.append(f"{label} · {mix_name}: {name_b} seed(s) "
                                     f"{', '.join(map(str, lonely))} have no {name_a} trial; "
                                     "left out")  # fmt: skip
                    if not picked_b:
                        continue
                    frame_b, frame_a = pd.DataFrame(picked_b), pd.DataFrame(picked_a)
                    result, measured = None, frame_b
                    usable = [_item_file(items, b) and _item_file(items, a)
                              for b, a in zip(picked_b, picked_a, strict=True)]  # fmt: skip
                    if any(usable):
                        if not all(usable):
                            notes.append(f"{label} · {mix_name}: {name_b} − {name_a}: "
                                         f"{usable.count(False)} seed(s) without usable side "
                                         "files on both sides left out of the interval")  # fmt: skip
                        try:
                            result = compare_trials(
                                items, frame_a[usable], frame_b[usable], name_a, name_b,
                                n_resamples, seed, pair_seeds=True,
                            )  # fmt: skip
                            measured = frame_b[usable]
                            notes += [f"{label} · {mix_name}: {n}" for n in result.notes]
                        except PairedUnavailable as exc:
                            notes.append(f"{label} · {mix_name}: {name_b} − {name_a}: no "
                                         f"interval: {exc}")  # fmt: skip
                    elif items is not None:
                        notes.append(f"{label} · {mix_name}: {name_b} − {name_a}: no usable "
                                     "side files; difference of the records, no interval")  # fmt: skip
                    elif not no_items_noted and n_resamples > 0:
                        notes.append("no per-item side files: with/without differences come "
                                     "from the records, without intervals")  # fmt: skip
                        no_items_noted = True
                    quantities = (result.table.to_dict("records") if result is not None
                                  else _record_differences(frame_b, frame_a, dimensions))  # fmt: skip
                    for q in quantities:
                        rows.append({
                            **head, "change": change, "b": name_b, "a": name_a,
                            "mix_name": mix_name,
                            "n_sources": int(frame_b["n_sources"].iloc[0] or 0),
                            "run_b": _run_text(picked_b), "run_a": _run_text(picked_a),
                            "seeds": len(measured),
                            "n_items": result.n_items if result is not None else np.nan,
                            "quantity": q["quantity"], "b_value": q["b"], "a_value": q["a"],
                            **{c: q[c] for c in ("difference", "ci_low", "ci_high",
                                                 "p_positive", "contains_zero")},
                            "n_resamples": n_resamples if result is not None else 0,
                        })  # fmt: skip
    table = pd.DataFrame(rows, columns=[*group_by, *VARIANT_COLUMNS])
    return table, variant_summary(table, group_by), notes


def variant_summary(table: pd.DataFrame, group_by: tuple[str, ...]) -> pd.DataFrame:
    """Per (group, B, A): the mean over calibration sets of the total and worst differences,
    and how many sets' intervals lie wholly above and wholly below 0."""
    rows = []
    keys = [*group_by, "change", "b", "a"]
    if not table.empty:
        for key, part in table.groupby(keys, sort=False, dropna=False):
            row = dict(zip(keys, key, strict=True))
            row["n_sets"] = int(part["mix_name"].nunique())
            row["n_intervals"] = int(part[part["quantity"] == TOTAL]["ci_low"].notna().sum())
            for quantity in (TOTAL, WORST):
                q = part[part["quantity"] == quantity]
                row[f"{quantity}_difference"] = float(q["difference"].mean()) if len(q) else np.nan
                row[f"{quantity}_above"] = int((q["ci_low"] > 0).sum())
                row[f"{quantity}_below"] = int((q["ci_high"] < 0).sum())
            rows.append(row)
    return pd.DataFrame(rows, columns=[*group_by, *SUMMARY_COLUMNS])


def points(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{100 * value:+.1f}"


def variant_headline(row: Mapping[str, Any]) -> str:
    """``wanda+owl − wanda: total +2.1 points on average over 8 calibration sets ...``."""
    text = (f"{row['b']} − {row['a']}: total {points(row['total_difference'])} points, worst "
            f"{points(row['worst_difference'])} points on average over {row['n_sets']} "
            "calibration set(s)")  # fmt: skip
    if row["n_intervals"]:
        text += (f"; intervals above / below 0: total {row['total_above']} / "
                 f"{row['total_below']}, worst {row['worst_above']} / {row['worst_below']} "
                 f"of {row['n_intervals']}")  # fmt: skip
    return text + "."


# (c) ---------------------------------------------------------------------------------------


def layer_target(layer: int) -> str:
    return f"layer {layer}"


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    result = stats.spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def allocation_correlations(
    records: RecordSet | pd.DataFrame,
    allocations: pd.DataFrame,
    *,
    group_by: tuple[str, ...] = ALLOCATION_KEYS,
    n_resamples: int = 9999,
    seed: int = 0,
    min_sources: int = MIN_SOURCES,
) -> tuple[pd.DataFrame, list[str]]:
    """(c) of the module docstring: one row per (group, metric, target), target ``layer k``
    or ``spread``, with ``n`` (sources), ``rho``, ``p_value``, bootstrap ``ci_low`` /
    ``ci_high`` and BH ``q_value`` over the group's family; notes say why a row is NaN."""
    trials = variant_columns(ok_trials(records))
    owl = trials[(trials["allocation"] == "owl") & (trials["phase"] == "grid")
                 & (trials["n_sources"] == 1)]  # fmt: skip
    metrics = metrics_in(owl)
    columns = [*group_by, "metric", "target", "n", *_FAMILY_VALUES, "q_value"]
    singles = allocations[allocations["n_sources"] == 1]
    if owl.empty or not metrics or singles.empty:
        return pd.DataFrame(columns=columns), []
    calib = [f"calib_metrics.{m}" for m in metrics]
    means = owl.assign(source=[_calibration(r) for _, r in owl.iterrows()])
    means = means.groupby([*group_by, "source"], dropna=False)[calib].mean()
    out: list[dict[str, Any]] = []
    reasons: Counter[tuple[str, str]] = Counter()  # (group label, why NaN) -> how many
    for key, part in groups(singles, group_by):
        label = group_label(group_by, key)
        matrix = allocation_matrix(part)  # (sources, layers)
        targets = {layer_target(k): matrix[k].to_numpy(float) for k in matrix.columns}
        values = matrix.to_numpy(float)
        targets[SPREAD] = values.max(axis=1) - values.min(axis=1)
        try:
            metric_values = means.loc[tuple(key)].reindex(matrix.index)
        except KeyError:  # a group key the records leave empty
            continue
        head = dict(zip(group_by, key, strict=True))
        family: list[dict[str, Any]] = []
        pending: dict[tuple[bool, ...], list[tuple[int, str, str]]] = {}
        for metric, column in zip(metrics, calib, strict=True):
            x_all = metric_values[column].to_numpy(float)
            observed = ~np.isnan(x_all)
            if not observed.any():
                continue
            x = x_all[observed]
            for target, y_all in targets.items():
                y = y_all[observed]
                row = {**head, "metric": metric, "target": target, "n": int(len(x))}
                row |= dict.fromkeys(_FAMILY_VALUES, np.nan)
                family.append(row)
                if len(x) < min_sources:
                    reason = f"fewer than {min_sources} sources with values (n={len(x)})"
                elif np.all(x == x[0]):
                    reason = f"metric {metric!r} is constant across sources"
                elif np.all(y == y[0]):
                    reason = f"{target} sparsity is constant across sources" if target != SPREAD \
                        else "the allocation's spread is constant across sources"  # fmt: skip
                else:
                    row["rho"], row["p_value"] = _spearman(x, y)
                    pending.setdefault(tuple(observed), []).append((len(family) - 1, column,
                                                                    target))  # fmt: skip
                    continue
                reasons[(label, reason)] += 1
        if n_resamples > 0:
            for observed, entries in pending.items():
                mask = np.array(observed)
                x_names = list(dict.fromkeys(e[1] for e in entries))
                y_names = list(dict.fromkeys(e[2] for e in entries))
                x_columns = np.stack([metric_values[c].to_numpy(float)[mask] for c in x_names])
                y_columns = np.stack([targets[t][mask] for t in y_names])
                pairs = [(x_names.index(e[1]), y_names.index(e[2])) for e in entries]
                low, high, _ = bootstrap_rho_intervals(x_columns, y_columns, pairs,
                                                       n_resamples=n_resamples, seed=seed)  # fmt: skip
                for k, (position, _, _) in enumerate(entries):
                    family[position]["ci_low"] = float(low[k])
                    family[position]["ci_high"] = float(high[k])
        add_q_values(family)
        out.extend(family)
    table = pd.DataFrame(out, columns=columns)
    table["n"] = table["n"].astype(int)
    notes = [f"{label}: {count} correlation(s) of a calibration metric with the allocation "
             f"NaN — {reason}" for (label, reason), count in reasons.items()]  # fmt: skip
    return table, notes


def correlation_headline(part: pd.DataFrame) -> str:
    """The strongest |ρ| of one group's table, and the strongest with the spread."""
    known = part[part["rho"].notna()]
    if known.empty:
        return "no correlation of a calibration metric with the allocation could be computed."
    best = known.loc[known["rho"].abs().idxmax()]
    target = "the spread" if best["target"] == SPREAD else f"{best['target']}'s sparsity"
    text = (f"strongest correlation of a calibration metric with the OWL allocation: "
            f"{best['metric']} with {target}, ρ {best['rho']:+.2f} (q {best['q_value']:.3g}, "
            f"n {best['n']})")  # fmt: skip
    spread = known[known["target"] == SPREAD]
    if not spread.empty and best["target"] != SPREAD:
        top = spread.loc[spread["rho"].abs().idxmax()]
        text += (f"; with the allocation's spread: {top['metric']}, ρ {top['rho']:+.2f} "
                 f"(q {top['q_value']:.3g})")  # fmt: skip
    return text + "."


# all ---------------------------------------------------------------------------------------


def analyse_allocation(
    records: RecordSet,
    *,
    group_by: Sequence[str] = (),
    runs: Sequence[Any] = (),
    n_resamples: int = 9999,
    paired_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> AllocationResults | None:
    """(a), (b) and (c) of the module docstring; None when no ok trial was pruned with OWL or
    refined. ``group_by`` are the report's keys (see :func:`allocation_keys`);
    ``n_resamples`` the correlations' bootstrap, ``paired_resamples`` the paired one's."""
    if not has_variants(records):
        return None
    keys = allocation_keys(group_by)
    allocations, notes = owl_allocations(records, keys)
    spread, distances = allocation_spread(allocations, keys)
    variants, summary, variant_notes = variant_comparisons(
        records, group_by=keys, runs=runs, n_resamples=paired_resamples, seed=seed
    )
    corr, corr_notes = allocation_correlations(
        records, allocations, group_by=keys, n_resamples=n_resamples, seed=seed
    )
    headlines: dict[str, list[str]] = {}
    allocations_by = dict(groups(allocations, keys))
    for row in distances.to_dict("records"):
        key = tuple(row[k] for k in keys)
        label = group_label(keys, key)
        headlines.setdefault(label, []).append(allocation_headline(row, allocations_by[key]))
    for row in summary.to_dict("records"):
        label = group_label(keys, tuple(row[k] for k in keys))
        headlines.setdefault(label, []).append(variant_headline(row))
    for key, part in groups(corr, keys):
        headlines.setdefault(group_label(keys, key), []).append(correlation_headline(part))
    return AllocationResults(
        keys, allocations, spread, distances, variants, summary, corr,
        dict(sorted(headlines.items())), tuple([*notes, *variant_notes, *corr_notes]),
        paired_resamples, seed,
    )  # fmt: skip
