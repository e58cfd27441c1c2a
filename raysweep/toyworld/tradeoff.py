"""Measure the toy world's calibration trade-off: retention per method, calibration and dimension.

``python -m raysweep.toyworld.tradeoff`` prunes the toy model with raysweep's own pruning
(``raysweep.pruning.prune_model``) once per (method, calibration, seed), calibrated on each
domain's aligned source and on the uniform mix of the 20 toy sources, built exactly as a sweep
builds them (``build_calibration_set``); magnitude pruning, which reads no calibration data, runs
once. Every item of every toy task is scored through lm-eval as a trial scores it, and the command prints the
retention table (mean and seed range) and checks the trade-offs the toy world is built to show.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from raysweep.names import DIMENSIONS, METHODS, UNIFORM_MIX
from raysweep.planning import uniform_mix
from raysweep.toyworld.sources import TOY_SOURCES
from raysweep.toyworld.tasks import TOY_TASKS, task_items

# torch, transformers, calibration, evaluation, pruning and the toy model's training are
# imported where they run: --help answers at once.

# The source of each domain whose text is that domain's plain training-style text.
ALIGNED = {
    "general": "toy_general_prose",
    "commonsense": "toy_commonsense_stories",
    "code": "toy_code_programs",
    "math": "toy_math_word",
}
UNIFORM = UNIFORM_MIX
CALIBRATED_METHODS = tuple(m for m in METHODS if m != "magnitude")
# Calibration windows per seed: the field's standard 128 sequences. With 32, one calibration draw
# can move SparseGPT's General retention under prose by 0.2 (0.60-0.80 over three seeds on the
# committed model).
N_SAMPLES = 128


def uniform_weights() -> dict[str, float]:
    """The default sweep's uniform mix of all toy sources (equal share per dimension)."""
    from raysweep.calibration import get_source

    names = [s.name for s in TOY_SOURCES]
    return uniform_mix(names, {n: get_source(n).dimension for n in names})


def dimension_scores(scores: Mapping[str, float]) -> dict[str, float]:
    """Task accuracies averaged into the four dimensions."""
    out = {}
    for dim in DIMENSIONS:
        names = [t.name for t in TOY_TASKS if t.dimension == dim]
        out[dim] = sum(scores[n] for n in names) / len(names)
    return out


def task_scores(model, tokenizer) -> dict[str, float]:
    """Every toy task's ``acc`` on all its items, scored as a sweep's trial scores them."""
    from raysweep.evaluation import evaluate_capabilities

    return evaluate_capabilities(model, tokenizer, "toy", batch_size=32, max_length=256).task_scores


@dataclass(frozen=True)
class Claim:
    """One trade-off the toy world must show: ``better`` above ``worse`` on ``dimension``'s
    retention by at least ``margin`` on average, every seed of ``better`` above every seed of
    ``worse``."""

    method: str
    dimension: str
    better: str
    worse: str
    margin: float


def claims(methods: Sequence[str]) -> list[Claim]:
    out = []
    for m in (m for m in methods if m in CALIBRATED_METHODS):
        out += [
            Claim(m, "code", ALIGNED["code"], ALIGNED["general"], 0.15),
            Claim(m, "math", ALIGNED["math"], ALIGNED["general"], 0.15),
            Claim(m, "general", ALIGNED["general"], ALIGNED["math"], 0.10),
        ]
    return out


def check_claim(table: Mapping, claim: Claim) -> dict[str, object]:
    better = table[claim.method][claim.better][claim.dimension]
    worse = table[claim.method][claim.worse][claim.dimension]
    gap = sum(better) / len(better) - sum(worse) / len(worse)
    disjoint = min(better) > max(worse)
    return {**claim.__dict__, "gap": round(gap, 4), "disjoint": disjoint,
            "holds": gap >= claim.margin and disjoint}  # fmt: skip


def magnitude_check(table: Mapping, margin: float = 0.05) -> list[dict[str, object]]:
    """Magnitude's total retention at least ``margin`` below each calibrated method's uniform mix."""
    if "magnitude" not in table:
        return []
    mag = _total(table["magnitude"]["none"])[0]
    out = []
    for m in CALIBRATED_METHODS:
        if m in table and UNIFORM in table[m]:
            totals = _total(table[m][UNIFORM])
            gap = sum(totals) / len(totals) - mag
            out.append({"method": m, "uniform_total": round(sum(totals) / len(totals), 4),
                        "magnitude_total": round(mag, 4), "gap": round(gap, 4),
                        "holds": gap >= margin})  # fmt: skip
    return out


def shortcut_check(table: Mapping, dense: Mapping[str, float], n_items: Mapping[str, int]):
    """Code and math retention under general-aligned calibration, against 100 % minus two standard
    errors: a task whose retention stays near 100 % whatever pruning removes has a shortcut."""
    out = []
    for m in CALIBRATED_METHODS:
        if ALIGNED["general"] not in table.get(m, {}):
            continue
        for d in ("code", "math"):
            ret = table[m][ALIGNED["general"]][d]
            mean = sum(ret) / len(ret)
            acc = mean * dense[d]
            # Binomial standard error of the pruned accuracy, over the seeds' pooled items.
            se = math.sqrt(acc * (1 - acc) / (n_items[d] * len(ret))) / dense[d]
            out.append({"method": m, "dimension": d, "retention": round(mean, 4),
                        "se": round(se, 4), "holds": mean < 1 - 2 * se})  # fmt: skip
    return out


def _total(by_dim: Mapping[str, list[float]]) -> list[float]:
    """Total retention (mean over dimensions) per seed."""
    n = len(next(iter(by_dim.values())))
    return [sum(by_dim[d][i] for d in DIMENSIONS) / len(DIMENSIONS) for i in range(n)]


def run(
    methods: Sequence[str],
    calibrations: Sequence[str],
    seeds: Sequence[int],
    sparsity: float,
    n_samples: int,
    seqlen: int,
    model_dir: Path | None = None,
) -> dict:
    """Retention table ``{method: {calibration: {dimension: [per seed]}}}`` plus the checks."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raysweep.calibration import build_calibration_set
    from raysweep.pruning import prune_model
    from raysweep.toyworld.train import ensure_toy_model

    torch.set_num_threads(1)
    model_dir = model_dir or ensure_toy_model()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    items = {t.name: task_items(t.name) for t in TOY_TASKS}
    dense = dimension_scores(task_scores(model, tokenizer))
    n_items = {
        d: sum(len(items[t.name]) for t in TOY_TASKS if t.dimension == d) for d in DIMENSIONS
    }
    print("dense accuracy", json.dumps({d: round(v, 4) for d, v in dense.items()}),
          "items", json.dumps(n_items), flush=True)  # fmt: skip
    state = {k: v.clone() for k, v in model.state_dict().items()}
    mixes = {UNIFORM: uniform_weights(), **{c: {c: 1.0} for c in calibrations if c != UNIFORM}}
    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    for method in methods:
        plan = [("none", None)] if method == "magnitude" else [(c, mixes[c]) for c in calibrations]
        table[method] = {}
        for name, mix in plan:
            table[method][name] = {d: [] for d in DIMENSIONS}
            for seed in seeds if mix is not None else seeds[:1]:
                started = time.perf_counter()
                model.load_state_dict(state)
                windows = (
                    None
                    if mix is None
                    else build_calibration_set(tokenizer, mix, n_samples, seqlen, seed)
                )
                prune_model(model, windows, method, sparsity)
                dims = dimension_scores(task_scores(model, tokenizer))
                for d in DIMENSIONS:
                    table[method][name][d].append(dims[d] / dense[d])
                print(f"{method:9s} {name:24s} seed {seed}  "
                      + "  ".join(f"{d} {dims[d] / dense[d]:.3f}" for d in DIMENSIONS)
                      + f"  ({time.perf_counter() - started:.1f}s)", flush=True)  # fmt: skip
    return {
        "sparsity": sparsity,
        "seeds": list(seeds),
        "n_samples": n_samples,
        "seqlen": seqlen,
        "dense": dense,
        "items": n_items,
        "retention": table,
        "claims": [check_claim(table, c) for c in claims(methods) if _has(table, c)],
        "magnitude": magnitude_check(table),
        "shortcuts": shortcut_check(table, dense, n_items),
    }


def _has(table: Mapping, claim: Claim) -> bool:
    return claim.better in table.get(claim.method, {}) and claim.worse in table[claim.method]


def format_table(result: dict) -> str:
    lines = [
        "| method | calibration | " + " | ".join(DIMENSIONS) + " | total |",
        "|---|---|" + "---|" * (len(DIMENSIONS) + 1),
    ]
    for method, rows in result["retention"].items():
        for name, dims in rows.items():
            cells = [_cell(dims[d]) for d in DIMENSIONS] + [_cell(_total(dims))]
            lines.append(f"| {method} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(values: list[float]) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.3f}"
    return f"{mean:.3f} [{min(values):.3f}, {max(values):.3f}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=["wanda", "sparsegpt", "magnitude"],
                        choices=METHODS)  # fmt: skip
    parser.add_argument("--calibrations", nargs="*", default=[*ALIGNED.values(), UNIFORM],
                        help=f"toy source names or {UNIFORM!r} (the default sweep's uniform mix)")  # fmt: skip
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--sparsity", type=float, default=0.7)
    parser.add_argument("--samples", type=int, default=N_SAMPLES, help="calibration windows")
    parser.add_argument("--seqlen", type=int, default=128)
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: toy)")
    parser.add_argument("--output", type=Path, default=None, help="write the full result as JSON")
    args = parser.parse_args(argv)
    known = {s.name for s in TOY_SOURCES} | {UNIFORM}
    unknown = sorted(set(args.calibrations) - known)
    if unknown:
        parser.error(
            f"unknown calibration {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    result = run(args.methods, args.calibrations, args.seeds, args.sparsity, args.samples,
                 args.seqlen, args.model)  # fmt: skip
    print(
        f"\nretention at {args.sparsity:.0%} unstructured (mean [min, max] over seeds {args.seeds})"
    )
    print(format_table(result))
    print("\ntrade-offs (gap of mean retention; seed ranges disjoint):")
    for row in result["claims"]:
        print(f"  {row['method']:9s} {row['dimension']:8s} {row['better']} over {row['worse']}: "
              f"{row['gap']:+.3f} (need +{row['margin']:.2f}, disjoint {row['disjoint']})"
              f" {'holds' if row['holds'] else 'FAILS'}")  # fmt: skip
    for row in result["magnitude"]:
        print(f"  {row['method']} uniform total {row['uniform_total']:.3f} vs magnitude "
              f"{row['magnitude_total']:.3f}: {row['gap']:+.3f} (need +0.05) "
              f"{'holds' if row['holds'] else 'FAILS'}")  # fmt: skip
    for row in result["shortcuts"]:
        print(f"  {row['method']} {row['dimension']} retention under {ALIGNED['general']}: "
              f"{row['retention']:.3f} (below 1 - 2 x {row['se']:.3f}: {row['holds']})")  # fmt: skip
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
