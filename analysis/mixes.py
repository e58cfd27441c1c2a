"""Side-by-side retention of the uniform mix, the best single sources, the reference source,
configured mixes and the searched mix, per group, averaged over seeds.

Every value is the mean over the entry's trials (one per calibration seed), beside its range over
them (``seed_range:<column>``, NaN with one seed).

Entries (when the records hold them):
- ``uniform mix``: grid trials with ``mix_name == "uniform"``;
- ``best single (total)`` / ``best single (worst)``: the single source with the highest
  seed-averaged total / worst-dimension retention;
- ``reference (<name>)``: the single source named by ``reference`` (default ``c4``);
- ``mix: <name>``: every other multi-source grid mix;
- ``searched best``: the ``confirm``-phase mix with the highest mean worst retention, else the
  single ``search`` trial with the highest worst retention (the search targets the worst case).
"""

from __future__ import annotations

import pandas as pd

from analysis.records import (
    GROUP_KEYS,
    RecordSet,
    dimensions_in,
    groups,
    ok_trials,
    retention_column,
    seed_range_column,
    seed_ranges,
    source_means,
)

UNIFORM = "uniform"


def _summary(trials: pd.DataFrame, value_columns: list[str]) -> dict:
    """Mean over the entry's trials (one per seed) and each value's range over them."""
    values = trials[value_columns].mean()
    return {"n_trials": int(len(trials)), **{c: float(values[c]) for c in value_columns},
            **seed_ranges(trials, value_columns)}  # fmt: skip


def _mix_text(trials: pd.DataFrame) -> str:
    weights = trials[[c for c in trials.columns if c.startswith("mix.")]].iloc[0].dropna()
    return ", ".join(f"{c[4:]} {w:.2f}" for c, w in weights.sort_values(ascending=False).items())


def compare_mixes(
    records: RecordSet | pd.DataFrame,
    *,
    group_by: tuple[str, ...] = GROUP_KEYS,
    reference: str | None = "c4",
) -> pd.DataFrame:
    """One row per (group, entry) with per-dimension, total and worst retention (fractions)."""
    trials = ok_trials(records)
    dimensions = dimensions_in(trials)
    value_columns = [retention_column(d) for d in dimensions]
    value_columns += [c for c in ("total_retention", "worst_retention") if c in trials.columns]
    means = source_means(trials, group_by)
    singles_by_group = dict(groups(means, group_by))
    rows: list[dict] = []
    for key, group in groups(trials, group_by):
        labels = dict(zip(group_by, key, strict=True))
        entries: list[dict] = []
        grid_mixes = group[(group["phase"] == "grid") & (group["n_sources"] > 1)]
        uniform = grid_mixes[grid_mixes["mix_name"] == UNIFORM]
        if not uniform.empty:
            entries.append({"entry": "uniform mix", "mix_name": UNIFORM, "phase": "grid"})
            entries[-1] |= {"mix": _mix_text(uniform), **_summary(uniform, value_columns)}
        singles = singles_by_group.get(key, means[:0])
        for criterion, label in (
            ("total_retention", "best single (total)"),
            ("worst_retention", "best single (worst)"),
        ):
            ranked = singles.dropna(subset=[criterion]) if criterion in singles else singles[:0]
            if not ranked.empty:
                best = ranked.loc[ranked[criterion].idxmax()]
                entries.append(_single_entry(label, best, value_columns))
        if reference is not None and (singles["source"] == reference).any():
            row = singles[singles["source"] == reference].iloc[0]
            entries.append(_single_entry(f"reference ({reference})", row, value_columns))
        for name, mix in grid_mixes[grid_mixes["mix_name"] != UNIFORM].groupby("mix_name"):
            entries.append({"entry": f"mix: {name}", "mix_name": name, "phase": "grid"})
            entries[-1] |= {"mix": _mix_text(mix), **_summary(mix, value_columns)}
        searched = _searched_best(group, value_columns)
        if searched is not None:
            entries.append(searched)
        rows.extend({**labels, **entry} for entry in entries)
    ranges = [seed_range_column(c) for c in value_columns]
    columns = [*group_by, "entry", "mix_name", "phase", "mix", "n_trials", *value_columns, *ranges]
    return pd.DataFrame(rows, columns=columns)


def _single_entry(label: str, row: pd.Series, value_columns: list[str]) -> dict:
    """An entry from a seed-averaged single-source row (see ``source_means``)."""
    source = row["source"]
    value_columns = [*value_columns, *(seed_range_column(c) for c in value_columns)]
    values = {c: float(row[c]) if c in row else float("nan") for c in value_columns}
    return {"entry": label, "mix_name": source, "phase": "grid", "mix": f"{source} 1.00"} | (
        {"n_trials": int(row["n_seeds"]), **values}
    )


def _searched_best(group: pd.DataFrame, value_columns: list[str]) -> dict | None:
    confirm = group[group["phase"] == "confirm"]
    if not confirm.empty:
        by_mix = confirm.groupby("mix_name")
        worst = by_mix["worst_retention"].mean() if "worst_retention" in confirm else None
        name = (
            worst.idxmax() if worst is not None and worst.notna().any() else next(iter(by_mix))[0]
        )
        chosen = confirm[confirm["mix_name"] == name]
        return {"entry": "searched best", "mix_name": name, "phase": "confirm"} | {
            "mix": _mix_text(chosen),
            **_summary(chosen, value_columns),
        }
    search = group[group["phase"] == "search"]
    if "worst_retention" in search:
        search = search.dropna(subset=["worst_retention"])
    if search.empty:
        return None
    order = [c for c in ("worst_retention", "total_retention") if c in search]
    best = search.sort_values(order, ascending=False, kind="stable").iloc[[0]]
    return {"entry": "searched best", "mix_name": best["mix_name"].iloc[0], "phase": "search"} | {
        "mix": _mix_text(best),
        **_summary(best, value_columns),
    }
