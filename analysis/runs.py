"""Several run directories read as one record set, with the run as a column.

Runs are compared only when their records measure the same thing: the same model and the same
evaluation suite, item limit and item selection (lm-eval's first N or a seeded random subset;
otherwise a retention of one run and of another are different quantities). :func:`load_runs`
refuses a mixed set unless told to. Where the runs share points (the same method, structure,
sparsity, calibration mix and seed), :func:`shared_points` puts their retentions side by side,
and the report groups by ``run`` so that no statistic pools two runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from analysis.records import RecordSet, load_records, ok_trials

RUN = "run"
# A point is the same point in two runs when all of these agree.
POINT_KEYS = ("method", "structure", "sparsity", "mix_name", "seed")


@dataclass(frozen=True)
class RunInfo:
    name: str
    path: Path  # the records file
    model: str
    suite: str
    limit: str
    trials: int
    ok: int


def _evaluation(config_json: object) -> tuple[str, str]:
    """(suite, limit) of one record's trial config, as text ('?' when the record lacks it)."""
    try:
        evaluation = json.loads(str(config_json)).get("evaluation", {})
    except (TypeError, ValueError, AttributeError):
        return "?", "?"
    suite = evaluation.get("suite", "?")
    suite = suite if isinstance(suite, str) else json.dumps(suite, sort_keys=True)
    return suite, str(evaluation.get("limit"))


def _items(rows: pd.DataFrame, i: int) -> str:
    """How row ``i``'s items were chosen where a limit cut a task, as a suffix of its limit:
    ``" (random items, seed 3)"``, or nothing for lm-eval's first N (records that do not say,
    written before there was a choice, took those)."""
    if "item_selection" not in rows or rows["item_selection"].iloc[i] != "random":
        return ""
    seed = rows["item_seed"].iloc[i] if "item_seed" in rows else None
    return f" (random items, seed {int(seed)})" if pd.notna(seed) else " (random items)"


def _names(paths: Sequence[Path]) -> list[str]:
    """Each run's directory name, with parents added until the names are distinct."""
    dirs = [p.parent if p.is_file() else p for p in paths]
    for depth in range(1, 1 + max(len(d.parts) for d in dirs)):
        names = ["/".join(d.parts[-depth:]) for d in dirs]
        if len(set(names)) == len(names):
            return names
    return [str(d) for d in dirs]


def _info(name: str, records: RecordSet) -> RunInfo:
    trials = records.trials
    ok = ok_trials(records)
    rows = ok if not ok.empty else trials

    def one(values: pd.Series) -> str:
        distinct = sorted(values.dropna().astype(str).unique())
        return ", ".join(distinct) if distinct else "?"

    pairs = [_evaluation(c) for c in rows["config"]] if "config" in rows else []
    if pairs:
        items = [_items(rows, i) for i in range(len(rows))]
        pairs = [(suite, limit + item) for (suite, limit), item in zip(pairs, items, strict=True)]
    return RunInfo(
        name=name,
        path=records.path,
        model=one(rows["model"]) if "model" in rows else "?",
        suite=", ".join(sorted({s for s, _ in pairs})) or "?",
        limit=", ".join(sorted({limit for _, limit in pairs})) or "?",
        trials=len(trials),
        ok=len(ok),
    )


def check_comparable(runs: Sequence[RunInfo]) -> list[str]:
    """One line per field in which the runs differ (model, suite, item limit)."""
    problems = []
    for field in ("model", "suite", "limit"):
        values = {getattr(r, field) for r in runs}
        if len(values) > 1:
            each = "; ".join(f"{r.name}: {getattr(r, field)!r}" for r in runs)
            problems.append(f"the runs differ in {field} ({each})")
    return problems


def load_runs(
    paths: Sequence[str | Path], *, allow_mixed: bool = False, warn: bool = True
) -> tuple[RecordSet, tuple[RunInfo, ...]]:
    """Read several runs into one :class:`RecordSet` with a ``run`` column.

    Each run keeps its own latest record per trial. Raises ValueError, naming each run's value,
    when the runs differ in model, suite or item limit and ``allow_mixed`` is false.
    """
    resolved = [Path(p) for p in paths]
    names = _names(resolved)
    sets = [load_records(p, warn=warn) for p in resolved]
    runs = tuple(_info(n, s) for n, s in zip(names, sets, strict=True))
    problems = check_comparable(runs)
    if problems and not allow_mixed:
        raise ValueError(
            "cannot compare these runs: "
            + "; ".join(problems)
            + ". Their retentions are different quantities; pass --allow-mixed to put them in "
            "one report anyway"
        )
    frames = [s.trials.assign(**{RUN: n}) for n, s in zip(names, sets, strict=True)]
    merged = replace(
        sets[0],
        trials=pd.concat(frames, ignore_index=True, sort=False),
        broken_lines=tuple(b for s in sets for b in s.broken_lines),
        superseded=sum(s.superseded for s in sets),
    )
    return merged, runs


def shared_points(records: RecordSet, runs: Sequence[RunInfo]) -> pd.DataFrame:
    """Ok points present in two or more runs: one row per point, with each run's total and
    worst retention and, for every later run, its difference from the first run's."""
    ok = ok_trials(records)
    keys = [k for k in POINT_KEYS if k in ok]
    if ok.empty or RUN not in ok or not keys:
        return pd.DataFrame()
    names = [r.name for r in runs]
    wide = ok.pivot_table(
        index=keys, columns=RUN, values=["total_retention", "worst_retention"], aggfunc="mean"
    )
    present = wide["total_retention"].notna().sum(axis=1)
    wide = wide[present >= 2]
    if wide.empty:
        return pd.DataFrame()
    out = pd.DataFrame(index=wide.index)
    for measure in ("total_retention", "worst_retention"):
        for name in names:
            if name in wide[measure]:
                out[f"{measure} {name}"] = wide[measure][name]
        first = names[0]
        for name in names[1:]:
            if first in wide[measure] and name in wide[measure]:
                out[f"{measure} {name} − {first}"] = wide[measure][name] - wide[measure][first]
    return out.reset_index()


def overlapping(records: RecordSet) -> bool:
    """Whether two runs of ``records`` share an ok point (then statistics group by run)."""
    ok = ok_trials(records)
    if RUN not in ok or ok[RUN].nunique() < 2:
        return False
    keys = [k for k in POINT_KEYS if k in ok]
    runs_per_point = ok.groupby(keys, dropna=False)[RUN].nunique()
    return bool((runs_per_point >= 2).any())
