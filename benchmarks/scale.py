"""Scale benchmark: store sizes, peak memory and projected GPU time at Llama-3.1-8B width.

A ``LlamaForCausalLM`` with Llama-3.1-8B's shapes (hidden 4096, FFN 14336, 32 heads, 8 KV heads,
vocabulary 128256) cut to 2 decoder layers, bf16 on the CPU, random init; calibration ids drawn
at random (seeded), 4 x 256 tokens per source. It measures:

- statistics bytes per layer per source (Wanda diagonals, SparseGPT Hessians) from real stores,
  projected to 32 layers x 15 sources (disk per node);
- peak host memory above the loaded model (RSS sampled by ``track_peak_memory``) of a
  sequential Wanda prune, a statistics build, one-shot Wanda and SparseGPT prunes of a mix of 3
  and of 6 sources read from the stores, and calibration perplexity on 8 x 2048 windows;
- how many statistics builds 10 different mixes of 3 sources trigger, through the trial path
  (``raysweep.calibration_statistics``) on the toy model and toy sources;
- a projection of one 8B trial's pruning time on one H200 and of ``configs/study.yaml``'s sweep
  in GPU-hours, with its arithmetic.

The SparseGPT solve (Cholesky factorisations of 14336-wide Hessians: minutes per layer on two
cores) is the only slow part: the 3- and 6-source SparseGPT prunes replace it by a diagonal
saliency mask (same statistics reads, same stacking, no Cholesky), and the real solve runs once,
on decoder layer 0 of the 3-source mix (``--full-solve-layers 0`` skips it). The output says so.

    python benchmarks/scale.py [--json PATH] [--full-solve-layers 1] [--threads 2]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from raysweep.pruning import MixedStatistics, ensure_store, prune_model, stream_statistics
from raysweep.pruning import methods as methods_module  # the solve is looked up there
from raysweep.pruning.masks import select_mask
from raysweep.pruning.memory import current_rss_bytes, track_peak_memory

HIDDEN, FFN, HEADS, KV_HEADS, VOCAB = 4096, 14336, 32, 8, 128256
LAYERS = 2
N_SAMPLES, SEQLEN = 4, 256
PPL_WINDOWS, PPL_SEQLEN = 8, 2048
SPARSITY = 0.5
# The study (configs/study.yaml): 32 layers, 15 sources, 128 x 2048 calibration tokens.
STUDY_LAYERS, STUDY_SOURCES, STUDY_TOKENS, STUDY_SEQLEN = 32, 15, 128 * 2048, 2048
# Assumptions of the H200 projection.
H200_BF16_FLOPS = 989e12  # dense bf16 tensor-core peak
H200_FP32_FLOPS = 67e12  # fp32 (CUDA cores): Hessians and the solve run in fp32
MATMUL_UTILISATION = 0.4
SOLVE_UTILISATION = 0.3
LAUNCH_S = 5e-6  # per kernel launch; the solve launches ~6 kernels per weight column
H200_HBM_BPS = 4.8e12
MEMORY_UTILISATION = 0.5
MASK_PASSES = 10  # mask selection: scores, sort/top-k and masking, ~10 passes over fp32 scores
DISK_READ_BPS = 3e9  # local NVMe
DISK_WRITE_BPS = 2e9
GIB = 2**30
MIB = 2**20

_libc = ctypes.CDLL("libc.so.6")


def _trim() -> None:
    """Return freed heap to the OS, so that RSS baselines mean what they say."""
    gc.collect()
    _libc.malloc_trim(0)


def measure(fn: Callable[[], Any]) -> tuple[Any, float, int]:
    """(result, seconds, peak RSS above the RSS just before) of ``fn()``."""
    _trim()
    base = current_rss_bytes()
    start = time.perf_counter()
    with track_peak_memory(torch.device("cpu"), interval_s=0.005) as peak:
        result = fn()
    return result, time.perf_counter() - start, peak.host - base


def build_model() -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=8192,
        rope_theta=500000.0,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16).eval()
    model.config.use_cache = False
    return model


def random_ids(n: int, seqlen: int, seed: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, seqlen), generator=torch.Generator().manual_seed(seed))


def _diagonal_solve(
    weight: torch.Tensor, hessian: torch.Tensor, sparsity: float, nm: Any = None, **_: Any
) -> torch.Tensor:
    """Stand-in for the SparseGPT solve: mask the lowest ``w^2 * H_ii`` of each row, no update.

    Works in place on ``weight`` (which the caller writes back anyway), 1024 rows at a time, so
    that its own memory stays small beside the statistics being measured.
    """
    diagonal = torch.diagonal(hessian).reshape(1, -1)
    for start in range(0, weight.shape[0], 1024):
        rows = weight[start : start + 1024]
        scores = rows.float().square_().mul_(diagonal)
        rows.masked_fill_(select_mask(scores, sparsity, nm, per_row=True), 0.0)
        del scores
    return weight


class _FirstLayers:
    """A provider restricted to a model cut to its first layers (the full-solve run)."""

    def __init__(self, provider: MixedStatistics) -> None:
        self.provider = provider
        self.kind = provider.kind
        self.num_tokens = provider.num_tokens

    def layer(self, index: int) -> Any:
        return self.provider.layer(index)


def _linear_params_per_layer() -> int:
    return HIDDEN * (HIDDEN + 2 * KV_HEADS * (HIDDEN // HEADS) + HIDDEN) + 3 * HIDDEN * FFN


def _forward_flops(tokens: int, seqlen: int) -> float:
    """One decoder layer's forward: the linears plus causal attention (QK^T and AV)."""
    return 2.0 * _linear_params_per_layer() * tokens + 2.0 * tokens * seqlen * HIDDEN


# (rows stacked, in_features) of each SparseGPT solve of a layer: q/k/v, o, gate/up, down.
def _solves() -> list[tuple[int, int]]:
    head_dim = HIDDEN // HEADS
    return [
        (HIDDEN + 2 * KV_HEADS * head_dim, HIDDEN),
        (HIDDEN, HIDDEN),
        (2 * FFN, HIDDEN),
        (HIDDEN, FFN),
    ]


def _hessian_flops(tokens: int) -> float:
    widths = [HIDDEN, HIDDEN, HIDDEN, FFN]  # one Hessian per distinct input
    return sum(2.0 * tokens * n * n * 5 / 8 for n in widths)  # upper panels only


def _solve_flops() -> float:
    """Cholesky, inverse and Cholesky again (~5/3 n^3), lazy and in-block OBS updates."""
    return sum(5 / 3 * n**3 + rows * n * n + rows * n * 128 for rows, n in _solves())


def _solve_columns() -> int:
    return sum(n for _, n in _solves())


def _fmt_bytes(n: float) -> str:
    if n >= GIB:
        return f"{n / GIB:.2f} GiB"
    if n >= MIB:
        return f"{n / MIB:.2f} MiB"
    return f"{n / 1024:.1f} KiB"


def build_count_on_toy(cache: Path) -> dict[str, int]:
    """Statistics builds that 10 different Wanda mixes of 3 toy sources trigger (trial path)."""
    import os

    import raysweep.pruning as pruning
    from raysweep.calibration_statistics import mix_statistics
    from raysweep.config import TrialConfig
    from raysweep.models import load_dense

    os.environ["RAYSWEEP_CACHE_DIR"] = str(cache)
    sources = ("toy_general_prose", "toy_math_word", "toy_code_source")
    builds = [0]
    real = pruning.stream_statistics

    def counted(*args: Any, **kwargs: Any) -> None:
        builds[0] += 1
        real(*args, **kwargs)

    pruning.stream_statistics = counted  # type: ignore[assignment]
    try:
        gen = torch.Generator().manual_seed(0)
        loaded = None
        for _ in range(10):
            u = torch.rand(3, generator=gen) + 0.05
            mix = dict(zip(sources, (u / u.sum()).tolist(), strict=True))
            trial = TrialConfig(mix=mix, mix_name="m", n_samples=4, seqlen=64, mode="oneshot")
            if loaded is None:
                loaded = load_dense(trial.model, torch.device("cpu"), keep_pristine=False)
            mix_statistics(trial, loaded, {}, torch.device("cpu"))
    finally:
        pruning.stream_statistics = real  # type: ignore[assignment]
    stores = [
        p for p in (cache / "statistics").iterdir() if p.is_dir() and not p.name.startswith(".")
    ]
    return {"mixes": 10, "sources": 3, "builds": builds[0], "stores": len(stores)}


def study_points() -> dict[str, int]:
    from raysweep.config import load_config
    from raysweep.planning import search_sources, trial_points

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "study.yaml")
    points = trial_points(cfg)
    s = cfg.search
    out = {m: sum(1 for p in points if p.method == m) for m in ("wanda", "sparsegpt")}
    out["grid"] = len(points)
    if s is not None:
        groups = (
            len(s.methods or cfg.pruning.methods)
            * len(s.structures or cfg.pruning.structures)
            * len(s.sparsities or cfg.pruning.sparsities)
        )
        out["search_trials"] = s.n_trials * groups
        out["search_confirm"] = groups if s.confirm else 0
        out["search_sources"] = len(search_sources(cfg))
        out["search_method_sparsegpt"] = int("sparsegpt" in (s.methods or cfg.pruning.methods))
    return out


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--json", type=Path, default=None, help="write every figure here")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--full-solve-layers",
        type=int,
        default=1,
        choices=(0, 1),
        help="decoder layers pruned with the real SparseGPT solve (3-source mix)",
    )
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="stores go here (default: a temp dir)"
    )
    p.add_argument("--quick", action="store_true", help="a narrow model (smoke test of the script)")
    args = p.parse_args()
    if args.quick:
        global HIDDEN, FFN, HEADS, KV_HEADS, VOCAB, PPL_SEQLEN
        HIDDEN, FFN, HEADS, KV_HEADS, VOCAB, PPL_SEQLEN = 256, 512, 4, 2, 1024, 256
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    root = args.cache_dir or Path(tempfile.mkdtemp(prefix="raysweep-scale-"))
    out: dict[str, Any] = {
        "shape": {
            "hidden": HIDDEN,
            "ffn": FFN,
            "heads": HEADS,
            "kv_heads": KV_HEADS,
            "vocab": VOCAB,
            "layers": LAYERS,
            "dtype": "bfloat16",
        },
        "calibration": {"n_samples": N_SAMPLES, "seqlen": SEQLEN},
        "threads": args.threads,
    }
    try:
        model, t_init, _ = measure(build_model)
        print(
            f"model: Llama hidden {HIDDEN}, FFN {FFN}, vocab {VOCAB}, {LAYERS} layers, bf16, built in {t_init:.0f} s, "
            f"RSS {_fmt_bytes(current_rss_bytes())}"
        )
        calibs = [random_ids(N_SAMPLES, SEQLEN, 1000 + i) for i in range(6)]
        cpu = torch.device("cpu")

        # ---- statistics stores: 6 sources, Wanda diagonals and SparseGPT Hessians
        stores: dict[str, list[Any]] = {"sqnorm": [], "hessian": []}
        builds: dict[str, list[tuple[float, int]]] = {"sqnorm": [], "hessian": []}
        for kind, method in (("sqnorm", "wanda"), ("hessian", "sparsegpt")):
            for i, calib in enumerate(calibs):
                key = {
                    "benchmark": "scale",
                    "model": "llama-3.1-8b-wide-2l-random-seed0",
                    "source": f"random-{i}",
                    "kind": kind,
                    "n_samples": N_SAMPLES,
                    "seqlen": SEQLEN,
                }

                def build(sink: Any, calib: torch.Tensor = calib, method: str = method) -> None:
                    stream_statistics(model, calib, sink, cpu, method)

                (store, built), seconds, peak = measure(
                    lambda kind=kind, key=key, build=build: ensure_store(
                        root / f"{kind}-{key['source']}", key, kind, build, LAYERS
                    )
                )
                assert built
                stores[kind].append(store)
                builds[kind].append((seconds, peak))
            print(f"built 6 {kind} stores: {sum(s for s, _ in builds[kind]):.0f} s")
        bytes_layer = {
            k: max(s.layer_bytes(i) for s in v for i in range(LAYERS)) for k, v in stores.items()
        }
        hessian_layer = bytes_layer["hessian"]

        # ---- one-shot mixes from the stores
        mix3 = dict(zip(range(3), [0.5, 0.3, 0.2], strict=True))
        mix6 = dict(zip(range(6), [0.3, 0.25, 0.15, 0.12, 0.1, 0.08], strict=True))
        oneshot: dict[str, dict[str, float]] = {}

        def provider(kind: str, mix: dict[int, float]) -> MixedStatistics:
            return MixedStatistics(
                {stores[kind][i]: w for i, w in mix.items()},
                kind=kind,  # type: ignore[arg-type]
                num_tokens=N_SAMPLES * SEQLEN,
            )

        for label, mix in (("3", mix3), ("6", mix6)):
            _, seconds, peak = measure(
                lambda mix=mix: [provider("hessian", mix).layer(i) for i in range(1)]
            )
            oneshot[f"read_hessian_{label}"] = {"seconds": seconds, "peak": peak}
            for method, kind in (("wanda", "sqnorm"), ("sparsegpt", "hessian")):
                real = methods_module.sparsegpt_prune
                if method == "sparsegpt":
                    methods_module.sparsegpt_prune = _diagonal_solve  # type: ignore[assignment]
                try:
                    report, seconds, peak = measure(
                        lambda mix=mix, method=method, kind=kind: prune_model(
                            model,
                            None,
                            method,
                            SPARSITY,
                            mode="oneshot",
                            device=cpu,
                            statistics=provider(kind, mix),
                        )
                    )
                finally:
                    methods_module.sparsegpt_prune = real  # type: ignore[assignment]
                oneshot[f"{method}_{label}"] = {
                    "seconds": seconds,
                    "peak": peak,
                    "statistics_s": report.timings.get("statistics", 0.0),
                }
            print(f"one-shot mixes of {label} sources: done")

        full_solve: dict[str, float] = {}
        if args.full_solve_layers:
            layers = model.model.layers
            model.model.layers = nn.ModuleList([layers[0]])
            try:
                report, seconds, peak = measure(
                    lambda: prune_model(
                        model,
                        None,
                        "sparsegpt",
                        SPARSITY,
                        mode="oneshot",
                        device=cpu,
                        statistics=_FirstLayers(provider("hessian", mix3)),
                    )
                )
            finally:
                model.model.layers = layers
            full_solve = {
                "seconds": seconds,
                "peak": peak,
                "solve_s": report.timings.get("prune", seconds),
                "statistics_s": report.timings.get("statistics", 0.0),
            }
            print(f"full SparseGPT solve of layer 0: {seconds:.0f} s")

        # ---- sequential Wanda prune (the stores are no longer needed)
        report, seq_s, seq_peak = measure(
            lambda: prune_model(model, calibs[0], "wanda", SPARSITY, device=cpu)
        )
        seq_per_layer = (seq_s - report.timings.get("capture", 0.0)) / LAYERS
        seq_forward = (
            report.timings.get("statistics", 0.0) + report.timings.get("propagate", 0.0)
        ) / LAYERS
        seq_mask = report.timings.get("prune", 0.0) / LAYERS

        # ---- calibration perplexity on 8 x 2048 windows
        from raysweep.calibration.metrics import perplexity

        ppl_ids = random_ids(PPL_WINDOWS, PPL_SEQLEN, 7)
        ppl, ppl_s, ppl_peak = measure(lambda: perplexity(model, ppl_ids))
        model = None  # the toy model comes next: free this one first
        _trim()

        # ---- builds triggered by 10 mixes of 3 sources, through the trial path (toy model)
        count = build_count_on_toy(root / "toy")
        study = study_points()
    finally:
        if args.cache_dir is None:
            shutil.rmtree(root, ignore_errors=True)

    # ---- projections
    wanda_layer, hessian_layer = bytes_layer["sqnorm"], bytes_layer["hessian"]
    per_node = {k: v * STUDY_LAYERS * STUDY_SOURCES for k, v in bytes_layer.items()}
    bench_tokens = N_SAMPLES * SEQLEN
    cpu_flops_layer = 2 * _forward_flops(bench_tokens, SEQLEN)  # statistics pass + propagation
    cpu_rate = cpu_flops_layer / seq_forward
    mask_s = MASK_PASSES * 4 * _linear_params_per_layer() / (H200_HBM_BPS * MEMORY_UTILISATION)
    matmul = H200_BF16_FLOPS * MATMUL_UTILISATION
    fp32 = H200_FP32_FLOPS * SOLVE_UTILISATION
    fwd = _forward_flops(STUDY_TOKENS, STUDY_SEQLEN)
    wanda_layer_s = 2 * fwd / matmul + mask_s
    hess_s = _hessian_flops(STUDY_TOKENS) / fp32
    solve_s = _solve_flops() / fp32 + 6 * _solve_columns() * LAUNCH_S
    sgpt_layer_s = wanda_layer_s + hess_s + solve_s
    n_src = study.get("search_sources", STUDY_SOURCES)
    read_layer_s = n_src * hessian_layer / DISK_READ_BPS
    oneshot_layer_s = read_layer_s + solve_s
    build_source_s = STUDY_LAYERS * (fwd / matmul + hess_s + hessian_layer / DISK_WRITE_BPS)
    trial = {
        "wanda": STUDY_LAYERS * wanda_layer_s,
        "sparsegpt": STUDY_LAYERS * sgpt_layer_s,
        "oneshot_sparsegpt": STUDY_LAYERS * oneshot_layer_s,
    }
    grid_h = (study["wanda"] * trial["wanda"] + study["sparsegpt"] * trial["sparsegpt"]) / 3600
    search_h = (
        study.get("search_trials", 0) * trial["oneshot_sparsegpt"]
        + n_src * build_source_s
        + study.get("search_confirm", 0) * trial["sparsegpt"]
    ) / 3600

    # ---- targets
    budget = 1.5 * hessian_layer + GIB
    sgpt3 = max(oneshot["sparsegpt_3"]["peak"], oneshot["read_hessian_3"]["peak"])
    sgpt6 = max(oneshot["sparsegpt_6"]["peak"], oneshot["read_hessian_6"]["peak"])
    checks = [
        ("Wanda statistics <= 1 MiB per layer per source", wanda_layer <= MIB),
        (
            "one-shot SparseGPT mix, 3 sources (diagonal solve) <= 1.5 x layer Hessians + 1 GiB",
            sgpt3 <= budget,
        ),
        (
            "one-shot SparseGPT mix, 6 sources (diagonal solve) <= 1.5 x layer Hessians + 1 GiB",
            sgpt6 <= budget,
        ),
        (
            "one-shot Wanda mix, 3 and 6 sources <= 1.5 x layer Hessians + 1 GiB",
            max(oneshot["wanda_3"]["peak"], oneshot["wanda_6"]["peak"]) <= budget,
        ),
        (
            "one-shot mix peak the same for 3 and 6 sources (+-0.5 GiB)",
            abs(sgpt3 - sgpt6) <= GIB / 2
            and abs(oneshot["wanda_3"]["peak"] - oneshot["wanda_6"]["peak"]) <= GIB / 2,
        ),
        ("perplexity extra peak <= 1 GiB", ppl_peak <= GIB),
        ("10 mixes of 3 sources build 3 stores", count["builds"] == 3 and count["stores"] == 3),
    ]
    if full_solve:
        checks.append(
            (
                "one-shot SparseGPT, real solve (layer 0) <= 1.5 x layer Hessians + 1 GiB",
                full_solve["peak"] <= budget,
            )
        )

    # ---- table
    rows = [
        ("Wanda statistics per layer per source", _fmt_bytes(wanda_layer)),
        ("SparseGPT statistics per layer per source", _fmt_bytes(hessian_layer)),
        (
            f"Wanda stores, {STUDY_LAYERS} layers x {STUDY_SOURCES} sources (disk per node)",
            _fmt_bytes(per_node["sqnorm"]),
        ),
        (
            f"SparseGPT stores, {STUDY_LAYERS} layers x {STUDY_SOURCES} sources (disk per node)",
            _fmt_bytes(per_node["hessian"]),
        ),
        ("peak above model: sequential Wanda prune", _fmt_bytes(seq_peak)),
        (
            "peak above model: statistics build, Wanda (max of 6)",
            _fmt_bytes(max(p for _, p in builds["sqnorm"])),
        ),
        (
            "peak above model: statistics build, SparseGPT (max of 6)",
            _fmt_bytes(max(p for _, p in builds["hessian"])),
        ),
        ("peak above model: one-shot Wanda mix, 3 sources", _fmt_bytes(oneshot["wanda_3"]["peak"])),
        ("peak above model: one-shot Wanda mix, 6 sources", _fmt_bytes(oneshot["wanda_6"]["peak"])),
        (
            "peak above model: read+combine one Hessian layer, 3 sources",
            _fmt_bytes(oneshot["read_hessian_3"]["peak"]),
        ),
        (
            "peak above model: read+combine one Hessian layer, 6 sources",
            _fmt_bytes(oneshot["read_hessian_6"]["peak"]),
        ),
        (
            "peak above model: one-shot SparseGPT mix, 3 sources (diagonal solve)",
            _fmt_bytes(oneshot["sparsegpt_3"]["peak"]),
        ),
        (
            "peak above model: one-shot SparseGPT mix, 6 sources (diagonal solve)",
            _fmt_bytes(oneshot["sparsegpt_6"]["peak"]),
        ),
    ]
    if full_solve:
        rows.append(
            (
                "peak above model: one-shot SparseGPT, real solve, layer 0 (3 sources)",
                _fmt_bytes(full_solve["peak"]),
            )
        )
    rows += [
        (
            f"peak above model: perplexity, {PPL_WINDOWS} x {PPL_SEQLEN} windows",
            _fmt_bytes(ppl_peak),
        ),
        (
            "statistics builds for 10 mixes of 3 sources (toy trial path)",
            f"{count['builds']} ({count['stores']} stores)",
        ),
        ("CPU: sequential Wanda prune per layer (1024 tokens)", f"{seq_per_layer:.2f} s"),
        ("CPU: of which forwards / mask selection", f"{seq_forward:.2f} s / {seq_mask:.2f} s"),
        (
            "CPU: one-shot Wanda mix prune, 6 sources (2 layers)",
            f"{oneshot['wanda_6']['seconds']:.2f} s",
        ),
    ]
    if full_solve:
        rows.append(("CPU: SparseGPT solve of one layer", f"{full_solve['solve_s']:.0f} s"))
    rows.append((f"CPU: perplexity {PPL_WINDOWS} x {PPL_SEQLEN}", f"{ppl_s:.0f} s"))
    width = max(len(r[0]) for r in rows)
    print()
    print(f"| {'what'.ljust(width)} | figure |")
    print(f"|{'-' * (width + 2)}|--------|")
    for what, figure in rows:
        print(f"| {what.ljust(width)} | {figure} |")
    print()
    print(
        "SparseGPT one-shot mixes of 3 and 6 sources: the solve is replaced by a diagonal saliency "
        "mask (it is the only slow part on the CPU);"
    )
    if full_solve:
        print(
            f"the real solve ran once, on decoder layer 0 of the 3-source mix ({full_solve['solve_s']:.0f} s)."
        )
    else:
        print("the real solve was skipped (--full-solve-layers 0).")
    print()
    print(
        "Projection: one 8B trial's pruning on one H200 "
        f"(bf16 peak {H200_BF16_FLOPS / 1e12:.0f} TFLOP/s at {MATMUL_UTILISATION:.0%}; "
        f"fp32 {H200_FP32_FLOPS / 1e12:.0f} TFLOP/s at {SOLVE_UTILISATION:.0%} for Hessians and the solve; "
        f"NVMe {DISK_READ_BPS / 1e9:.0f} GB/s read, {DISK_WRITE_BPS / 1e9:.0f} GB/s write)"
    )
    print(
        f"  linear params per layer P = {_linear_params_per_layer() / 1e6:.1f} M; "
        f"layer forward = 2*P*T + 2*T*seqlen*hidden"
    )
    print(
        f"  CPU measured (sequential Wanda, T={bench_tokens}): {seq_per_layer:.2f} s per layer = "
        f"{seq_forward:.2f} s for 2 forwards ({cpu_flops_layer / 1e12:.2f} TFLOP -> "
        f"{cpu_rate / 1e9:.0f} GFLOP/s on {args.threads} cores) + {seq_mask:.2f} s mask selection"
    )
    print(
        f"  Wanda sequential: 2 forwards of T={STUDY_TOKENS}: 2 x {fwd / 1e12:.1f} TFLOP / "
        f"{matmul / 1e12:.0f} TFLOP/s + mask {MASK_PASSES} x 4 B x P / "
        f"({H200_HBM_BPS / 1e12:.1f} TB/s x {MEMORY_UTILISATION:.0%}) = {mask_s * 1e3:.1f} ms -> "
        f"{wanda_layer_s:.2f} s/layer x {STUDY_LAYERS} = {trial['wanda']:.0f} s"
    )
    print(
        f"  SparseGPT sequential: + Hessians {_hessian_flops(STUDY_TOKENS) / 1e12:.1f} TFLOP / "
        f"{fp32 / 1e12:.1f} TFLOP/s = {hess_s:.2f} s + solve {_solve_flops() / 1e12:.2f} TFLOP / "
        f"{fp32 / 1e12:.1f} TFLOP/s + {6 * _solve_columns()} launches x {LAUNCH_S * 1e6:.0f} us = "
        f"{solve_s:.2f} s -> {sgpt_layer_s:.2f} s/layer x {STUDY_LAYERS} = {trial['sparsegpt']:.0f} s"
    )
    if full_solve:
        print(
            f"    (CPU: the solve of one layer took {full_solve['solve_s']:.0f} s = "
            f"{_solve_flops() / full_solve['solve_s'] / 1e9:.0f} GFLOP/s achieved)"
        )
    print(
        f"  SparseGPT one-shot search trial, {n_src} sources: read {n_src} x "
        f"{_fmt_bytes(hessian_layer)} / {DISK_READ_BPS / 1e9:.0f} GB/s = {read_layer_s:.1f} s + solve "
        f"{solve_s:.2f} s = {oneshot_layer_s:.1f} s/layer x {STUDY_LAYERS} = {trial['oneshot_sparsegpt']:.0f} s"
    )
    print(
        f"  store build per source (once per node): {STUDY_LAYERS} x (forward + Hessians + write "
        f"{_fmt_bytes(hessian_layer)}) = {build_source_s:.0f} s"
    )
    print("Projection: configs/study.yaml, pruning stage only (no model loading, no evaluation):")
    print(
        f"  grid: {study['wanda']} Wanda x {trial['wanda']:.0f} s + {study['sparsegpt']} SparseGPT x "
        f"{trial['sparsegpt']:.0f} s = {grid_h:.2f} GPU-h"
    )
    print(
        f"  search: {study.get('search_trials', 0)} one-shot trials x {trial['oneshot_sparsegpt']:.0f} s "
        f"+ {n_src} store builds x {build_source_s:.0f} s + {study.get('search_confirm', 0)} confirm x "
        f"{trial['sparsegpt']:.0f} s = {search_h:.2f} GPU-h (stores built on one node)"
    )
    print(f"  total: {grid_h + search_h:.2f} GPU-h")
    print()
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    total_s = time.perf_counter() - t_start
    print(f"\nwall time {total_s:.0f} s on {args.threads} threads")

    out.update(
        {
            "statistics_bytes_per_layer": bytes_layer,
            "disk_per_node_bytes": per_node,
            "study_layers": STUDY_LAYERS,
            "study_sources": STUDY_SOURCES,
            "peak_above_model_bytes": {
                "sequential_wanda": seq_peak,
                "build_wanda": max(p for _, p in builds["sqnorm"]),
                "build_sparsegpt": max(p for _, p in builds["hessian"]),
                **{f"oneshot_{k}": v["peak"] for k, v in oneshot.items()},
                **(
                    {"oneshot_sparsegpt_full_solve_layer0": full_solve["peak"]}
                    if full_solve
                    else {}
                ),
                "perplexity": ppl_peak,
            },
            "seconds": {
                "sequential_wanda": seq_s,
                "sequential_wanda_per_layer": seq_per_layer,
                "sequential_wanda_forward_per_layer": seq_forward,
                "sequential_wanda_mask_per_layer": seq_mask,
                "build_wanda": [s for s, _ in builds["sqnorm"]],
                "build_sparsegpt": [s for s, _ in builds["hessian"]],
                **{f"oneshot_{k}": v["seconds"] for k, v in oneshot.items()},
                **({"sparsegpt_solve_layer": full_solve["solve_s"]} if full_solve else {}),
                "perplexity": ppl_s,
                "total": total_s,
            },
            "sparsegpt_solve": "diagonal stand-in for the 3/6-source mixes"
            + ("; real solve on layer 0 of the 3-source mix" if full_solve else ""),
            "perplexity_value": ppl,
            "build_count": count,
            "study_points": study,
            "projection": {
                "h200_bf16_flops": H200_BF16_FLOPS,
                "h200_hbm_bps": H200_HBM_BPS,
                "h200_fp32_flops": H200_FP32_FLOPS,
                "matmul_utilisation": MATMUL_UTILISATION,
                "solve_utilisation": SOLVE_UTILISATION,
                "disk_read_bps": DISK_READ_BPS,
                "disk_write_bps": DISK_WRITE_BPS,
                "cpu_achieved_flops": cpu_rate,
                "trial_seconds": trial,
                "store_build_seconds_per_source": build_source_s,
                "grid_gpu_hours": grid_h,
                "search_gpu_hours": search_h,
                "total_gpu_hours": grid_h + search_h,
            },
            "checks": {name: ok for name, ok in checks},
        }
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
