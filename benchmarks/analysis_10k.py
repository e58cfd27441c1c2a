"""Time ``python -m analysis`` on a synthetic records file of 10 000 trials (target <= 30 s).

    python benchmarks/analysis_10k.py [--records 10000] [--dir DIR] [--keep]

The records imitate a large sweep: 3 methods x 3 structures x 6 sparsities (54 groups), each
with 15 single sources x 10 seeds, a uniform mix x 10 seeds, search trials and a confirmed
best mix; 6 calibration metrics, 4 dimensions, 12 tasks, a full config per record.
Prints the command's wall time and CPU time (the CPU time is not inflated by other work on
a shared machine; wall time on an idle 2-core machine is at most about that).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from raysweep.names import DIMENSIONS, METHODS

STRUCTURES = ("unstructured", "2:4", "4:8")
SPARSITIES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
SOURCES = tuple(f"source_{i:02d}" for i in range(15))
METRICS = ("perplexity", "ngram4_aggregation", "entropy", "type_token_ratio", "mean_length", "dup")
TASKS = tuple(f"task_{d}_{k}" for d in DIMENSIONS for k in range(3))


def synthetic_records(n: int, seed: int = 0) -> list[dict]:
    """``n`` records: grid trials first, search and confirm trials fill the rest."""
    rng = np.random.default_rng(seed)
    affinity = rng.uniform(0.5, 1.0, (len(SOURCES), len(DIMENSIONS)))  # source x dimension
    metric_base = rng.uniform(1.0, 20.0, (len(SOURCES), len(METRICS)))
    groups = [(m, s, p) for m in METHODS for s in STRUCTURES for p in SPARSITIES]
    records: list[dict] = []

    def add(group, mix, mix_name, phase, seed_):
        method, structure, sparsity = group
        weights = np.array([mix.get(s, 0.0) for s in SOURCES])
        keep = np.clip(1.2 - sparsity, 0, 1) * (weights @ affinity) + rng.normal(0, 0.02, 4)
        retention = {d: float(np.clip(v, 0, 1.2)) for d, v in zip(DIMENSIONS, keep, strict=True)}
        dense = {t: float(rng.uniform(0.4, 0.9)) for t in TASKS}
        tasks = {t: dense[t] * retention[t.split("_")[1]] for t in TASKS}
        metrics = weights @ metric_base * (1 + rng.normal(0, 0.02, len(METRICS)))
        records.append(
            {
                "trial_id": f"{len(records):08x}",
                "sweep": "bench",
                "phase": phase,
                "status": "ok" if rng.random() > 0.01 else "error",
                "error": None,
                "model": "raysweep-toy",
                "method": method,
                "structure": structure,
                "sparsity": sparsity,
                "achieved_sparsity": sparsity,
                "mix": mix,
                "mix_name": mix_name,
                "n_samples": 64,
                "seqlen": 128,
                "seed": seed_,
                "calib_metrics": dict(zip(METRICS, map(float, metrics), strict=True)),
                "task_scores": tasks,
                "dense_task_scores": dense,
                "dimension_scores": {d: float(retention[d] * 0.7) for d in DIMENSIONS},
                "dense_dimension_scores": dict.fromkeys(DIMENSIONS, 0.7),
                "retention": retention,
                "retention_above_chance": {d: v * 0.9 for d, v in retention.items()},
                "total_retention": float(np.mean(list(retention.values()))),
                "worst_retention": float(min(retention.values())),
                "timings": {"calibrate_s": 1.0, "prune_s": 2.0, "eval_s": 3.0, "total_s": 6.0},
                "peak_memory_bytes": 123456789,
                "host": "node-1",
                "node_id": "abc",
                "device": "cpu",
                "dense_cache_key": "k",
                "versions": {"raysweep": "0.1.0", "torch": "2.13.0"},
                "attempts": 1,
                "started_at": "2026-01-01T00:00:00",
                "finished_at": "2026-01-01T00:00:06",
                "config": {"pruning": {"method": method, "sparsity": sparsity}, "mix": mix},
            }
        )

    uniform = {s: 1 / len(SOURCES) for s in SOURCES}
    for group in groups:
        for seed_ in range(10):
            for source in SOURCES:
                add(group, {source: 1.0}, source, "grid", seed_)
            add(group, uniform, "uniform", "grid", seed_)
    k = 0
    while len(records) < n:
        group = groups[k % len(groups)]
        if k < 2 * len(groups):
            add(group, {SOURCES[0]: 0.4, SOURCES[1]: 0.6}, "best", "confirm", k // len(groups))
        else:
            weights = rng.dirichlet(np.ones(len(SOURCES)))
            mix = {s: float(w) for s, w in zip(SOURCES, weights, strict=True)}
            add(group, mix, f"search-{k}", "search", 0)
        k += 1
    return records[:n]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, default=None, help="default: a temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    run_dir = args.dir or Path(tempfile.mkdtemp(prefix="analysis-bench-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "records.jsonl"
    started = time.perf_counter()
    with open(path, "w") as handle:
        for record in synthetic_records(args.records):
            handle.write(json.dumps(record) + "\n")
    print(f"wrote {args.records} records ({path.stat().st_size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.1f} s to {path}")  # fmt: skip
    command = [sys.executable, "-m", "analysis", str(run_dir)]
    env = os.environ | {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the command and its figure workers: a figure that machine load can't inflate.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        print(done.stdout, done.stderr, sep="\n")
        return done.returncode
    print(done.stdout.splitlines()[0])
    print(f"python -m analysis on {args.records} records: {elapsed:.1f} s wall, {cpu:.1f} s CPU "
          f"(target <= 30 s wall on 2 cores; {os.cpu_count()} CPUs visible, load average "
          f"{load:.1f} at start)")  # fmt: skip
    if not args.keep and args.dir is None:
        import shutil

        shutil.rmtree(run_dir)
    return 0 if elapsed <= 30 else 1


if __name__ == "__main__":
    sys.exit(main())
