"""GPU check of the pruning core at Llama-3.1-8B shape: Wanda and SparseGPT, sequential and one-shot.

Workload: a random Llama with the shape of Llama-3.1-8B (hidden 4096, FFN 14336, 32 layers,
32 heads, 8 KV heads, vocabulary 128256) built in bf16 directly on the device, 128 x 2048 random
calibration token ids, 50 % unstructured sparsity. Each run re-initialises the same dense weights
(a seeded in-place normal_ on the device, no second copy of the model in memory) and calls the
public ``raysweep.pruning.prune_model``. Targets on one H200: Wanda <= 1 min, SparseGPT <= 5 min
(``prune_model``'s total; with ``--layers N`` they scale by N/32), peak device allocation
<= 40 GiB.

Before the prunes, an evaluation part measures the two rates that ``benchmarks/eval_projection.py``
turns into the study suite's cost: batched log-likelihood forwards (16 x 600 tokens, MMLU's
5-shot length) in tokens per second, and greedy generation with a KV cache (16 sequences, 256
prompt tokens, 200 forced new tokens) in seconds per decode step. ``--no-eval`` skips it.

Needs only torch and transformers (and safetensors, which transformers brings): it imports
``raysweep.pruning`` from this checkout, without installing raysweep and without pydantic, Ray,
datasets, lm-eval or optuna.

    bash benchmarks/gpu_check.sh                  # one H200: JSON in $OUT/gpu_check.json
    python benchmarks/gpu_check.py --tiny --json /tmp/gpu_check.json   # any CPU, seconds

Writes the JSON after every run (a run cut off by a timeout leaves the finished ones); exit
status 0 when every run passes, 1 when one fails or was skipped for time (``--budget-s``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, not an install

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, LlamaConfig  # noqa: E402

from raysweep.pruning import prune_model  # noqa: E402

GIB = 2**30
FULL_LAYERS = 32
SHAPE_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": FULL_LAYERS,
            "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256}  # fmt: skip
SHAPE_TINY = {"hidden_size": 64, "intermediate_size": 224, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024}  # fmt: skip
RUNS = (("wanda", "sequential"), ("wanda", "oneshot"),
        ("sparsegpt", "sequential"), ("sparsegpt", "oneshot"))  # fmt: skip
TARGET_SECONDS = {"wanda": 60.0, "sparsegpt": 300.0}  # at 32 layers
TARGET_PEAK_BYTES = 40 * GIB
INIT_STD = 0.02


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--tiny",
        action="store_true",
        help="a tiny shape (hidden 64, 2 layers, 8 x 64 tokens) to try it on a CPU",
    )
    p.add_argument("--layers", type=int, help="decoder layers (default: 32, tiny: 2)")
    p.add_argument("--samples", type=int, help="calibration windows (default: 128, tiny: 8)")
    p.add_argument("--seqlen", type=int, help="tokens per window (default: 2048, tiny: 64)")
    p.add_argument("--sparsity", type=float, default=0.5)
    p.add_argument("--device", help="default: cuda when available, else cpu")
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    p.add_argument(
        "--runs",
        default=",".join(f"{m}:{o}" for m, o in RUNS),
        help="comma-separated method:mode pairs, in order",
    )
    p.add_argument(
        "--budget-s",
        type=float,
        default=500.0,
        help="skip a run that would end past this many seconds since the start",
    )
    p.add_argument("--json", type=Path, help="output JSON (default: $OUT/gpu_check.json)")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation rates")
    p.add_argument("--seed", type=int, default=0)
    return p


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_model(shape: dict[str, int], seqlen: int, device: torch.device, dtype: torch.dtype):
    """The random Llama, allocated on ``device`` in ``dtype`` (no CPU copy of the weights)."""
    config = LlamaConfig(**shape, max_position_embeddings=max(seqlen, 2048), use_cache=False)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


@torch.no_grad()
def initialise(model: torch.nn.Module, seed: int, device: torch.device) -> None:
    """The same dense weights on every call: seeded normal_ in place; norm scales 1."""
    generator = torch.Generator(device=device).manual_seed(seed)
    for _, param in sorted(model.named_parameters(), key=lambda item: item[0]):
        if param.dim() == 1:
            param.fill_(1.0)
        else:
            param.normal_(0.0, INIT_STD, generator=generator)
    _sync(device)


@torch.no_grad()
def fingerprint(model: torch.nn.Module) -> float:
    """A checksum of one decoder layer's down projection (re-initialisation restores it)."""
    layer = model.model.layers[0]
    return float(layer.mlp.down_proj.weight.float().abs().sum())


def run_one(
    model, calibration, method: str, mode: str, sparsity: float, device: torch.device, layers: int
) -> dict[str, Any]:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    report = prune_model(model, calibration, method, sparsity, mode=mode, device=device)
    _sync(device)
    wall = time.perf_counter() - start
    cuda = device.type == "cuda"
    max_allocated = int(torch.cuda.max_memory_allocated(device)) if cuda else None
    device_peak = int(report.peak_memory_bytes["device"]) if cuda else None  # None: no CUDA
    seconds_target = TARGET_SECONDS[method] * layers / FULL_LAYERS
    peak = max(device_peak or 0, max_allocated or 0) if cuda else None
    checks = {
        "time": report.timings["total"] <= seconds_target,
        "peak": peak is None or peak <= TARGET_PEAK_BYTES,
        "sparsity": abs(report.achieved_sparsity - sparsity) <= 0.005,
    }
    return {
        "method": method,
        "mode": mode,
        "verdict": "PASS" if all(checks.values()) else "FAIL",
        "checks": checks,
        "timings_s": {k: round(v, 3) for k, v in report.timings.items()},
        "wall_s": round(wall, 3),
        "target_s": seconds_target,
        "peak_device_bytes": device_peak,
        "max_memory_allocated_bytes": max_allocated,
        "peak_host_bytes": report.peak_memory_bytes.get("host"),
        "target_peak_bytes": TARGET_PEAK_BYTES,
        "achieved_sparsity": report.achieved_sparsity,
        "num_tokens": report.num_tokens,
    }


EVAL_8B = {"batch": 16, "loglik_tokens": 600, "loglik_batches": 5, "prompt": 256, "steps": 200}
EVAL_TINY = {"batch": 4, "loglik_tokens": 32, "loglik_batches": 2, "prompt": 16, "steps": 8}


@torch.no_grad()
def evaluation_rates(model, shape: dict[str, int], device: torch.device, sizes: dict[str, int],
                     seed: int) -> dict[str, Any]:  # fmt: skip
    """Log-likelihood forwards in tokens per second and greedy decode steps in seconds, each
    after one untimed warm-up (allocator and kernel selection)."""
    generator = torch.Generator().manual_seed(seed)
    batch = sizes["batch"]

    def ids(length: int) -> torch.Tensor:
        tokens = torch.randint(0, shape["vocab_size"], (batch, length), generator=generator)
        return tokens.to(device)

    forward_ids = ids(sizes["loglik_tokens"])
    model(input_ids=forward_ids, use_cache=False)
    _sync(device)
    start = time.perf_counter()
    for _ in range(sizes["loglik_batches"]):
        model(input_ids=forward_ids, use_cache=False)
    _sync(device)
    forward_s = time.perf_counter() - start
    tokens = sizes["loglik_batches"] * batch * sizes["loglik_tokens"]

    prompt = ids(sizes["prompt"])
    steps = sizes["steps"]
    options = {"do_sample": False, "use_cache": True, "pad_token_id": 0, "eos_token_id": None}
    model.generate(prompt, max_new_tokens=2, min_new_tokens=2, **options)  # warm-up
    _sync(device)
    start = time.perf_counter()
    out = model.generate(prompt, max_new_tokens=steps, min_new_tokens=steps, **options)
    _sync(device)
    generate_s = time.perf_counter() - start
    prefill_s = batch * sizes["prompt"] / (tokens / forward_s)  # the prompt's forward, at the
    step_s = max(generate_s - prefill_s, 0.0) / steps  # log-likelihood rate
    return {
        "loglik": {"batch_size": batch, "tokens": tokens, "seconds": round(forward_s, 3),
                   "tokens_per_s": round(tokens / forward_s, 1)},
        "generation": {"batch_size": batch, "prompt_tokens": sizes["prompt"], "steps": steps,
                       "generated": int(out.shape[1] - sizes["prompt"]),
                       "seconds": round(generate_s, 3), "step_s": round(step_s, 5)},
    }  # fmt: skip


def _write(path: Path | None, result: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, path)


def _line(run: dict[str, Any]) -> str:
    if run["verdict"] == "SKIPPED":
        return f"{run['method']:<10} {run['mode']:<11} SKIPPED ({run['reason']})"
    t = run["timings_s"]
    phases = " ".join(f"{k}={v:.1f}s" for k, v in t.items() if k != "total")
    peak = run["max_memory_allocated_bytes"] or run["peak_device_bytes"]
    peak_text = f"{peak / GIB:.1f} GiB" if peak else "n/a (no CUDA)"
    return (
        f"{run['method']:<10} {run['mode']:<11} {run['verdict']:<4} total {t['total']:.1f}s "
        f"(target {run['target_s']:.0f}s) peak {peak_text} sparsity "
        f"{run['achieved_sparsity']:.4f}  [{phases}]"
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runs = [tuple(item.split(":", 1)) for item in args.runs.split(",") if item]
    unknown = [":".join(r) for r in runs if r not in RUNS]
    if unknown:
        parser.error(f"--runs: unknown {unknown}; choose from {[':'.join(r) for r in RUNS]}")
    started = time.perf_counter()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype)
    shape = dict(SHAPE_TINY if args.tiny else SHAPE_8B)
    shape["num_hidden_layers"] = args.layers or shape["num_hidden_layers"]
    layers = shape["num_hidden_layers"]
    samples = args.samples or (8 if args.tiny else 128)
    seqlen = args.seqlen or (64 if args.tiny else 2048)
    out = args.json or (
        Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else None
    )

    t0 = time.perf_counter()
    model = build_model(shape, seqlen, device, dtype)
    initialise(model, args.seed, device)
    dense_print = fingerprint(model)
    build_s = time.perf_counter() - t0
    calibration = torch.randint(
        0,
        shape["vocab_size"],
        (samples, seqlen),
        generator=torch.Generator().manual_seed(args.seed),
    )
    result: dict[str, Any] = {
        "shape": {**shape, "samples": samples, "seqlen": seqlen, "dtype": args.dtype},
        "full_8b_shape": not args.tiny and layers == FULL_LAYERS,
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine()
        ),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "model_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "build_s": round(build_s, 3),
        "sparsity": args.sparsity,
        "runs": [],
    }
    print(
        f"[gpu_check] {result['parameters'] / 1e6:,.1f} M parameters, {layers} layers, "
        f"{samples} x {seqlen} tokens on {device} ({result['device_name']}); "
        f"built in {build_s:.1f}s",
        flush=True,
    )
    if not args.no_eval:
        result["evaluation"] = evaluation_rates(
            model, shape, device, EVAL_TINY if args.tiny else EVAL_8B, args.seed
        )
        rates = result["evaluation"]
        print(f"[gpu_check] evaluation: log-likelihood {rates['loglik']['tokens_per_s']:,.0f} "
              f"tokens/s, generation {rates['generation']['step_s'] * 1000:.1f} ms per step of "
              f"{rates['generation']['batch_size']} sequences", flush=True)  # fmt: skip
        _write(out, result)
    walls: dict[str, float] = {}
    for index, (method, mode) in enumerate(runs):
        estimate = walls.get(method, TARGET_SECONDS[method] * layers / FULL_LAYERS)
        elapsed = time.perf_counter() - started
        if elapsed + estimate > args.budget_s:
            run = {
                "method": method,
                "mode": mode,
                "verdict": "SKIPPED",
                "reason": f"{elapsed:.0f}s elapsed + about {estimate:.0f}s > budget {args.budget_s:.0f}s",
            }
        else:
            if index > 0:
                initialise(model, args.seed, device)
            restored = fingerprint(model) == dense_print
            run = run_one(model, calibration, method, mode, args.sparsity, device, layers)
            run["restored_dense"] = restored
            if not restored:
                run["verdict"] = "FAIL"
            walls[method] = run["wall_s"]
        result["runs"].append(run)
        print("[gpu_check] " + _line(run), flush=True)
        result["wall_s"] = round(time.perf_counter() - started, 3)
        _write(out, result)
    verdicts = {r["verdict"] for r in result["runs"]}
    result["verdict"] = (
        "FAIL" if "FAIL" in verdicts else ("PASS" if verdicts == {"PASS"} else "INCOMPLETE")
    )
    result["wall_s"] = round(time.perf_counter() - started, 3)
    _write(out, result)
    print(
        f"[gpu_check] {result['verdict']} in {result['wall_s']:.0f}s"
        + (f"; JSON: {out}" if out else ""),
        flush=True,
    )
    return 0 if result["verdict"] == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
