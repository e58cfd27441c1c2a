"""Cost of self-generated calibration sets (self_cal, sgs, igsp).

Part 1 (measured): wall time to build one calibration set on the toy model for each generator and
size, split into sampling and perplexity scoring, uncached.

Part 2 (ESTIMATE, not measured): the expected time for 128 x 2048 on an 8B Llama (Llama-3.1-8B
shapes) on one GPU, from stated throughput assumptions; every number is printed with its
arithmetic and can be changed by flags.

    .venv/bin/python benchmarks/selfgen_cost.py                       # 32x128 and 128x128
    .venv/bin/python benchmarks/selfgen_cost.py --sizes 32x128 --generators igsp
    .venv/bin/python benchmarks/selfgen_cost.py --estimate-only --step-overhead-ms 30
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from raysweep.calibration import SOURCES
from raysweep.calibration.generators import IGSP, SGS, SelfCal
from raysweep.calibration.generators.decoding import window_perplexities

GENERATORS = ("self_cal", "sgs", "igsp")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        n, seqlen = part.lower().split("x")
        sizes.append((int(n), int(seqlen)))
    return sizes


def measure(generators: list[str], sizes: list[tuple[int, int]], seed: int) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raysweep.toyworld import ensure_toy_model

    path = ensure_toy_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"# Measured on the toy model ({params / 1e6:.2f}M parameters, {path})")
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), device cpu\n")
    header = (
        f"{'generator':<9} {'n x seqlen':>11} {'pool':>5} {'total_s':>8} {'sample_s':>9} "
        f"{'score_s':>8} {'sampled tok/s':>14}"
    )
    print(header)
    print("-" * len(header))
    for n, seqlen in sizes:
        for name in generators:
            gen = SOURCES[name].generator
            start = time.perf_counter()
            if isinstance(gen, SGS | IGSP):
                res = gen.build(model=model, tokenizer=tokenizer, count=n, seqlen=seqlen, seed=seed)
                pool = res.pool
            else:
                pool = gen(model=model, tokenizer=tokenizer, count=n, seqlen=seqlen, seed=seed)
            total = time.perf_counter() - start
            # Tokens sampled (not prompt): start token, SGS prefix or IGSP cue excluded.
            if isinstance(gen, IGSP):
                cue_len = {
                    c: len(tokenizer(c, add_special_tokens=False)["input_ids"])
                    for c in set(res.cues)
                }
                sampled = sum(seqlen - 1 - cue_len[c] for c in res.cues)
            elif isinstance(gen, SGS):
                sampled = len(pool) * (seqlen - 1 - gen.prefix_tokens)
            else:
                sampled = len(pool) * (seqlen - 1)
            # Scoring is re-run alone to split the total (self_cal does not score).
            score = 0.0
            if isinstance(gen, SGS | IGSP):
                t0 = time.perf_counter()
                window_perplexities(model, pool, gen.score_batch_size)
                score = time.perf_counter() - t0
            sample_s = max(total - score, 1e-9)
            print(
                f"{name:<9} {f'{n}x{seqlen}':>11} {len(pool):>5} {total:>8.2f} {sample_s:>9.2f} "
                f"{score:>8.2f} {sampled / sample_s:>14.0f}"
            )
    print()


def estimate(args: argparse.Namespace) -> None:
    n, seqlen = args.estimate_n, args.estimate_seqlen
    p = args.params
    weights_gb = p * args.bytes_per_param / 1e9
    kv_per_token = 2 * args.layers * args.kv_heads * args.head_dim * args.bytes_per_param
    bw = args.hbm_tbs * 1e12 * args.bw_efficiency
    flops = args.peak_tflops * 1e12 * args.mfu
    print(f"# ESTIMATE (not measured): {n} x {seqlen} on an 8B Llama, one GPU")
    print("# Assumptions (flags change them):")
    print(
        f"#   parameters {p:.3g}, {args.bytes_per_param} bytes each -> weights {weights_gb:.2f} GB"
    )
    print(
        f"#   KV cache per token = 2 x {args.layers} layers x {args.kv_heads} KV heads x "
        f"{args.head_dim} x {args.bytes_per_param} B = {kv_per_token / 1024:.0f} KiB"
    )
    print(
        f"#   HBM {args.hbm_tbs} TB/s x {args.bw_efficiency} efficiency; "
        f"{args.peak_tflops} TFLOP/s bf16 peak x {args.mfu} MFU for scoring"
    )
    print(
        f"#   per decode step at least {args.step_overhead_ms} ms of framework overhead "
        "(transformers eager forward with a KV cache, Python sampling loop)"
    )
    print(f"#   generation batch {args.batch_size}\n")
    rows = {
        "self_cal": (n, 1, False),
        "sgs": (SGS().pool_size(n), 1 + SGS().prefix_tokens, True),
        "igsp": (math.ceil(IGSP().pool_factor * n), 3, True),
    }
    total_all = {}
    for name, (pool, prompt, scored) in rows.items():
        steps = seqlen - prompt
        batches = math.ceil(pool / args.batch_size)
        b = min(args.batch_size, pool)
        # Memory time of one step: all weights plus the batch's KV cache at the mean context.
        mem_bytes = weights_gb * 1e9 + b * (seqlen / 2) * kv_per_token
        mem_ms = mem_bytes / bw * 1e3
        step_ms = max(mem_ms, args.step_overhead_ms)
        gen_s = batches * steps * step_ms / 1e3
        tokens = pool * seqlen
        # 2 FLOPs per parameter per token, plus attention 4 * layers * hidden * mean context.
        score_flops = tokens * (2 * p + 4 * args.layers * args.hidden * seqlen / 2)
        score_s = score_flops / flops if scored else 0.0
        total_all[name] = gen_s + score_s
        print(
            f"{name}: pool {pool} windows, {steps} sampled tokens each, {batches} batch(es) of <= {b}"
        )
        print(
            f"  step = max(memory {mem_bytes / 1e9:.1f} GB / {bw / 1e12:.2f} TB/s = {mem_ms:.1f} ms, "
            f"overhead {args.step_overhead_ms} ms) = {step_ms:.1f} ms"
        )
        print(
            f"  sampling = {batches} x {steps} steps x {step_ms:.1f} ms = {gen_s:.0f} s"
            + (
                f"; scoring = {tokens} tokens x {score_flops / tokens / 1e9:.1f} GFLOP / "
                f"{flops / 1e12:.0f} TFLOP/s = {score_s:.1f} s"
                if scored
                else ""
            )
        )
        print(f"  total ~ {gen_s + score_s:.0f} s ({(gen_s + score_s) / 60:.1f} min)")
    print(
        "\n# Summary (estimate): "
        + ", ".join(f"{k} ~{v / 60:.1f} min" for k, v in total_all.items())
        + f" per calibration set at batch {args.batch_size}; cached afterwards, so once per "
        "(model, generator knobs, seed, n, seqlen) per node."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--sizes", default="32x128,128x128", help="n x seqlen list, e.g. 32x128,128x128"
    )
    ap.add_argument("--generators", default=",".join(GENERATORS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--estimate-only", action="store_true")
    est = ap.add_argument_group("8B estimate assumptions (Llama-3.1-8B shapes, H100 SXM 80GB)")
    est.add_argument("--estimate-n", type=int, default=128)
    est.add_argument("--estimate-seqlen", type=int, default=2048)
    est.add_argument("--params", type=float, default=8.03e9)
    est.add_argument("--layers", type=int, default=32)
    est.add_argument("--hidden", type=int, default=4096)
    est.add_argument("--kv-heads", type=int, default=8)
    est.add_argument("--head-dim", type=int, default=128)
    est.add_argument("--bytes-per-param", type=int, default=2)
    est.add_argument("--hbm-tbs", type=float, default=3.35)
    est.add_argument("--bw-efficiency", type=float, default=0.7)
    est.add_argument("--peak-tflops", type=float, default=989.0)
    est.add_argument("--mfu", type=float, default=0.4)
    est.add_argument("--step-overhead-ms", type=float, default=25.0)
    est.add_argument("--batch-size", type=int, default=SelfCal().batch_size)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not args.estimate_only:
        measure(args.generators.split(","), parse_sizes(args.sizes), args.seed)
    estimate(args)


if __name__ == "__main__":
    main()
