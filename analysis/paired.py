"""Paired comparison of two calibration choices, with bootstrap intervals over items and seeds.

A choice is one calibration set (a source or a mix) at one (method, structure, sparsity) point,
measured by one trial per calibration seed; every trial and the dense baseline are scored on the
same items (pairing by ``(task, doc_id)``, see ``analysis.items``). For each quantity ``q`` —
each dimension's retention, total retention (mean over defined dimensions) and worst-case
retention (min) — the comparison reports

    difference = q(B) − q(A)          (positive: B retains more than A)

with a percentile interval (default 95 %) and ``P(>0)``, the share of bootstrap replicates in
which the difference is above 0. A choice's ``q`` is the mean over its seeds of each trial's
``q``, as the report's mix table averages records.

Resampling scheme of one replicate:

1. seeds: A's trials are drawn ``S_A`` times with replacement, and B's ``S_B`` times,
   independently (calibration seeds are independent draws, not paired across choices; with one
   seed this step is the identity); with ``pair_seeds`` (one calibration set pruned two ways,
   ``analysis.allocation``) the same drawn seeds serve A and B;
2. items: within each task, its ``n_t`` items are drawn ``n_t`` times with replacement, and the
   same drawn items score the dense baseline, every trial of A and every trial of B (paired);
3. each trial's task scores are the means of its drawn item values; dimension scores, retention,
   total and worst retention follow exactly as in ``raysweep.evaluation.scoring``. The
   dimensions are those defined on the observed items (dense score above chance), as in the
   records; a replicate whose resampled dense score of one of them falls to chance has that
   dimension undefined and is left out of that dimension's, the total's and the worst's
   interval (``n_valid`` counts the replicates kept), so that total and worst always cover the
   records' dimensions.

The point estimate is the same computation on the observed items: it equals the records' own
retentions. ``paired=False`` draws A's and B's items independently (each with its own draw of
the dense baseline), as if the two choices had been scored on different items: wider intervals
where items are correlated, which is what pairing removes.

Draws come from one seeded ``numpy.random.Generator``: the same inputs and seed give the same
intervals. Replicates are vectorised (item counts per replicate, a matrix product per task).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.items import ItemFile, aligned_order, load_items
from analysis.records import DIMENSIONS, TOTAL, WORST

DEFAULT_RESAMPLES = 2000
# Replicates per block: bounds each task's (block, n_items) count matrix to ~32 MB.
_BLOCK_CELLS = 4_000_000
COLUMNS = (
    "quantity", "a", "b", "difference", "ci_low", "ci_high", "p_positive", "contains_zero",
    "n_valid",
)  # fmt: skip


class PairedUnavailable(ValueError):
    """The two choices cannot be compared from per-item data; the message says why."""


@dataclass(frozen=True)
class PairedComparison:
    """Differences B − A, one row per quantity of ``table`` (see the module docstring)."""

    label_a: str
    label_b: str
    trials_a: tuple[str, ...]
    trials_b: tuple[str, ...]
    n_tasks: int
    n_items: int
    n_resamples: int
    seed: int
    level: float
    paired: bool
    table: pd.DataFrame  # columns COLUMNS, rows: dimensions, then total, then worst
    notes: tuple[str, ...] = ()

    def row(self, quantity: str = TOTAL) -> dict[str, Any]:
        hit = self.table[self.table["quantity"] == quantity]
        if hit.empty:
            raise KeyError(f"no quantity {quantity!r} in this comparison")
        return hit.iloc[0].to_dict()

    def interval(self, quantity: str = TOTAL) -> tuple[float, float]:
        row = self.row(quantity)
        return float(row["ci_low"]), float(row["ci_high"])

    def line(self, quantity: str = TOTAL) -> str:
        """``total +0.088 [+0.051, +0.124], P(>0) 1.00`` (``n.s.`` when the interval holds 0)."""
        row = self.row(quantity)
        text = (
            f"{quantity} {_signed(row['difference'])} [{_signed(row['ci_low'])}, "
            f"{_signed(row['ci_high'])}], P(>0) {row['p_positive']:.2f}"
        )
        return text + (" n.s." if row["contains_zero"] else "")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (summary files)."""
        return {
            "a": self.label_a,
            "b": self.label_b,
            "difference": "b - a",
            "trials_a": list(self.trials_a),
            "trials_b": list(self.trials_b),
            "n_items": self.n_items,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "level": self.level,
            "paired": self.paired,
            "quantities": {
                str(r["quantity"]): {k: _plain(r[k]) for k in COLUMNS[1:]}
                for r in self.table.to_dict("records")
            },
            "notes": list(self.notes),
        }


def summary_text(entry: Mapping[str, Any]) -> str:
    """One line from :meth:`PairedComparison.to_dict` (or ``{"note": ...}``): ``total +0.021
    [-0.004, +0.046], P(>0) 0.95 n.s.; worst ...``, differences B − A."""
    if "quantities" not in entry:
        return f"not compared: {entry.get('note', 'no per-item data')}"
    parts = []
    for quantity in (TOTAL, WORST):
        q = entry["quantities"].get(quantity)
        if q is None:
            continue
        nan = float("nan")
        low, high = (nan if q[k] is None else q[k] for k in ("ci_low", "ci_high"))
        text = f"{quantity} {_signed(q['difference'])} [{_signed(low)}, {_signed(high)}]"
        if q["p_positive"] is not None:
            text += f", P(>0) {q['p_positive']:.2f}"
        parts.append(text + (" n.s." if q["contains_zero"] else ""))
    return "; ".join(parts)


def _plain(value: Any) -> Any:
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    value = float(value)
    return None if np.isnan(value) else value


def _signed(value: float) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:+.3f}"


def _ordered_dimensions(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [d for d in DIMENSIONS if d in names] + sorted(names - set(DIMENSIONS))


@dataclass(frozen=True)
class _Layout:
    """Item matrices aligned to the dense baseline's item order, one entry per task."""

    tasks: list[str]
    dense: list[np.ndarray]  # (n_t,)
    a: list[np.ndarray]  # (S_A, n_t)
    b: list[np.ndarray]  # (S_B, n_t)
    dimensions: list[str]
    task_dimension: list[int]  # index into dimensions, per task
    chance: np.ndarray  # (n_dims,) mean chance of each dimension's tasks


def _aligned(trial: ItemFile, dense: ItemFile, task: str) -> np.ndarray:
    if task not in trial.tasks:
        raise PairedUnavailable(f"{trial.path.name} has no task {task!r}")
    order = aligned_order(dense.tasks[task].doc_ids, trial.tasks[task].doc_ids)
    if order is None:
        raise PairedUnavailable(
            f"{trial.path.name} scores {task!r} on other items than {dense.path.name}"
        )
    return trial.tasks[task].values[order]


def _layout(dense: ItemFile, a: Sequence[ItemFile], b: Sequence[ItemFile]) -> _Layout:
    if not a or not b:
        raise PairedUnavailable("each side needs at least one trial")
    tasks = list(dense.tasks)
    for trial in (*a, *b):
        extra = set(trial.tasks) - set(tasks)
        if extra:
            raise PairedUnavailable(f"{trial.path.name} has tasks the dense baseline lacks: "
                                    f"{', '.join(sorted(extra))}")  # fmt: skip
    dimensions = _ordered_dimensions(dense.tasks[t].dimension for t in tasks)
    task_dimension = [dimensions.index(dense.tasks[t].dimension) for t in tasks]
    chance = np.array(
        [
            np.mean([dense.tasks[t].chance for t, k in zip(tasks, task_dimension, strict=True)
                     if k == d])
            for d in range(len(dimensions))
        ]
    )  # fmt: skip
    return _Layout(
        tasks=tasks,
        dense=[dense.tasks[t].values for t in tasks],
        a=[np.stack([_aligned(trial, dense, t) for trial in a]) for t in tasks],
        b=[np.stack([_aligned(trial, dense, t) for trial in b]) for t in tasks],
        dimensions=dimensions,
        task_dimension=task_dimension,
        chance=chance,
    )


def _counts(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """Bootstrap counts of ``n`` items for ``size`` replicates, ``(size, n)``: how often each
    item is drawn in ``n`` draws with replacement."""
    drawn = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
    return np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n).astype(float)


def _stacks(layout: _Layout, mats: list[np.ndarray]) -> list[np.ndarray]:
    """Per task, the dense values and the trials' as the columns of one (n_t, 1 + S) array."""
    return [
        np.ascontiguousarray(np.column_stack([d, m.T]))
        for d, m in zip(layout.dense, mats, strict=True)
    ]


def _task_scores(counts: list[np.ndarray], stacks: list[np.ndarray]):
    """Per task: (R, S) scores of the trials and (R,) dense scores, under item weights
    ``counts`` (each (R, n_t), rows summing to n_t). One matrix product per task: small
    products are dominated by their call overhead (and BLAS threads on a busy machine)."""
    scores = [c @ m / m.shape[0] for c, m in zip(counts, stacks, strict=True)]
    return [s[:, 1:] for s in scores], [s[:, 0] for s in scores]


def _retentions(
    trial: list[np.ndarray], dense: list[np.ndarray], layout: _Layout, keep: np.ndarray
) -> dict[str, np.ndarray]:
    """Each quantity as (R, S): retention of each dimension in ``keep`` (those defined on the
    observed items), total (mean over them) and worst (min). A replicate in which a kept
    dimension's dense score falls to chance is NaN for that dimension and for total and worst,
    which therefore always cover the same dimensions as the records."""
    n_dims = len(layout.dimensions)
    shape = trial[0].shape
    pruned = np.zeros((n_dims, *shape))
    base = np.zeros((n_dims, shape[0]))
    n_tasks = np.zeros(n_dims)
    for k, t_scores, d_scores in zip(layout.task_dimension, trial, dense, strict=True):
        pruned[k] += t_scores
        base[k] += d_scores
        n_tasks[k] += 1
    pruned, base = pruned[keep] / n_tasks[keep, None, None], base[keep] / n_tasks[keep, None]
    defined = base > layout.chance[keep, None]  # (kept dims, R)
    with np.errstate(divide="ignore", invalid="ignore"):
        retention = np.where(defined[:, :, None], pruned / base[:, :, None], np.nan)
    valid = defined.all(0)[:, None]  # (R, 1)
    out = {d: r for d, r in zip(np.array(layout.dimensions)[keep], retention, strict=True)}
    return out | {
        TOTAL: np.where(valid, retention.mean(0), np.nan),
        WORST: np.where(valid, retention.min(0), np.nan),
    }


def _side(counts, layout: _Layout, stacks, keep: np.ndarray) -> dict[str, np.ndarray]:
    return _retentions(*_task_scores(counts, stacks), layout, keep)


def _defined(layout: _Layout) -> np.ndarray:
    """Dimensions whose observed dense score is above chance (the records' defined set)."""
    base = np.zeros(len(layout.dimensions))
    n_tasks = np.zeros(len(layout.dimensions))
    for k, d in zip(layout.task_dimension, layout.dense, strict=True):
        base[k] += d.mean()
        n_tasks[k] += 1
    return base / n_tasks > layout.chance


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float, int]:
    """The central ``level`` percentile interval of the finite replicates and their count;
    NaN bounds when none is finite."""
    values = values[np.isfinite(values)]
    if not values.size:
        return float("nan"), float("nan"), 0
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high), int(values.size)


def _seed_mean(values: np.ndarray, picks: np.ndarray | None) -> np.ndarray:
    """Mean over seeds, (R, S) -> (R,): of the drawn seeds ``picks`` (R, S), else of all."""
    if picks is not None:
        values = np.take_along_axis(values, picks, axis=1)
    return values.mean(axis=1)


def paired_bootstrap(
    dense: ItemFile,
    a: Sequence[ItemFile],
    b: Sequence[ItemFile],
    *,
    label_a: str = "A",
    label_b: str = "B",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
    paired: bool = True,
    resample_seeds: bool = True,
    pair_seeds: bool = False,
    notes: Sequence[str] = (),
) -> PairedComparison:
    """Differences B − A of every retention quantity with bootstrap intervals (see the module
    docstring). ``a`` and ``b`` hold one side file per calibration seed, all scored on
    ``dense``'s items. Raises :class:`PairedUnavailable` when they are not.

    ``pair_seeds``: ``a[i]`` and ``b[i]`` were calibrated on the same set (the same source and
    seed, pruned two ways), so step 1 draws the seeds once for both sides instead of
    independently; needs as many trials in ``a`` as in ``b``."""
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1)")
    if pair_seeds and len(a) != len(b):
        raise ValueError(f"pair_seeds needs as many trials in a as in b ({len(a)} vs {len(b)})")
    layout = _layout(dense, a, b)
    keep = _defined(layout)
    if not keep.any():
        raise PairedUnavailable("the dense baseline scores at or below chance in every dimension")
    ones = [np.ones((1, d.shape[0])) for d in layout.dense]
    stacks_a, stacks_b = _stacks(layout, layout.a), _stacks(layout, layout.b)
    point_a, point_b = _side(ones, layout, stacks_a, keep), _side(ones, layout, stacks_b, keep)

    rng = np.random.default_rng(seed)
    picks_a = picks_b = None
    if resample_seeds:
        picks_a = rng.integers(0, len(a), size=(n_resamples, len(a)))
        picks_b = picks_a if pair_seeds else rng.integers(0, len(b), size=(n_resamples, len(b)))
    sizes = [d.shape[0] for d in layout.dense]
    block = max(1, min(n_resamples, _BLOCK_CELLS // max(sizes)))
    blocks_a: list[dict[str, np.ndarray]] = []
    blocks_b: list[dict[str, np.ndarray]] = []
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        counts_a = [_counts(rng, size, n) for n in sizes]
        counts_b = counts_a if paired else [_counts(rng, size, n) for n in sizes]
        blocks_a.append(_side(counts_a, layout, stacks_a, keep))
        blocks_b.append(_side(counts_b, layout, stacks_b, keep))
    rows = []
    for quantity in [*np.array(layout.dimensions)[keep], TOTAL, WORST]:
        rep_a = np.concatenate([blk[quantity] for blk in blocks_a])
        rep_b = np.concatenate([blk[quantity] for blk in blocks_b])
        diff = _seed_mean(rep_b, picks_b) - _seed_mean(rep_a, picks_a)
        diff = diff[np.isfinite(diff)]
        value_a = float(_seed_mean(point_a[quantity], None)[0])
        value_b = float(_seed_mean(point_b[quantity], None)[0])
        low, high, _ = percentile_interval(diff, level)
        positive = float((diff > 0).mean()) if diff.size else float("nan")
        rows.append({
            "quantity": quantity, "a": value_a, "b": value_b, "difference": value_b - value_a,
            "ci_low": low, "ci_high": high, "p_positive": positive,
            "contains_zero": bool(diff.size) and low <= 0 <= high, "n_valid": int(diff.size),
        })  # fmt: skip
    notes = list(notes)
    short = [r["quantity"] for r in rows if 0 < r["n_valid"] < n_resamples]
    if short:
        notes.append(
            f"{label_b} − {label_a}: in some replicates a dimension's resampled dense score fell "
            f"to chance; they are left out of {', '.join(map(str, short))}"
        )
    return PairedComparison(
        label_a=label_a,
        label_b=label_b,
        trials_a=tuple(str(t.trial_id) for t in a),
        trials_b=tuple(str(t.trial_id) for t in b),
        n_tasks=len(layout.tasks),
        n_items=int(sum(d.shape[0] for d in layout.dense)),
        n_resamples=n_resamples,
        seed=seed,
        level=level,
        paired=paired,
        table=pd.DataFrame(rows, columns=list(COLUMNS)),
        notes=tuple(notes),
    )


def common_dense(pairs: Iterable[tuple[ItemFile, ItemFile]]) -> ItemFile:
    """The one dense baseline shared by ``(trial, dense)`` pairs; PairedUnavailable if several."""
    stems: dict[str, ItemFile] = {}
    for _, dense in pairs:
        stems.setdefault(dense.stem, dense)
    if len(stems) != 1:
        raise PairedUnavailable(
            "the trials were scored against different dense baselines "
            f"({', '.join(sorted(stems)) or 'none'})"
        )
    return next(iter(stems.values()))


def _as_mapping(record: Any) -> Mapping[str, Any]:
    if isinstance(record, Mapping):
        return record
    if hasattr(record, "model_dump"):  # a raysweep TrialRecord, without importing raysweep
        return record.model_dump()
    raise TypeError(f"a record must be a mapping, not {type(record).__name__}")


def compare_records(
    run_dir: str | Path,
    records_a: Iterable[Any],
    records_b: Iterable[Any],
    *,
    label_a: str = "A",
    label_b: str = "B",
    **options: Any,
) -> PairedComparison:
    """Compare two calibration choices of one run from their trial records (one per seed;
    mappings or objects with ``model_dump``) and the run's ``items/`` side files: B − A.
    ``options`` are :func:`paired_bootstrap`'s (``n_resamples``, ``seed``, ``level``,
    ``paired``, ``resample_seeds``).

    Trials whose side files are missing or disagree with their records are left out (each
    named in ``notes``); :class:`PairedUnavailable` says why when a side keeps no trial or the
    two sides share no dense baseline and items."""
    records_a = [_as_mapping(r) for r in records_a]
    records_b = [_as_mapping(r) for r in records_b]
    items = load_items(run_dir, [*records_a, *records_b])
    sides = []
    for label, records in ((label_a, records_a), (label_b, records_b)):
        usable = [r["trial_id"] for r in records if r.get("trial_id") in items.trials]
        if not usable:
            reasons = [items.skipped[r["trial_id"]] for r in records
                       if r.get("trial_id") in items.skipped]  # fmt: skip
            why = reasons[0] if reasons else "no trial record given"
            raise PairedUnavailable(f"no usable per-item data for {label}: {why}")
        sides.append(usable)
    pairs = [(items.trials[t], items.dense_of(t)) for t in (*sides[0], *sides[1])]
    return paired_bootstrap(
        common_dense(pairs), [items.trials[t] for t in sides[0]],
        [items.trials[t] for t in sides[1]], label_a=label_a, label_b=label_b,
        notes=items.notes, **options,
    )  # fmt: skip
