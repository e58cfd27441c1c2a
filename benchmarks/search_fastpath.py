"""Search fast path vs full trial on the toy world.

For a handful of seeded random mixes of the four capability-aligned toy sources, each mix is run
twice in one process: as a search trial (``mode=oneshot``: per-source statistics cached on disk,
the search's smaller item limit) and as a full sequential trial (the sweep's full suite). Prints
the wall-time ratio and the correlation between fast-path and confirmed worst-case retention.

    python benchmarks/search_fastpath.py [--mixes 8] [--method sparsegpt] [--sparsity 0.7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from scipy.stats import pearsonr, spearmanr

from raysweep.config import EvaluationConfig, ModelConfig, TrialConfig
from raysweep.pipeline import dense_baseline, run_trial

SOURCES = ("toy_general_prose", "toy_commonsense_stories", "toy_code_programs", "toy_math_word")


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--mixes", type=int, default=8)
    p.add_argument("--method", default="sparsegpt")
    p.add_argument("--sparsity", type=float, default=0.7)
    p.add_argument("--full-limit", type=int, default=200)
    p.add_argument("--search-limit", type=int, default=120)
    args = p.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(0)
    mixes = []
    for _ in range(args.mixes):
        raw = [-__import__("math").log(rng.random() or 1e-9) for _ in SOURCES]
        mixes.append({s: w / sum(raw) for s, w in zip(SOURCES, raw, strict=True)})
    model = ModelConfig(path="raysweep-toy", device="cpu")

    def point(mix: dict[str, float], mode: str, limit: int) -> TrialConfig:
        ev = EvaluationConfig(suite="toy", limit=limit, batch_size=32, max_length=256)
        return TrialConfig(model=model, mix=mix, mix_name="m", n_samples=32, seqlen=128,
                           method=args.method, sparsity=args.sparsity, mode=mode, evaluation=ev)  # fmt: skip

    dense_full = dense_baseline(point(mixes[0], "sequential", args.full_limit))
    dense_fast = dense_baseline(point(mixes[0], "oneshot", args.search_limit))
    # warm-up: model load, lm-eval task index, per-source statistics
    run_trial(point(mixes[0], "oneshot", args.search_limit), dense_fast)
    run_trial(point(mixes[0], "sequential", args.full_limit), dense_full)
    fast_t, full_t, fast_w, full_w = [], [], [], []
    for i, mix in enumerate(mixes):
        t0 = time.perf_counter()
        a = run_trial(point(mix, "oneshot", args.search_limit), dense_fast)
        fast_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = run_trial(point(mix, "sequential", args.full_limit), dense_full)
        full_t.append(time.perf_counter() - t0)
        fast_w.append(a.worst_retention)
        full_w.append(b.worst_retention)
        print(
            f"mix {i}: fast {fast_t[-1]:5.2f}s worst {a.worst_retention:.3f} | "
            f"full {full_t[-1]:5.2f}s worst {b.worst_retention:.3f}",
            flush=True,
        )
    ratio = statistics.mean(fast_t) / statistics.mean(full_t)
    print(
        f"\nsearch trial (oneshot stats, limit {args.search_limit}): {statistics.mean(fast_t):.2f} s mean"
    )
    print(
        f"full sequential trial (limit {args.full_limit}):          {statistics.mean(full_t):.2f} s mean"
    )
    print(f"ratio fast/full: {ratio:.2f}x (target <= 0.3x)")
    print(
        f"worst-retention agreement over {len(mixes)} mixes: Pearson r = "
        f"{pearsonr(fast_w, full_w)[0]:+.2f}, Spearman rho = {spearmanr(fast_w, full_w)[0]:+.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
