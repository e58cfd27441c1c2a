"""Where does the loss come from? ``python -m analysis ablation FULL PARTIAL [PARTIAL ...]``.

FULL is a run that pruned every prunable module; each PARTIAL is the same grid run with some
modules kept dense (``pruning.ignore``, e.g. ``[".*linear_attn.*"]`` on a hybrid decoder, so
that only its attention layers are pruned). For every calibration choice (mix name) and
(method, structure, sparsity) group both runs measured, and every quantity (each dimension's
retention, total and worst), the retention the partial prune loses is set against the full
prune's:

    share = (1 - retention_partial) / (1 - retention_full)

the share of the full prune's loss that the modules the partial run still pruned account for.
Shares of two complementary partial runs need not add up to 1: losses interact. A choice's value
in a run is the mean over the calibration seeds both runs have of it. A share is undefined (left
empty and counted in the notes) where the full prune loses less than ``MIN_LOSS``: a ratio of
two noise-sized losses says nothing. Records alone are read (no per-item side files).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.agreement import grid_choices
from analysis.records import (
    GROUP_KEYS,
    chosen_quantities,
    group_label,
    groups,
    load_records,
    ok_trials,
    quantity_list,
    retention_column,
)
from analysis.writing import print_and_write, write_text_atomic

# Below this loss of retention in the full prune, a share is a ratio of noise (0.01 is about the
# standard error of one 400-item multiple-choice task's accuracy near 0.9).
MIN_LOSS = 0.01
SHARE_COLUMNS = [*GROUP_KEYS, "pruned", "choice", "quantity", "lost_full", "lost_partial", "share"]


@dataclass(frozen=True)
class Ablation:
    """Every share (``SHARE_COLUMNS``), the runs' labels and notes."""

    full: str
    partial: tuple[str, ...]  # one label per partial run: what it kept dense
    shares: pd.DataFrame
    notes: tuple[str, ...]


def _grid(run: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """A run's ok grid trials and the ignore patterns they were pruned with (one list per run)."""
    frame = ok_trials(load_records(run, warn=False))
    frame = frame[frame["phase"] == "grid"]
    if frame.empty:
        raise ValueError(f"{run}: no ok grid trials")
    configs = frame["config"] if "config" in frame else ["{}"] * len(frame)
    ignores = {tuple(json.loads(c).get("ignore") or ()) for c in configs}
    if len(ignores) != 1:
        raise ValueError(f"{run}: its trials were pruned with different ignore patterns "
                         f"{sorted(ignores)}; ablation needs one per run")  # fmt: skip
    return frame, list(ignores.pop())


def _label(ignore: list[str]) -> str:
    return "all" if not ignore else "all but " + ", ".join(ignore)


def _means(frame: pd.DataFrame, seeds: dict[str, set], quantities: list[str]) -> pd.DataFrame:
    """Per choice, the mean over the shared seeds of each quantity's retention."""
    keep = [seed in seeds.get(name, ()) for name, seed in zip(frame["choice"], frame["seed"],
                                                              strict=True)]  # fmt: skip
    columns = {q: retention_column(q) for q in quantities}
    means = frame[keep].groupby("choice")[list(columns.values())].mean()
    return means.rename(columns={v: k for k, v in columns.items()})


def ablation(full: str | Path, partial: Sequence[str | Path], *,
             quantities: Sequence[str] | None = None) -> Ablation:  # fmt: skip
    """The shares of the module docstring. ValueError (its message for the user) when the runs
    cannot be set against each other."""
    if not partial:
        raise ValueError("ablation needs a full run and at least one partial run")
    full_frame, full_ignore = _grid(full)
    if full_ignore:
        raise ValueError(f"{full}: the full run kept {full_ignore} dense; give the run that "
                         "pruned every module first")  # fmt: skip
    models = {str(full_frame["model"].iloc[0])}
    quantities = chosen_quantities(quantities, full_frame)
    rows, notes, labels = [], [], []
    loaded = [_grid(run) for run in partial]
    for run, (frame, ignore) in zip(partial, loaded, strict=True):
        if not ignore:
            raise ValueError(f"{run}: a partial run keeps some modules dense (pruning.ignore); "
                             "this one pruned every module")  # fmt: skip
        if str(frame["model"].iloc[0]) not in models:
            raise ValueError(f"{run} prunes another model than {full}")
    # A choice is a mix name, with its weights where one name stands for several mixes (the
    # uniform mix of a run over fewer sources is another mix).
    full_frame, *frames = grid_choices([full_frame, *(frame for frame, _ in loaded)])
    full_groups = dict(groups(full_frame, GROUP_KEYS))
    for frame, (_, ignore) in zip(frames, loaded, strict=True):
        label = _label(ignore)
        labels.append(label)
        for key, part in groups(frame, GROUP_KEYS):
            if key not in full_groups:
                notes.append(f"{label}: {group_label(GROUP_KEYS, key)} is not in the full run")
                continue
            base = full_groups[key]
            seeds = {n: set(part.loc[part["choice"] == n, "seed"])
                     & set(base.loc[base["choice"] == n, "seed"])
                     for n in set(part["choice"]) & set(base["choice"])}  # fmt: skip
            lost_full = 1.0 - _means(base, seeds, quantities)
            lost_partial = 1.0 - _means(part, seeds, quantities)
            for choice in sorted(lost_full.index.intersection(lost_partial.index)):
                for q in quantities:
                    a, b = float(lost_full.at[choice, q]), float(lost_partial.at[choice, q])
                    share = b / a if a >= MIN_LOSS else np.nan
                    rows.append(dict(zip(GROUP_KEYS, key, strict=True)) | {
                        "pruned": label, "choice": choice, "quantity": q, "lost_full": a,
                        "lost_partial": b, "share": share})  # fmt: skip
    shares = pd.DataFrame(rows, columns=SHARE_COLUMNS)
    undefined = int(shares["share"].isna().sum())
    if undefined:
        notes.append(f"{undefined} share(s) undefined: the full prune lost less than {MIN_LOSS} "
                     "retention there")  # fmt: skip
    return Ablation(_label(full_ignore), tuple(labels), shares, tuple(notes))


def summary(result: Ablation) -> pd.DataFrame:
    """Per group, pruned part and quantity: the median share over the choices, its range, and
    the number of choices with a defined share."""
    keys = [*GROUP_KEYS, "pruned", "quantity"]
    stats = result.shares.groupby(keys, sort=False)["share"]
    table = stats.agg(median="median", low="min", high="max", n="count").reset_index()
    return table


def markdown(result: Ablation) -> str:
    lines = [f"# Ablation: {', '.join(result.partial)} against {result.full}", "",
             "Share of the full prune's retention loss that each partial prune loses "
             "(median over calibration choices, [min, max], n choices):", ""]  # fmt: skip
    table = summary(result)
    for key, part in table.groupby([*GROUP_KEYS], sort=False):
        lines += [f"## {group_label(GROUP_KEYS, key)}", "",
                  "| pruned | quantity | median share | range | n |", "|---|---|---|---|---|"]  # fmt: skip
        for row in part.itertuples(index=False):
            lines.append(f"| {row.pruned} | {row.quantity} | {row.median:.3f} | "
                         f"[{row.low:.3f}, {row.high:.3f}] | {row.n} |")  # fmt: skip
        lines.append("")
    if result.notes:
        lines += ["Notes:", *[f"- {n}" for n in result.notes], ""]
    return "\n".join(lines)


def write(result: Ablation, out: Path) -> list[Path]:
    """``ablation.md``, ``ablation_shares.csv`` (every share) and ``ablation_summary.csv``."""
    out.mkdir(parents=True, exist_ok=True)
    return [
        write_text_atomic(out / "ablation.md", markdown(result)),
        write_text_atomic(out / "ablation_shares.csv", result.shares.to_csv(index=False)),
        write_text_atomic(out / "ablation_summary.csv", summary(result).to_csv(index=False)),
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m analysis ablation",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("full", type=Path, help="the run that pruned every prunable module")
    parser.add_argument("partial", type=Path, nargs="+",
                        help="runs of the same grid with pruning.ignore set")  # fmt: skip
    parser.add_argument("--quantity", default="",
                        help="comma-separated: total, worst, dimensions (default: all)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None,
                        help="write ablation.md/.csv here (default: ./ablation-<FULL>/)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = ablation(args.full, args.partial, quantities=quantity_list(args.quantity))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path.cwd() / f"ablation-{Path(args.full).name}"[:120]
    return print_and_write(markdown(result), lambda folder: write(result, folder), out)


if __name__ == "__main__":
    raise SystemExit(main())
