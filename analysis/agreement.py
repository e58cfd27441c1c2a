"""Do two runs rank the calibration choices alike? ``python -m analysis agreement RUN_A RUN_B``.

Two runs of the same grid scored differently (a proxy suite against the full one, 50 items per
task against 400) are useful to each other only if they order the calibration choices the same
way. For each (method, structure, sparsity) group and each quantity (total and worst retention,
each dimension's retention), the choices both runs measured (grid trials, keyed by mix name and
weights) are compared: a choice's value in a run is the mean over the calibration seeds both
runs have of it, and the agreement is Kendall's tau-b and Spearman's rho between the two runs'
values, with percentile bootstrap intervals and the top choice of each run.

Resampling scheme: the calibration choices are the sampled units, as the sources are in the
correlation study (``analysis.correlations``). One replicate draws the group's ``C`` choices
``C`` times with replacement, each keeping both runs' values, and computes both coefficients
(tau-b counts a choice drawn twice as a tie, which adds nothing). Items are not resampled: both
runs' item noise is already in the values they disagree on, and resampling items would add it
a second time, so that every replicate agrees less than the runs do and the interval would
miss the observed coefficient. Replicates whose ranking is all ties are left out (``n_valid``).
One seeded ``numpy.random.Generator`` draws everything: the same inputs and seed give the same
intervals. Records alone are read (no per-item side files needed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.correlations import spearman_rho
from analysis.paired import DEFAULT_RESAMPLES, percentile_interval
from analysis.records import (
    GROUP_KEYS,
    TOTAL,
    chosen_quantities,
    group_label,
    groups,
    ok_trials,
    quantity_list,
    retention_column,
)
from analysis.runs import RUN, RunInfo, load_runs
from analysis.writing import print_and_write, write_text_atomic

COLUMNS = (
    "quantity", "n_choices", "kendall_tau", "tau_low", "tau_high", "spearman_rho", "rho_low",
    "rho_high", "n_valid", "top_a", "top_b",
)  # fmt: skip
VALUE_COLUMNS = ("choice", "quantity", "a", "b")
MIN_CHOICES = 3


@dataclass(frozen=True)
class Agreement:
    """``table``: one row per (group, quantity), columns the group keys then COLUMNS;
    ``values``: each shared choice's value in both runs (columns the group keys, then
    VALUE_COLUMNS)."""

    run_a: RunInfo
    run_b: RunInfo
    table: pd.DataFrame
    values: pd.DataFrame
    notes: tuple[str, ...]
    n_resamples: int
    seed: int
    level: float


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair, ``(R, C)`` -> ``(R,)``; NaN where a row is all ties."""
    i, j = np.triu_indices(x.shape[1], 1)
    sx, sy = np.sign(x[:, i] - x[:, j]), np.sign(y[:, i] - y[:, j])
    denominator = np.sqrt((sx != 0).sum(1) * (sy != 0).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (sx * sy).sum(1) / denominator, np.nan)


def _weights(row: pd.Series) -> str:
    return json.dumps({c[4:]: round(float(v), 9) for c, v in sorted(row.items())
                       if c.startswith("mix.") and pd.notna(v) and v > 0})  # fmt: skip


def grid_choices(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Each run's ok grid trials with a ``choice`` column: the mix name, with the weights added
    only where one name stands for several mixes across the runs (then they are not one
    choice)."""
    grids = []
    for frame in frames:
        grid = ok_trials(frame)
        grid = grid[grid["phase"] == "grid"].copy()
        grid["weights"] = [_weights(r) for _, r in grid.iterrows()] if not grid.empty else []
        grids.append(grid)
    both = pd.concat(grids)
    ambiguous = set(both.groupby("mix_name")["weights"].nunique().loc[lambda n: n > 1].index)
    for grid in grids:
        grid["choice"] = [
            f"{name} {weights}" if name in ambiguous else str(name)
            for name, weights in zip(grid["mix_name"], grid["weights"], strict=True)
        ]
    return grids


def agreement(run_a: str | Path, run_b: str | Path, *, quantities: Sequence[str] | None = None,
              group_by: tuple[str, ...] = GROUP_KEYS, n_resamples: int = DEFAULT_RESAMPLES,
              seed: int = 0, level: float = 0.95, across_models: bool = False) -> Agreement:  # fmt: skip
    """The agreement of the module docstring. ValueError (its message for the user) when the
    runs cannot be compared: one of them missing, the same run twice, different models (unless
    ``across_models``: do two models rank the same calibration choices alike?)."""
    if n_resamples < 1 or not 0 < level < 1:
        raise ValueError("--resamples must be at least 1 and --level lie in (0, 1)")
    merged, runs = load_runs([run_a, run_b], allow_mixed=True, warn=False)
    info_a, info_b = runs
    if info_a.path.resolve() == info_b.path.resolve():
        raise ValueError(f"agreement needs two different runs, got {info_a.path} twice")
    if info_a.model != info_b.model and not across_models:
        raise ValueError(f"the runs prune different models ({info_a.name}: {info_a.model!r}; "
                         f"{info_b.name}: {info_b.model!r}): their choices are not comparable "
                         "(--across-models compares how two models rank them)")  # fmt: skip
    notes = []
    if (info_a.suite, info_a.limit) == (info_b.suite, info_b.limit) and info_a.suite != "?":
        notes.append(f"both runs use suite {info_a.suite!r} with limit {info_a.limit}: their "
                     "disagreement can only come from the runs' own noise")  # fmt: skip
    grids = grid_choices([merged.trials[merged.trials[RUN] == r.name] for r in runs])
    quantities = chosen_quantities(quantities, pd.concat(grids))
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    values: list[dict[str, Any]] = []
    groups_a, groups_b = (dict(groups(grid, group_by)) for grid in grids)
    shared = sorted(set(groups_a) & set(groups_b), key=str)
    if not shared:
        notes.append("the runs share no (method, structure, sparsity) group of grid trials")
    for key in shared:
        label = group_label(group_by, key)
        part_a, part_b = groups_a[key], groups_b[key]
        seeds = {c: sorted(set(part_a.loc[part_a["choice"] == c, "seed"])
                           & set(part_b.loc[part_b["choice"] == c, "seed"]))
                 for c in set(part_a["choice"]) & set(part_b["choice"])}  # fmt: skip
        choices = sorted(c for c, s in seeds.items() if s)
        if len(choices) < MIN_CHOICES:
            notes.append(f"{label}: {len(choices)} choice(s) in both runs; agreement needs "
                         f"at least {MIN_CHOICES}")  # fmt: skip
            continue
        used = [p[[c in seeds and s in seeds[c] for c, s in zip(p["choice"], p["seed"],
                                                                strict=True)]]
                for p in (part_a, part_b)]  # fmt: skip
        observed = [
            {q: np.array([u.loc[u["choice"] == c, retention_column(q)].mean() for c in choices])
             for q in quantities}
            for u in used
        ]  # fmt: skip
        picks = rng.integers(0, len(choices), size=(n_resamples, len(choices)))
        group = dict(zip(group_by, key, strict=True))
        for q in quantities:
            a, b = observed[0][q], observed[1][q]
            for c, va, vb in zip(choices, a, b, strict=True):
                values.append({**group, "choice": c, "quantity": q, "a": va, "b": vb})
            if not (np.isfinite(a).all() and np.isfinite(b).all()):
                notes.append(f"{label}: {q} is undefined for some choice; not ranked")
                continue
            tau = kendall_tau_b(a[None], b[None])[0]
            rho = spearman_rho(a[None], b[None])[0]
            taus, rhos = kendall_tau_b(a[picks], b[picks]), spearman_rho(a[picks], b[picks])
            tau_low, tau_high, n_valid = percentile_interval(taus, level)
            rho_low, rho_high, _ = percentile_interval(rhos, level)
            rows.append({**group, "quantity": q, "n_choices": len(choices), "kendall_tau": tau,
                         "tau_low": tau_low, "tau_high": tau_high, "spearman_rho": rho,
                         "rho_low": rho_low, "rho_high": rho_high, "n_valid": n_valid,
                         "top_a": choices[int(np.argmax(a))],
                         "top_b": choices[int(np.argmax(b))]})  # fmt: skip
    return Agreement(info_a, info_b, pd.DataFrame(rows, columns=[*group_by, *COLUMNS]),
                     pd.DataFrame(values, columns=[*group_by, *VALUE_COLUMNS]), tuple(notes),
                     n_resamples, seed, level)  # fmt: skip


def markdown(result: Agreement) -> str:
    """The agreement table, for the console and ``agreement.md``."""
    a, b = result.run_a, result.run_b
    pct = f"{100 * result.level:g} %"
    lines = [f"# Ranking agreement: {a.name} vs {b.name}", "",
             f"- A: `{a.name}`: suite {a.suite}, limit {a.limit}",
             f"- B: `{b.name}`: suite {b.suite}, limit {b.limit}",
             f"- {pct} percentile bootstrap intervals over the calibration choices, "
             f"{result.n_resamples} replicates, seed {result.seed}", ""]  # fmt: skip
    table = result.table
    if table.empty:
        lines.append("No group has enough choices in both runs.")
    else:
        keys = [c for c in table.columns if c not in COLUMNS]
        lines += ["| group | quantity | choices | Kendall τ [CI] | Spearman ρ [CI] | top in A "
                  "| top in B |", "|---" * 7 + "|"]  # fmt: skip
        for _, r in table.iterrows():
            label = group_label(tuple(keys), tuple(r[k] for k in keys))
            lines.append(
                f"| {label} | {r['quantity']} | {r['n_choices']} | {_ci(r, 'kendall_tau', 'tau')}"
                f" | {_ci(r, 'spearman_rho', 'rho')} | {r['top_a']} | "
                f"{r['top_b']} |"
            )
    if result.notes:
        lines += ["", "Notes:", *[f"- {n}" for n in result.notes]]
    return "\n".join(lines) + "\n"


def _ci(row: pd.Series, point: str, prefix: str) -> str:
    low, high = row[f"{prefix}_low"], row[f"{prefix}_high"]
    interval = "n/a" if pd.isna(low) else f"{low:+.2f}, {high:+.2f}"
    return f"{row[point]:+.2f} [{interval}]"


def write(result: Agreement, out: Path) -> list[Path]:
    """``agreement.md``, ``agreement.csv``, ``agreement_values.csv`` and, where a group was
    ranked, ``agreement.png`` (each choice's total retention in A against B, per group)."""
    from analysis.figures import agreement_scatter

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, text in (("agreement.md", markdown(result)),
                       ("agreement.csv", result.table.to_csv(index=False)),
                       ("agreement_values.csv", result.values.to_csv(index=False))):  # fmt: skip
        write_text_atomic(out / name, text)
        files.append(out / name)
    ranked = result.values[result.values["quantity"] == TOTAL]
    if not ranked.empty and not result.table.empty:
        files.append(agreement_scatter(ranked, result.table, result.run_a.name,
                                       result.run_b.name, out / "agreement.png"))  # fmt: skip
    return files


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m analysis agreement",
        description=__doc__.split("\n\n")[0] + " Kendall's tau-b and Spearman's rho between two "
        "runs' rankings of the calibration choices, per (method, structure, sparsity), with "
        "bootstrap intervals over the choices.",
    )  # fmt: skip
    parser.add_argument("run_a", type=Path, help="run directory or records.jsonl (A)")
    parser.add_argument("run_b", type=Path, help="run directory or records.jsonl (B)")
    parser.add_argument("--quantity", default="",
                        help="comma-separated: total, worst, dimension names (default: all)")  # fmt: skip
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                        help="bootstrap replicates (default: %(default)s)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--level", type=float, default=0.95, help="interval level")
    parser.add_argument("--across-models", action="store_true",
                        help="compare runs of two models (do they rank the choices alike?)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None,
                        help="write agreement.md/.csv/.png here (default: ./agreement-<A>-<B>/)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = agreement(args.run_a, args.run_b, quantities=quantity_list(args.quantity),
                           n_resamples=args.resamples, seed=args.seed, level=args.level,
                           across_models=args.across_models)  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    slug = "-".join(r.name.replace("/", "_") for r in (result.run_a, result.run_b))
    out = args.out or Path.cwd() / f"agreement-{slug}"[:120]
    return print_and_write(markdown(result), lambda folder: write(result, folder), out)


if __name__ == "__main__":
    raise SystemExit(main())
