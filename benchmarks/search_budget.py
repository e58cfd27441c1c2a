"""The mix search under a budget: early stopping against the full search on the toy world.

For each search seed, runs ``configs/toy_search.yaml`` (grid, search, confirmation) three times
as ``python -m raysweep.run`` subprocesses, each into its own output directory:

- ``full``: ``search.early_stopping: none``, ``--trials`` proposed mixes;
- ``asha``: ``search.early_stopping: asha``, the same number of proposed mixes;
- ``asha+``: ASHA with as many mixes as fit in the full search's wall time (``--trials`` times
  the seed's full/asha search-time ratio).

Prints, per variant and over the seeds, the search's wall time (the Tune search alone, from
``search/summary.json``), the items it scored (each search record's items per task times the
tasks: a stopped one's ``stopped_at_items``), how many trials were stopped, the confirmed best
mix's worst-case retention and its paired 95 % interval against the uniform mix (the run's own
``summary.json``), and the ratios asha/full.

    python benchmarks/search_budget.py [--seeds 0 1 2] [--trials 30] [--out runs/search_budget]
        [extra key=value overrides for every run, e.g. calibration.seeds=[0] search.seeds=[0]]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from raysweep.evaluation import get_suite
from raysweep.records import RECORDS_FILE, latest_records

CONFIG = "configs/toy_search.yaml"


def run(out: Path, overrides: list[str]) -> dict[str, Any]:
    """One sweep into ``out`` (reused when it already holds a summary): its search figures."""
    summary_path = out / "search" / "summary.json"
    if not summary_path.is_file():
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "raysweep.run", "--config", CONFIG, "--output", str(out),
               "ray.dashboard=false", *overrides]  # fmt: skip
        print("$", " ".join(cmd[1:]), flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode not in (0, 1):
            sys.exit(f"{out}: exit {done.returncode}\n{done.stderr[-3000:]}")
        print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
    (summary,) = json.loads(summary_path.read_text())
    return figures(out, summary)


def figures(out: Path, summary: dict[str, Any]) -> dict[str, Any]:
    records = [r for r in latest_records(out / RECORDS_FILE).values() if r.phase == "search"]
    suite = get_suite(summary["search_suite"]["suite"])
    sizes = [t.size or 0 for t in suite.tasks]
    limit = summary["search_suite"]["limit"]

    def items(per_task: int | None) -> int:
        return sum(min(s, per_task or limit or s) for s in sizes)

    best = (summary["full_suite_rows"].get("best_mix") or {}).get("worst_retention")
    uniform = (summary["full_suite_rows"].get("uniform") or {}).get("worst_retention")
    worst = (summary.get("paired", {}).get("uniform") or {}).get("quantities", {}).get("worst")
    paired = None if worst is None else (worst["difference"], worst["ci_low"], worst["ci_high"])
    return {
        "wall_s": summary["wall_s"],
        "items": sum(items(r.stopped_at_items) for r in records if r.status != "error"),
        "trials": len({json.dumps(sorted(r.mix.items())) for r in records}),
        "stopped": summary.get("stopped_trials", 0),
        "best": best,
        "uniform": uniform,
        "paired": paired,
    }


def _mean(values: list[float | None]) -> float:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else math.nan


def show(name: str, rows: list[dict[str, Any]]) -> None:
    print(f"{name:6s} wall {_mean([r['wall_s'] for r in rows]):7.1f} s  "
          f"items {_mean([r['items'] for r in rows]):9.0f}  "
          f"mixes {_mean([r['trials'] for r in rows]):5.1f} (stopped "
          f"{_mean([r['stopped'] for r in rows]):4.1f})  best {_mean([r['best'] for r in rows]):.3f}"
          f"  uniform {_mean([r['uniform'] for r in rows]):.3f}")  # fmt: skip
    for seed_row in rows:
        p = seed_row["paired"]
        if p is not None:
            print(f"        best - uniform (worst): {p[0]:+.3f} [{p[1]:+.3f}, {p[2]:+.3f}]"
                  f"{'  excludes 0' if p[1] > 0 or p[2] < 0 else ''}")  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--out", default="runs/search_budget")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    root = Path(args.out)
    rows: dict[str, list[dict[str, Any]]] = {"full": [], "asha": [], "asha+": []}
    for seed in args.seeds:
        common = [f"search.seed={seed}", f"search.n_trials={args.trials}", *args.overrides]
        full = run(root / f"full-s{seed}", [*common, "search.early_stopping=none"])
        asha = run(root / f"asha-s{seed}", [*common, "search.early_stopping=asha"])
        more = max(args.trials, round(args.trials * full["wall_s"] / max(asha["wall_s"], 1e-9)))
        plus = run(root / f"asha+-s{seed}", [*common, "search.early_stopping=asha",
                                             f"search.n_trials={more}"])  # fmt: skip
        for name, row in (("full", full), ("asha", asha), ("asha+", plus)):
            rows[name].append(row)
    for name, variant in rows.items():
        show(name, variant)
    full, asha = rows["full"], rows["asha"]
    time_ratio = _mean([a["wall_s"] / f["wall_s"] for a, f in zip(asha, full, strict=True)])
    items_ratio = _mean([a["items"] / f["items"] for a, f in zip(asha, full, strict=True)])
    print(f"asha / full over seeds {args.seeds}: wall time x{time_ratio:.2f}, items "
          f"x{items_ratio:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
