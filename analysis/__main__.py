"""``python -m analysis RUN [RUN ...]``: write the report and print its headlines.

A RUN is a run directory or a records.jsonl file. Several runs make one report with the run as
a column: they must share model, suite and item limit (``--allow-mixed`` overrides), and where
they share points the report puts those side by side and groups every statistic by run.

``python -m analysis agreement RUN_A RUN_B``: how far two runs (two suites, two item budgets)
rank the calibration choices alike, with bootstrap intervals (``analysis.agreement``).

``python -m analysis ablation FULL PARTIAL [PARTIAL ...]``: the share of a full prune's retention
loss that runs keeping some modules dense (``pruning.ignore``) lose (``analysis.ablation``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from analysis.paired import DEFAULT_RESAMPLES
from analysis.records import GROUP_KEYS
from analysis.report import DEFAULT_MAX_FIGURE_GROUPS, analyse, write_report
from analysis.runs import RUN, load_runs, overlapping


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    parser.add_argument("records", type=Path, nargs="+",
                        help="run directory or records.jsonl file; several to compare runs")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None,
                        help="default: <run dir>/report/; for several runs ./compare-<runs>/")  # fmt: skip
    parser.add_argument("--allow-mixed", action="store_true",
                        help="compare runs even when their model, suite or item limit differ")  # fmt: skip
    parser.add_argument(
        "--group-by",
        default=",".join(GROUP_KEYS),
        help="comma-separated record fields (default: %(default)s; empty: no grouping)",
    )
    parser.add_argument("--reference", default="auto",
                        help="reference calibration source of the mix table and the paired "
                        "comparisons (default: auto, c4 where the run has it; empty: none)")  # fmt: skip
    parser.add_argument("--resamples", type=int, default=9999, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--paired-resamples", type=int, default=DEFAULT_RESAMPLES,
                        help="replicates of the paired bootstrap over items and seeds "
                        "(default: %(default)s)")  # fmt: skip
    parser.add_argument(
        "--max-figure-groups",
        type=int,
        default=DEFAULT_MAX_FIGURE_GROUPS,
        help="draw per-group figures for at most this many groups (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["agreement"]:
        from analysis.agreement import main as agreement_main

        return agreement_main(argv[1:])
    if argv[:1] == ["ablation"]:
        from analysis.ablation import main as ablation_main

        return ablation_main(argv[1:])
    args = parse_args(argv)
    group_by = tuple(k.strip() for k in args.group_by.split(",") if k.strip())
    try:
        records: Any = args.records[0]
        runs: tuple = ()
        if len(args.records) > 1:
            records, runs = load_runs(args.records, allow_mixed=args.allow_mixed)
            if overlapping(records) and RUN not in group_by:
                group_by = (*group_by, RUN)
        analysis = analyse(
            records,
            group_by=group_by,
            reference=args.reference or None,
            n_resamples=args.resamples,
            seed=args.seed,
            runs=runs,
            paired_resamples=args.paired_resamples,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out is not None:
        out = args.out
    elif runs:
        out = Path.cwd() / ("compare-" + "-".join(r.name.replace("/", "_") for r in runs))[:120]
    else:
        out = analysis.records.path.parent / "report"
    try:
        files = write_report(analysis, out, max_figure_groups=args.max_figure_groups)
    except OSError as exc:  # a read-only run directory, a full disk
        if args.out is not None:  # the user's own choice: say so, do not write elsewhere
            print(f"error: cannot write the report to {str(out)!r} ({exc.strerror or exc}); "
                  "give --out DIR, a directory you can write", file=sys.stderr)  # fmt: skip
            return 2
        fallback = Path.cwd() / f"{analysis.records.path.parent.name or 'run'}-report"
        print(f"note: {str(out)!r} is not writable ({exc.strerror or exc}); writing the report "
              f"to {str(fallback)!r} instead (--out chooses)", file=sys.stderr)  # fmt: skip
        try:
            files = write_report(analysis, fallback, max_figure_groups=args.max_figure_groups)
        except OSError as again:
            print(f"error: cannot write the report to {str(fallback)!r} either "
                  f"({again.strerror or again}); give --out DIR", file=sys.stderr)  # fmt: skip
            return 2
    records = analysis.records
    for run in analysis.runs:
        print(f"run {run.name}: {run.ok}/{run.trials} ok trials ({run.path})")
    print(
        f"{len(records.trials)} trials ({len(records.ok)} ok, {records.n_errors} failed, "
        f"{len(records.broken_lines)} unreadable line(s)) -> {files.report_md}"
    )
    for label, sentence in analysis.headlines.items():
        print(f"  {label}: {sentence}")
    if analysis.paired is not None:
        for label, sentence in analysis.paired.headlines.items():
            print(f"  {label}: {sentence}")
    if analysis.allocation is not None:
        for label, sentences in analysis.allocation.headlines.items():
            for sentence in sentences:
                print(f"  {label}: {sentence}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
