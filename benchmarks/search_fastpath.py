"""Search fast path vs full trial on the toy world.

For a handful of seeded random mixes of the four capability-aligned toy sources, each mix is run
four times in one process:

- ``fast``: a search trial (``mode=oneshot``: per-source statistics cached on disk, combined per
  mix; no calibration forward pass; no held-out perplexity) with the search's item limit (timed);
- ``fast@full``: the same pruned model evaluated with the full trial's item limit;
- ``full``: a full sequential trial with the sweep's suite and held-out perplexity (timed): what
  confirms a search's best;
- ``full seed 1``: the full trial again with calibration seed 1 (seed-to-seed noise: the ceiling
  any fast proxy can reach).

Prints the wall-time ratio fast/full with each trial's prune and eval phases, and the Pearson and
Spearman correlations of worst-case and per-dimension retention between the variants.

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
from raysweep.dense import dense_baseline
from raysweep.names import DIMENSIONS
from raysweep.pipeline import run_trial
from raysweep.search.space import weights_from_u

SOURCES = ("toy_general_prose", "toy_commonsense_stories", "toy_code_programs", "toy_math_word")


def _mixes(count: int) -> list[dict[str, float]]:
    """Seeded random mixes, drawn like the search's own proposals (``-log u`` normalised)."""
    rng = random.Random(0)
    return [weights_from_u({s: rng.random() for s in SOURCES}) for _ in range(count)]


def _corr(a: list[float], b: list[float]) -> str:
    return f"{pearsonr(a, b)[0]:+.2f} / {spearmanr(a, b)[0]:+.2f}"


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--mixes", type=int, default=8)
    p.add_argument("--method", default="sparsegpt")
    p.add_argument("--sparsity", type=float, default=0.7)
    p.add_argument("--full-limit", type=int, default=200)
    p.add_argument("--search-limit", type=int, default=60)
    args = p.parse_args()
    torch.set_num_threads(1)
    mixes = _mixes(args.mixes)
    model = ModelConfig(path="raysweep-toy", device="cpu")

    def point(mix: dict[str, float], mode: str, limit: int, seed: int = 0) -> TrialConfig:
        # Search trials skip held-out perplexity (search.perplexity: false), full trials record it.
        ev = EvaluationConfig(suite="toy", limit=limit, batch_size=32, max_length=256,
                              perplexity=mode == "sequential")  # fmt: skip
        return TrialConfig(model=model, mix=mix, mix_name="m", n_samples=32, seqlen=128, seed=seed,
                           method=args.method, sparsity=args.sparsity, mode=mode, evaluation=ev)  # fmt: skip

    variants = {
        "fast": ("oneshot", args.search_limit, 0),
        "fast@full": ("oneshot", args.full_limit, 0),
        "full": ("sequential", args.full_limit, 0),
        "full seed 1": ("sequential", args.full_limit, 1),
    }
    dense = {
        (mode, limit): dense_baseline(point(mixes[0], mode, limit))
        for mode, limit, _ in variants.values()
    }
    # warm-up: model load, lm-eval task index, per-source statistics of both seeds
    for mode, limit, seed in variants.values():
        run_trial(point(mixes[0], mode, limit, seed), dense[mode, limit])
    wall: dict[str, list[float]] = {k: [] for k in variants}
    phases: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    retention: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    for i, mix in enumerate(mixes):
        line = []
        for name, (mode, limit, seed) in variants.items():
            t0 = time.perf_counter()
            record = run_trial(point(mix, mode, limit, seed), dense[mode, limit])
            wall[name].append(time.perf_counter() - t0)
            phases[name].append(record.timings)
            retention[name].append({**record.retention, "worst": record.worst_retention})
            line.append(f"{name} {wall[name][-1]:4.2f}s worst {record.worst_retention:.3f}")
        print(f"mix {i}: " + " | ".join(line), flush=True)

    print(f"\n{args.method} {args.sparsity:g}, {len(mixes)} mixes of {', '.join(SOURCES)}")
    print(f"{'trial':<12} {'items/task':>10} {'wall s':>7} {'prune s':>8} {'eval s':>7}")
    for name, (_, limit, _) in variants.items():
        prune = statistics.mean(t["prune_s"] for t in phases[name])
        evals = statistics.mean(t["eval_s"] for t in phases[name])
        print(
            f"{name:<12} {limit:>10} {statistics.mean(wall[name]):>7.2f} {prune:>8.2f} {evals:>7.2f}"
        )
    full = statistics.mean(wall["full"])
    print(
        f"ratio fast/full: {statistics.mean(wall['fast']) / full:.2f}x (target <= 0.3x); "
        f"at the full item limit: {statistics.mean(wall['fast@full']) / full:.2f}x"
    )
    print("\nretention correlation, Pearson r / Spearman rho over the mixes")
    pairs = (
        ("fast", "full"),
        ("fast@full", "full"),
        ("fast", "fast@full"),
        ("full", "full seed 1"),
    )
    keys = ("worst", *DIMENSIONS)
    print(f"{'pair':<26}" + "".join(f"{k:>15}" for k in keys))
    for a, b in pairs:
        cells = [_corr([r[k] for r in retention[a]], [r[k] for r in retention[b]]) for k in keys]
        print(f"{a + ' vs ' + b:<26}" + "".join(f"{c:>15}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
