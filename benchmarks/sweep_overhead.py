"""Per-trial overhead of the sweep machinery, read from a finished run's records.

overhead = trial wall time seen by the driver (scheduling, actor start, model restore, reporting)
           - (calibrate + prune + eval time measured inside the trial)

    python benchmarks/sweep_overhead.py runs/default          # after `python -m raysweep.run`
    python benchmarks/sweep_overhead.py --run                 # runs the smoke sweep first
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run_dir", nargs="?", default=str(ROOT / "runs" / "default"))
    p.add_argument("--run", action="store_true", help="run the smoke sweep into run_dir first")
    args = p.parse_args()
    run_dir = Path(args.run_dir)
    if args.run:
        subprocess.run([sys.executable, "-m", "raysweep.run", "--smoke-test", "--output",
                        str(run_dir)], check=False)  # fmt: skip
        run_dir = Path(str(run_dir).rstrip("/") + "-smoke")
    sys.path.insert(0, str(ROOT))
    from raysweep.records import read_records

    recs = [r for r in read_records(run_dir / "records.jsonl").records
            if r.status == "ok" and "trial_wall_s" in r.timings]  # fmt: skip
    if not recs:
        print(f"no finished trials with driver timings in {run_dir}")
        return 1
    walls = [r.timings["trial_wall_s"] for r in recs]
    work = [r.timings["calibrate_s"] + r.timings["prune_s"] + r.timings["eval_s"] for r in recs]
    loads = [r.timings.get("load_s", 0.0) for r in recs]
    share = [(w - k) / w for w, k in zip(walls, work, strict=True)]
    print(f"trials: {len(recs)} (from {run_dir / 'records.jsonl'})")
    print(
        f"trial wall time (driver)  mean {statistics.mean(walls):6.2f} s  median {statistics.median(walls):6.2f} s"
    )
    print(f"calibrate+prune+eval      mean {statistics.mean(work):6.2f} s")
    print(f"  of which model restore  mean {statistics.mean(loads):6.2f} s (counted as overhead)")
    print(
        f"overhead share            mean {statistics.mean(share):6.1%}  median {statistics.median(share):6.1%}"
        f"  (target <= 10%)"
    )
    first = sorted(recs, key=lambda r: r.started_at)[:2]
    print(
        "first trials of each worker pay the process start: "
        + ", ".join(f"{r.timings['trial_wall_s']:.1f}s" for r in first)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
