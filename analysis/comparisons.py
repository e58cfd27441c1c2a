"""The report's paired comparisons: per (method, structure, sparsity) group, from per-item data.

Comparisons made in each group (difference = first named − second named, i.e. B − A of
``analysis.paired``):

- ``uniform − best single``: the uniform mix (``mix_name == "uniform"``) against the single
  source with the highest seed-averaged total retention (as in the mix table);
- ``uniform − reference``: against the reference source (``c4`` by default), when the run has it;
- ``<mix> − uniform``: every other named multi-source grid mix against the uniform mix.

Each choice is all of its ok grid trials in the group (one per calibration seed) whose side files
are usable; trials left out and comparisons that cannot be made are named in ``notes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.items import ItemFile, RunItems, has_items, load_items
from analysis.mixes import UNIFORM
from analysis.paired import (
    DEFAULT_RESAMPLES,
    TOTAL,
    WORST,
    PairedComparison,
    PairedUnavailable,
    common_dense,
    paired_bootstrap,
)
from analysis.records import GROUP_KEYS, RecordSet, group_label, groups, ok_trials, source_means
from analysis.runs import RUN, RunInfo

BEST_SINGLE = "uniform − best single"
REFERENCE = "uniform − reference"
MIX = "mix − uniform"
TABLE_COLUMNS = (
    "comparison", "b", "a", "seeds_b", "seeds_a", "n_items", "quantity", "b_value", "a_value",
    "difference", "ci_low", "ci_high", "p_positive", "contains_zero", "n_valid", "n_resamples",
)  # fmt: skip


@dataclass(frozen=True)
class PairedResults:
    """Every comparison of a record set: ``table`` holds one row per (group, comparison,
    quantity) (columns: the group keys, then TABLE_COLUMNS); ``headlines`` the sentence on the
    uniform mix against the best single source, per group label."""

    group_by: tuple[str, ...]
    table: pd.DataFrame
    comparisons: tuple[tuple[tuple, PairedComparison], ...]
    notes: tuple[str, ...]
    headlines: dict[str, str]
    n_resamples: int
    seed: int


def _run_dirs(records: RecordSet, runs: Sequence[RunInfo]) -> dict[str | None, Path]:
    if runs:
        return {r.name: r.path.parent for r in runs}
    return {None: records.path.parent}


def load_run_items(
    records: RecordSet, runs: Sequence[RunInfo] = ()
) -> tuple[dict[str | None, RunItems], list[str]] | None:
    """The usable side files of every run's ok trials, keyed by run name (``None`` for a single
    run), and a note per trial left out; None when no run has an ``items/`` folder."""
    dirs = _run_dirs(records, runs)
    if not any(has_items(d) for d in dirs.values()):
        return None
    ok = ok_trials(records)
    items: dict[str | None, RunItems] = {}
    notes: list[str] = []
    for name, directory in dirs.items():
        rows = ok if name is None or RUN not in ok else ok[ok[RUN] == name]
        items[name] = load_items(directory, [r.to_dict() for _, r in rows.iterrows()])
        prefix = f"run {name}: " if name is not None else ""
        notes += [prefix + n for n in items[name].notes]
    return items, notes


def points(value: float) -> str:
    """A difference of retentions in points of % dense: ``+8.8``."""
    return "n/a" if pd.isna(value) else f"{100 * value:+.1f}"


def interval_text(row: Mapping[str, Any]) -> str:
    """``+8.8 [+5.0, +12.6]``, with ``n.s.`` when the interval holds 0."""
    text = f"{points(row['difference'])} [{points(row['ci_low'])}, {points(row['ci_high'])}]"
    return text + (" n.s." if row["contains_zero"] else "")


def paired_comparisons(
    records: RecordSet,
    *,
    group_by: tuple[str, ...] = GROUP_KEYS,
    reference: str | None = "c4",
    runs: Sequence[RunInfo] = (),
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PairedResults | None:
    """The comparisons of the module docstring; None when no run has an ``items/`` folder."""
    loaded = load_run_items(records, runs)
    if loaded is None:
        return None
    items, notes = loaded
    ok = ok_trials(records)
    grid = ok[ok["phase"] == "grid"]
    sources = source_means(ok, group_by)
    if reference is not None and not (sources["source"] == reference).any():
        notes.append(f"reference source {reference!r} is not in this run: no uniform − "
                     "reference comparison (--reference names another)")  # fmt: skip
        reference = None
    rows: list[dict[str, Any]] = []
    made: list[tuple[tuple, PairedComparison]] = []
    headlines: dict[str, str] = {}
    singles_by = dict(groups(sources, group_by))
    for key, group in groups(grid, group_by):
        label = group_label(group_by, key)
        plan = _plan(group, singles_by.get(key, sources[:0]), reference)
        if not plan:
            continue
        for comparison, (name_a, rows_a), (name_b, rows_b) in plan:
            try:
                result = compare_trials(items, rows_a, rows_b, name_a, name_b, n_resamples, seed)
            except PairedUnavailable as exc:
                notes.append(f"{label}: {name_b} − {name_a} not compared: {exc}")
                continue
            made.append((key, result))
            notes += [f"{label}: {n}" for n in result.notes]
            for row in result.table.to_dict("records"):
                rows.append({
                    **dict(zip(group_by, key, strict=True)), "comparison": comparison,
                    "b": name_b, "a": name_a, "seeds_b": len(result.trials_b),
                    "seeds_a": len(result.trials_a), "n_items": result.n_items,
                    "quantity": row["quantity"], "b_value": row["b"], "a_value": row["a"],
                    **{c: row[c] for c in TABLE_COLUMNS[9:15]}, "n_resamples": n_resamples,
                })  # fmt: skip
            if comparison == BEST_SINGLE:
                headlines[label] = _headline(result)
    table = pd.DataFrame(rows, columns=[*group_by, *TABLE_COLUMNS])
    return PairedResults(tuple(group_by), table, tuple(made), tuple(notes), headlines,
                         n_resamples, seed)  # fmt: skip


_Side = tuple[str, pd.DataFrame]


def _plan(group: pd.DataFrame, singles: pd.DataFrame, reference: str | None):
    """[(comparison, (name_a, rows_a), (name_b, rows_b))] of one group's grid trials."""
    mixes = group[group["n_sources"] > 1]
    uniform = mixes[mixes["mix_name"] == UNIFORM]
    if uniform.empty:
        return []
    single = group[group["n_sources"] == 1]
    uniform_side: _Side = (UNIFORM, uniform)
    plan: list[tuple[str, _Side, _Side]] = []
    ranked = singles.dropna(subset=["total_retention"]) if "total_retention" in singles else singles
    if not ranked.empty:
        best = str(ranked.loc[ranked["total_retention"].idxmax(), "source"])
        plan.append((BEST_SINGLE, (best, single[single["source"] == best]), uniform_side))
    if reference is not None and (single["source"] == reference).any():
        plan.append((REFERENCE, (reference, single[single["source"] == reference]), uniform_side))
    elif reference is not None:
        plan.append((REFERENCE, (reference, single[:0]), uniform_side))  # noted as missing
    for name, part in mixes[mixes["mix_name"] != UNIFORM].groupby("mix_name", sort=True):
        plan.append((MIX, uniform_side, (str(name), part)))
    return plan


def _files(
    items: Mapping[str | None, RunItems], rows: pd.DataFrame
) -> list[tuple[ItemFile, ItemFile]]:
    out = []
    for _, row in rows.iterrows():
        run = items[None if None in items else row[RUN]]
        trial = run.trials.get(str(row["trial_id"]))
        if trial is not None:
            out.append((trial, run.dense_of(trial.trial_id or "")))
    return out


def compare_trials(
    items: Mapping[str | None, RunItems],
    rows_a: pd.DataFrame,
    rows_b: pd.DataFrame,
    name_a: str,
    name_b: str,
    n_resamples: int,
    seed: int,
    *,
    pair_seeds: bool = False,
) -> PairedComparison:
    """B − A of two sets of ok trial rows (one per calibration seed, any runs of ``items``)
    from their side files; ``pair_seeds``: row i of A and of B share a calibration seed (see
    :func:`analysis.paired.paired_bootstrap`). PairedUnavailable says why when they cannot be
    compared."""
    sides = []
    for name, rows in ((name_a, rows_a), (name_b, rows_b)):
        files = _files(items, rows)
        if rows.empty:
            raise PairedUnavailable(f"{name} has no ok grid trial in this group")
        if not files:
            raise PairedUnavailable(f"none of {name}'s {len(rows)} trial(s) has a usable side file")
        sides.append(files)
    dense = common_dense([*sides[0], *sides[1]])
    pair_seeds = pair_seeds and len(sides[0]) == len(sides[1]) == len(rows_a) == len(rows_b)
    return paired_bootstrap(
        dense, [t for t, _ in sides[0]], [t for t, _ in sides[1]], label_a=name_a,
        label_b=name_b, n_resamples=n_resamples, seed=seed, pair_seeds=pair_seeds,
    )  # fmt: skip


def _headline(result: PairedComparison) -> str:
    total, worst = result.row(TOTAL), result.row(WORST)
    return (
        f"uniform mix − best single source ({result.label_a}): total {interval_text(total)} "
        f"points, P(>0) {total['p_positive']:.2f}; worst {interval_text(worst)} points, "
        f"P(>0) {worst['p_positive']:.2f} ({len(result.trials_b)} vs {len(result.trials_a)} "
        f"seed(s), {result.n_items} items)"
    )


def report_view(part: pd.DataFrame) -> pd.DataFrame:
    """One group's comparisons as text: a row per comparison, total and worst differences."""
    out = []
    for (comparison, b, a), rows in part.groupby(["comparison", "b", "a"], sort=False):
        by = rows.set_index("quantity")
        cells = {"comparison": comparison, "B": b, "A": a,
                 "seeds (B/A)": f"{by.iloc[0]['seeds_b']}/{by.iloc[0]['seeds_a']}",
                 "items": by.iloc[0]["n_items"]}  # fmt: skip
        for quantity, title in ((TOTAL, "total"), (WORST, "worst")):
            if quantity in by.index:
                row = by.loc[quantity]
                cells[f"Δ {title} (points) [95% CI]"] = interval_text(row)
                cells[f"P(Δ {title} > 0)"] = f"{row['p_positive']:.2f}"
        out.append(cells)
    return pd.DataFrame(out)
