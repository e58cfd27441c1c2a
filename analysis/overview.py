"""The report's first page: per group, the best single source on each dimension beside the
uniform mix, the dense model's scores with their chance levels, and the bars of the overview
figure.

Records do not say which capability dimension a calibration source is aligned to (that lives
in raysweep's source table, which the analysis does not import). The grid's uniform mix does:
it gives weight only to sources aligned to some dimension (all sources when none is), so the
overview's candidates for "the source aligned to a dimension" are the uniform mix's sources,
and the one shown for a dimension is the candidate that retains that dimension best.

Chance levels come from the run's per-item side files (``items/dense-*.json`` name each task's
dimension and chance); without them a dimension's chance is solved from the records'
``retention_above_chance = (pruned - chance) / (dense - chance)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.items import DENSE_PREFIX, ItemsError, items_dir, read_item_file
from analysis.records import (
    DIMENSIONS,
    TOTAL,
    WORST,
    RecordSet,
    columns_with_prefix,
    groups,
    ok_trials,
    retention_column,
)
from analysis.runs import RUN

UNIFORM_ENTRY = "uniform mix"
BEST_TOTAL = "best single (total)"


def mix_sources(mix_text: object) -> list[str]:
    """The sources of a mix table's ``mix`` text (``"a 0.50, b 0.50"`` -> ``["a", "b"]``)."""
    if not isinstance(mix_text, str) or not mix_text.strip():
        return []
    return [part.rsplit(" ", 1)[0] for part in mix_text.split(", ") if " " in part]


def _uniform_row(mixes: pd.DataFrame) -> pd.Series | None:
    uniform = mixes[mixes["entry"] == UNIFORM_ENTRY] if "entry" in mixes else mixes[:0]
    return None if uniform.empty else uniform.iloc[0]


def best_sources(sources: pd.DataFrame, quantities: list[str]) -> dict[str, tuple[str, float]]:
    """Per quantity (a dimension, ``total`` or ``worst``): the single source with the highest
    seed-averaged retention and that retention; quantities no source has are left out."""
    best = {}
    for quantity in quantities:
        column = retention_column(quantity)
        if column not in sources:
            continue
        ranked = sources.dropna(subset=[column])
        if not ranked.empty:
            row = ranked.loc[ranked[column].idxmax()]
            best[quantity] = (str(row["source"]), float(row[column]))
    return best


def overview_bars(
    sources: pd.DataFrame, mixes: pd.DataFrame, dimensions: list[str]
) -> pd.DataFrame:
    """One group's bars: the dimension-aligned source of each dimension (see the module
    docstring), the best single source on total retention, then the uniform mix; a source
    that plays several roles is one row. Columns: ``entry`` (legend label), ``source`` (None
    for the mix), ``best_on`` (the quantities it leads), then the retention columns."""
    columns = [retention_column(q) for q in (*dimensions, TOTAL, WORST)]
    uniform = _uniform_row(mixes)
    candidates = sources
    if uniform is not None:
        aligned = sources[sources["source"].astype(str).isin(mix_sources(uniform.get("mix")))]
        candidates = aligned if not aligned.empty else sources
    roles: dict[str, list[str]] = {}
    for dimension, (source, _) in best_sources(candidates, dimensions).items():
        roles.setdefault(source, []).append(dimension)
    total = best_sources(sources, [TOTAL]).get(TOTAL)
    if total is not None:
        roles.setdefault(total[0], []).append(TOTAL)
    rows = []
    by_source = sources.set_index(sources["source"].astype(str))
    for source, best_on in roles.items():
        row = by_source.loc[source]
        rows.append({"entry": source, "source": source, "best_on": tuple(best_on),
                     **{c: float(row[c]) if c in row else math.nan for c in columns}})  # fmt: skip
    if uniform is not None:
        rows.append({"entry": UNIFORM_ENTRY, "source": None, "best_on": (),
                     **{c: float(uniform[c]) if c in uniform else math.nan for c in columns}})  # fmt: skip
    return pd.DataFrame(rows, columns=["entry", "source", "best_on", *columns])


def summary_rows(
    trials: pd.DataFrame,
    sources: pd.DataFrame,
    mixes: pd.DataFrame,
    group_by: tuple[str, ...],
    dimensions: list[str],
) -> list[dict]:
    """Per group (key order): its key values, the mean achieved sparsity of its ok trials,
    and per dimension, total and worst the best single source with its retention
    (``best``: quantity -> (source, value)) and the uniform mix's retention (``uniform``)."""
    quantities = [*dimensions, TOTAL, WORST]
    ok = ok_trials(trials)
    sources_by = dict(groups(sources, group_by))
    mixes_by = dict(groups(mixes, group_by))
    trials_by = dict(groups(ok, group_by))
    keys = sorted(set(sources_by) | set(mixes_by), key=lambda k: tuple(map(str, k)))
    rows = []
    for key in keys:
        part = trials_by.get(key, ok[:0])
        achieved = (
            pd.to_numeric(part["achieved_sparsity"], errors="coerce").mean()
            if "achieved_sparsity" in part and not part.empty
            else math.nan
        )
        uniform = _uniform_row(mixes_by.get(key, mixes[:0]))
        rows.append({
            "key": key,
            "achieved_sparsity": float(achieved),
            "best": best_sources(sources_by.get(key, sources[:0]), quantities),
            "uniform": {q: float(uniform[retention_column(q)])
                        for q in quantities
                        if uniform is not None and retention_column(q) in uniform},
        })  # fmt: skip
    return rows


def task_chances(run_dir: Path) -> dict[str, tuple[str, float]]:
    """task -> (dimension, chance) from the run's dense side files; {} without readable ones."""
    directory = items_dir(run_dir)
    found: dict[str, tuple[str, float]] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob(f"{DENSE_PREFIX}*.json")):
        try:
            dense = read_item_file(path)
        except ItemsError:
            continue
        for name, task in dense.tasks.items():
            found.setdefault(name, (task.dimension, task.chance))
    return found


def _solved_chance(rows: pd.DataFrame, dimension: str) -> float:
    """The chance level c solving ``above = (pruned - c) / (dense - c)`` (median over trials
    whose above-chance retention is not 1, where it carries no information)."""
    columns = [f"dimension_scores.{dimension}", f"dense_dimension_scores.{dimension}",
               f"retention_above_chance.{dimension}"]  # fmt: skip
    if any(c not in rows for c in columns):
        return math.nan
    pruned, dense, above = (rows[c].to_numpy(float) for c in columns)
    with np.errstate(invalid="ignore", divide="ignore"):
        chance = (pruned - above * dense) / (1.0 - above)
    chance = chance[np.isfinite(chance) & (np.abs(1.0 - above) > 1e-3)]
    return float(np.median(chance)) if chance.size else math.nan


def dense_levels(records: RecordSet, run_dirs: Mapping[str | None, Path]) -> pd.DataFrame:
    """The dense model per (run, model) and dimension: its score, the dimension's chance level
    and its tasks as ``[(task, dense score, chance)]`` (chance NaN where unknown). Empty when
    the records hold no dense scores."""
    ok = ok_trials(records)
    measured = columns_with_prefix(ok, "dense_dimension_scores")
    dimensions = [d for d in DIMENSIONS if d in measured] + sorted(
        d for d in measured if d not in DIMENSIONS
    )
    keys = [c for c in (RUN, "model") if c in ok.columns]
    rows = []
    for key, part in groups(ok, tuple(keys)):
        labels = dict(zip(keys, key, strict=True))
        run_dir = run_dirs.get(labels.get(RUN), run_dirs.get(None))
        tasks = task_chances(run_dir) if run_dir is not None else {}
        task_scores = {c.split(".", 1)[1]: part[c].mean() for c in part.columns
                       if c.startswith("dense_task_scores.") and part[c].notna().any()}  # fmt: skip
        for dimension in dimensions:
            column = f"dense_dimension_scores.{dimension}"
            if column not in part or part[column].isna().all():
                continue
            own = sorted(t for t, (d, _) in tasks.items() if d == dimension)
            chance = (float(np.mean([tasks[t][1] for t in own])) if own
                      else _solved_chance(part, dimension))  # fmt: skip
            rows.append({
                **labels,
                "dimension": dimension,
                "dense": float(part[column].mean()),
                "chance": chance,
                "tasks": [(t, float(task_scores.get(t, math.nan)), tasks[t][1]) for t in own],
            })  # fmt: skip
    return pd.DataFrame(rows, columns=[*keys, "dimension", "dense", "chance", "tasks"])
