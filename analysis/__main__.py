"""``python -m analysis <run dir or records.jsonl>``: write the report and print its headlines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.records import GROUP_KEYS
from analysis.report import DEFAULT_MAX_FIGURE_GROUPS, analyse, write_report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    parser.add_argument("records", type=Path, help="run directory or records.jsonl file")
    parser.add_argument("--out", type=Path, default=None, help="default: <run dir>/report/")
    parser.add_argument(
        "--group-by",
        default=",".join(GROUP_KEYS),
        help="comma-separated record fields (default: %(default)s; empty: no grouping)",
    )
    parser.add_argument("--reference", default="c4", help="reference calibration source")
    parser.add_argument("--resamples", type=int, default=9999, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument(
        "--max-figure-groups",
        type=int,
        default=DEFAULT_MAX_FIGURE_GROUPS,
        help="draw per-group figures for at most this many groups (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    group_by = tuple(k.strip() for k in args.group_by.split(",") if k.strip())
    try:
        analysis = analyse(
            args.records,
            group_by=group_by,
            reference=args.reference or None,
            n_resamples=args.resamples,
            seed=args.seed,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out if args.out is not None else analysis.records.path.parent / "report"
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
    print(
        f"{len(records.trials)} trials ({len(records.ok)} ok, {records.n_errors} failed, "
        f"{len(records.broken_lines)} unreadable line(s)) -> {files.report_md}"
    )
    for label, sentence in analysis.headlines.items():
        print(f"  {label}: {sentence}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
