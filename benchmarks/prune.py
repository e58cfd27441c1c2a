"""Pruning benchmark: raysweep vs the two-forward-pass floor, the cached-statistics fast path,
and llm-compressor's ``oneshot`` on the same seeded model and calibration ids.

Workload: seeded random Llama (hidden 512, 8 layers, intermediate 1376, 8 heads, vocab 8000,
33.5 M parameters), seeded 64 x 512 calibration ids, one torch thread. Every measured call runs in
its own fresh process (so peak RSS, the process's ru_maxrss, is comparable); llm-compressor runs
in its own virtual environment because it pins an older transformers. Usage: see
benchmarks/README_prune.md.
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
from typing import Any

import torch

VARIANTS = (
    ("wanda", "unstructured"),
    ("sparsegpt", "unstructured"),
    ("wanda", "2:4"),
    ("sparsegpt", "2:4"),
    ("wanda+owl", "unstructured"),  # OWL allocation (the authors' M 5, lambda 0.08)
)
OWL = {"m": 5.0, "lambda": 0.08}
SPARSITY = 0.5
LLMC_VENV = Path(os.environ.get("LLMC_VENV", "/work/llmc-venv"))
WORKLOAD = {
    "hidden": 512,
    "layers": 8,
    "intermediate": 1376,
    "heads": 8,
    "vocab": 8000,
    "n": 64,
    "seqlen": 512,
}
QUICK = {
    "hidden": 128,
    "layers": 2,
    "intermediate": 344,
    "heads": 4,
    "vocab": 1000,
    "n": 16,
    "seqlen": 128,
}
N_MIXES = 10


# --------------------------------------------------------------------------- workers (subprocesses)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _load(model_dir: str) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def _save_layer_weights(model: torch.nn.Module, path: str) -> None:
    from safetensors.torch import save_file

    weights = {
        n: p.detach().contiguous()
        for n, p in model.named_parameters()
        if ".layers." in n and n.endswith("proj.weight")
    }
    save_file(weights, path)


def worker_floor(job: dict[str, Any]) -> dict[str, Any]:
    model = _load(job["model_dir"])
    calib = torch.load(job["calib"])
    bs = job["batch_size"]
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for _ in range(2):
            for i in range(0, calib.shape[0], bs):
                model(input_ids=calib[i : i + bs], use_cache=False)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def worker_raysweep(job: dict[str, Any]) -> dict[str, Any]:
    from raysweep.pruning import prune_model

    model = _load(job["model_dir"])
    calib = torch.load(job["calib"])
    method, _, allocation = job["method"].partition("+")
    wall, cpu = time.perf_counter(), time.process_time()
    report = prune_model(
        model, calib, method, SPARSITY, job["structure"], batch_size=job["batch_size"],
        allocation=allocation or "uniform", owl_m=OWL["m"], owl_lambda=OWL["lambda"],
    )  # fmt: skip
    result = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    result.update(timings=report.timings, achieved=report.achieved_sparsity,
                  layer_sparsity=report.layer_sparsity)  # fmt: skip
    _save_layer_weights(model, job["out"])
    return result


def worker_llmc(job: dict[str, Any]) -> dict[str, Any]:
    from llmcompressor import oneshot
    from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier
    from torch.utils.data import DataLoader, default_collate

    model = _load(job["model_dir"])
    calib = torch.load(job["calib"])
    structure = "0:0" if job["structure"] == "unstructured" else job["structure"]
    method, _, allocation = job["method"].partition("+")
    modifier = WandaPruningModifier if method == "wanda" else SparseGPTModifier
    owl = {"sparsity_profile": "owl", "owl_m": OWL["m"], "owl_lmbda": OWL["lambda"]}
    recipe = modifier(sparsity=SPARSITY, mask_structure=structure, ignore=["re:.*lm_head"],
                      **(owl if allocation == "owl" else {}))  # fmt: skip
    # A ready DataLoader (sequential order, no shuffling) skips llm-compressor's tokenizer step.
    rows = [{"input_ids": ids, "attention_mask": torch.ones_like(ids)} for ids in calib]
    dataset = DataLoader(
        rows, batch_size=job["batch_size"], shuffle=False, collate_fn=default_collate
    )
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        oneshot(
            model=model,
            dataset=dataset,
            recipe=recipe,
            num_calibration_samples=calib.shape[0],
            max_seq_length=calib.shape[1],
            shuffle_calibration_samples=False,
            pipeline="sequential",
        )
    except Exception as exc:  # noqa: BLE001 - the table records how llm-compressor fails
        line = (
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        )
        return {"error": line[:300]}
    result = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    result["layer_sparsity"] = [
        sum(int((p == 0).sum()) for p in w) / sum(p.numel() for p in w)
        for w in ([p for n, p in layer.named_parameters() if p.dim() == 2]
                  for layer in model.model.layers)
    ]  # fmt: skip
    _save_layer_weights(model, job["out"])
    return result


def worker_stats(job: dict[str, Any]) -> dict[str, Any]:
    """Collect and save dense statistics of each calibration file (the one-time cost)."""
    from raysweep.pruning import collect_statistics

    model = _load(job["model_dir"])
    per_source = []
    for calib_path, out in zip(job["calibs"], job["outs"], strict=True):
        calib = torch.load(calib_path)
        wall, cpu = time.perf_counter(), time.process_time()
        stats = collect_statistics(model, calib, batch_size=job["batch_size"])
        stats.save(out)
        per_source.append(
            {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
        )
    return {
        "wall_s": sum(p["wall_s"] for p in per_source),
        "cpu_s": sum(p["cpu_s"] for p in per_source),
        "per_source": per_source,
    }


def worker_fastpath(job: dict[str, Any]) -> dict[str, Any]:
    """Prune ``len(mixes)`` mixes from cached statistics, restoring the dense weights each time."""
    from raysweep.pruning import LayerStatistics, prune_model

    model = _load(job["model_dir"])
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    wall, cpu = time.perf_counter(), time.process_time()
    sources = [LayerStatistics.load(p) for p in job["stats"]]
    if job["method"] == "wanda":
        sources = [s.diagonal() for s in sources]  # Wanda needs only the diagonals
    per_mix = []
    for weights in job["mixes"]:
        t = time.perf_counter()
        model.load_state_dict(dense)
        mixed = LayerStatistics.combine(dict(zip(sources, weights, strict=True)))
        prune_model(
            model, None, job["method"], SPARSITY, job["structure"], mode="oneshot", statistics=mixed
        )
        per_mix.append(time.perf_counter() - t)
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "per_mix": per_mix,
    }


def worker_mix_sequential(job: dict[str, Any]) -> dict[str, Any]:
    """Full sequential prunes, one per mix, each on its own mixed calibration set."""
    from raysweep.pruning import prune_model

    model = _load(job["model_dir"])
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    sources = [torch.load(p) for p in job["calibs"]]
    wall, cpu = time.perf_counter(), time.process_time()
    per_mix = []
    for weights in job["mixes"]:
        t = time.perf_counter()
        model.load_state_dict(dense)
        calib = _mixed_calibration(sources, weights)
        prune_model(
            model, calib, job["method"], SPARSITY, job["structure"], batch_size=job["batch_size"]
        )
        per_mix.append(time.perf_counter() - t)
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "per_mix": per_mix,
    }


WORKERS = {
    "floor": worker_floor,
    "raysweep": worker_raysweep,
    "llmc": worker_llmc,
    "stats": worker_stats,
    "fastpath": worker_fastpath,
    "mix_sequential": worker_mix_sequential,
}


def _worker_main(kind: str, job_path: str) -> None:
    torch.set_num_threads(1)
    job = json.loads(Path(job_path).read_text())
    result = WORKERS[kind](job)
    result["peak_rss_bytes"] = _peak_rss()
    Path(job["result"]).write_text(json.dumps(result))


# --------------------------------------------------------------------------- orchestration


def _mixed_calibration(sources: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """Rows taken from each source in proportion to ``weights`` (largest remainder)."""
    n = sources[0].shape[0]
    raw = [w / sum(weights) * n for w in weights]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])[: n - sum(counts)]:
        counts[i] += 1
    return torch.cat([s[:c] for s, c in zip(sources, counts, strict=True)])


def _best(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of repeated runs (least disturbed by other load); all samples kept."""
    best = dict(min(samples, key=lambda r: r["wall_s"]))
    best["cpu_s"] = min(r["cpu_s"] for r in samples)
    best["samples"] = [{"wall_s": r["wall_s"], "cpu_s": r["cpu_s"]} for r in samples]
    return best


def _run_worker(python: Path, kind: str, job: dict[str, Any], tmp: Path) -> dict[str, Any]:
    job_path = tmp / f"job-{kind}-{time.monotonic_ns()}.json"
    job["result"] = str(job_path.with_suffix(".result.json"))
    job_path.write_text(json.dumps(job))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    proc = subprocess.run(
        [str(python), __file__, "--worker", kind, str(job_path)],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{proc.stderr[-4000:]}")
    result = json.loads(Path(job["result"]).read_text())
    result["process_wall_s"] = time.perf_counter() - start
    return result


def _build_workload(shape: dict[str, int], tmp: Path) -> tuple[Path, list[Path]]:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["heads"],
        vocab_size=shape["vocab"],
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model_dir = tmp / "model"
    model.save_pretrained(model_dir)
    _save_word_tokenizer(model_dir, shape["vocab"])
    n, seqlen, vocab = shape["n"], shape["seqlen"], shape["vocab"]
    g = torch.Generator().manual_seed(1234)
    # Source 0 is the main calibration set; 1 and 2 have other token distributions (mix sources).
    uniform = torch.randint(0, vocab, (n, seqlen), generator=g)
    narrow = torch.randint(0, vocab // 8, (n, seqlen), generator=g)
    zipf_p = 1.0 / torch.arange(1, vocab + 1, dtype=torch.float64)
    zipf = torch.multinomial(zipf_p / zipf_p.sum(), n * seqlen, replacement=True, generator=g)
    calibs = []
    for i, ids in enumerate((uniform, narrow, zipf.reshape(n, seqlen))):
        path = tmp / f"calib{i}.pt"
        torch.save(ids.long().contiguous(), path)
        calibs.append(path)
    return model_dir, calibs


def _save_word_tokenizer(model_dir: Path, vocab: int) -> None:
    """A trivial word-level tokenizer: llm-compressor insists on a processor beside the model."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="t0", pad_token="t0"
    ).save_pretrained(model_dir)


def _mixes(count: int) -> list[list[float]]:
    g = torch.Generator().manual_seed(7)
    u = torch.rand(count, 3, generator=g, dtype=torch.float64).clamp_min(1e-12)
    w = -u.log()  # flat Dirichlet
    return (w / w.sum(1, keepdim=True)).tolist()


def _compare(model_dir: Path, stats_path: Path, ours: str, theirs: str) -> dict[str, Any]:
    """Layer-0 mask agreement and mean relative reconstruction error ||dW X||^2 / ||W X||^2 of
    both pruned models, X the dense model's calibration inputs (from its Hessians)."""
    from safetensors.torch import load_file

    from raysweep.pruning import LayerStatistics

    dense = {
        k: v
        for k, v in load_file(str(model_dir / "model.safetensors")).items()
        if ".layers." in k and k.endswith("proj.weight")
    }
    stats = LayerStatistics.load(stats_path)
    out: dict[str, Any] = {}
    for label, path in (("ours", ours), ("theirs", theirs)):
        pruned = load_file(path)
        per_layer: dict[str, list[float]] = {}
        for name, w in dense.items():
            h = stats.for_module(name.removesuffix(".weight")).double()
            delta = (w - pruned[name]).double()
            err = float(((delta @ h) * delta).sum() / ((w.double() @ h) * w.double()).sum())
            per_layer.setdefault(name.split(".layers.")[1].split(".")[0], []).append(err)
        layer_means = [sum(v) / len(v) for v in per_layer.values()]
        out[f"err_{label}"] = sum(layer_means) / len(layer_means)
        out[f"err_{label}_per_layer"] = layer_means
    a, b = load_file(ours), load_file(theirs)
    layer0 = [k for k in dense if ".layers.0." in k]
    agree = sum(int(((a[k] == 0) == (b[k] == 0)).sum()) for k in layer0)
    out["mask_agreement_layer0"] = agree / sum(dense[k].numel() for k in layer0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "JOB"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--quick", action="store_true", help="tiny workload (smoke test of the script)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="samples per raysweep (and floor) forward batch; default: prune_model's CPU default",
    )
    parser.add_argument(
        "--llmc-batch-size", type=int, default=1, help="llm-compressor batch size (its default: 1)"
    )
    parser.add_argument("--skip-llmcompressor", action="store_true")
    parser.add_argument("--skip-fast-path", action="store_true")
    parser.add_argument(
        "--variants",
        default=",".join(f"{m} {s}" for m, s in VARIANTS),
        help="comma-separated 'method structure' pairs to time (default: all four)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs per tool and variant, alternated; the fastest is reported",
    )
    parser.add_argument(
        "--sequential-mix-runs",
        type=int,
        default=N_MIXES,
        help="full sequential mix runs actually timed (the rest extrapolated)",
    )
    parser.add_argument(
        "--methods", default="wanda,sparsegpt", help="methods for the fast-path comparison"
    )
    parser.add_argument("--output", type=Path, default=None, help="write all figures as JSON here")
    args = parser.parse_args()
    if args.worker:
        _worker_main(*args.worker)
        return

    shape = QUICK if args.quick else WORKLOAD
    if args.batch_size is None:
        from raysweep.pruning import default_batch_size

        args.batch_size = default_batch_size(shape["seqlen"], "cpu")
    llmc_python = LLMC_VENV / "bin" / "python"
    run_llmc = not args.skip_llmcompressor
    if run_llmc and not llmc_python.exists():
        sys.exit(
            f"{llmc_python} missing: create it (benchmarks/README_prune.md) or pass --skip-llmcompressor"
        )
    results: dict[str, Any] = {
        "workload": shape,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
    }
    with tempfile.TemporaryDirectory(prefix="raysweep-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir, calibs = _build_workload(shape, tmp)
        me = Path(sys.executable)
        base = {"model_dir": str(model_dir), "calib": str(calibs[0]), "batch_size": args.batch_size}
        stats_paths = [tmp / f"stats{i}.safetensors" for i in range(3)]
        print("statistics of 3 sources (one-time cost of the fast path) ...", flush=True)
        results["stats"] = _run_worker(
            me,
            "stats",
            {**base, "calibs": [str(c) for c in calibs], "outs": [str(p) for p in stats_paths]},
            tmp,
        )
        print("floor (two plain forward passes) ...", flush=True)
        results["floor"] = _best(
            [_run_worker(me, "floor", dict(base), tmp) for _ in range(args.repeats)]
        )
        rows = {}
        for label in args.variants.split(","):
            method, structure = label.split()
            tag = f"{method}-{structure.replace(':', '_')}"
            ours_path, theirs_path = (
                tmp / f"ours-{tag}.safetensors",
                tmp / f"llmc-{tag}.safetensors",
            )
            ours_job = {**base, "method": method, "structure": structure, "out": str(ours_path)}
            theirs_job = {**ours_job, "batch_size": args.llmc_batch_size, "out": str(theirs_path)}
            samples: dict[str, list[dict[str, Any]]] = {"raysweep": [], "llmc": []}
            # Alternate the two tools so that both see the same stretch of machine load.
            for rep in range(args.repeats):
                print(f"{label}: raysweep ({rep + 1}/{args.repeats}) ...", flush=True)
                samples["raysweep"].append(_run_worker(me, "raysweep", ours_job, tmp))
                if run_llmc:
                    print(f"{label}: llm-compressor ({rep + 1}/{args.repeats}) ...", flush=True)
                    samples["llmc"].append(_run_worker(llmc_python, "llmc", theirs_job, tmp))
            row: dict[str, Any] = {"raysweep": _best(samples["raysweep"])}
            if run_llmc:
                failed = [x for x in samples["llmc"] if "error" in x]
                row["llmc"] = failed[0] if failed else _best(samples["llmc"])
                if not failed:
                    row["compare"] = _compare(
                        model_dir, stats_paths[0], str(ours_path), str(theirs_path)
                    )
            rows[label] = row
        results["variants"] = rows
        mixes = _mixes(N_MIXES)
        fast = {}
        for method in [] if args.skip_fast_path else args.methods.split(","):
            print(f"fast path {method}: {N_MIXES} mixes from cached statistics ...", flush=True)
            cached = _run_worker(
                me,
                "fastpath",
                {
                    **base,
                    "method": method,
                    "structure": "unstructured",
                    "stats": [str(p) for p in stats_paths],
                    "mixes": mixes,
                },
                tmp,
            )
            runs = max(1, min(args.sequential_mix_runs, N_MIXES))
            print(f"fast path {method}: {runs} sequential mix run(s) ...", flush=True)
            seq = _run_worker(
                me,
                "mix_sequential",
                {
                    **base,
                    "method": method,
                    "structure": "unstructured",
                    "calibs": [str(c) for c in calibs],
                    "mixes": mixes[:runs],
                },
                tmp,
            )
            seq["runs_timed"] = runs
            fast[method] = {"cached": cached, "sequential": seq}
        results["fast_path"] = fast
    _print_table(results, run_llmc)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))


def _print_table(r: dict[str, Any], run_llmc: bool) -> None:
    floor = r["floor"]
    gib = 1024**3
    print()
    print(
        f"workload {r['workload']}, raysweep batch {r['batch_size']}, one torch thread, "
        f"best of {r['repeats']} alternated run(s)"
    )
    print(
        f"floor (2 plain forward passes): wall {floor['wall_s']:.1f} s, cpu {floor['cpu_s']:.1f} s, peak RSS {floor['peak_rss_bytes'] / gib:.2f} GiB"
    )
    head = f"{'variant':<22}{'raysweep s':>11}{'cpu s':>8}{'/floor':>8}{'RSS GiB':>8}"
    if run_llmc:
        head += f"{'llmc s':>9}{'cpu s':>8}{'ratio':>7}{'cpu ratio':>10}{'RSS GiB':>8}{'mask agr':>10}{'err ours':>10}{'err llmc':>10}"
    print(head)
    for label, row in r["variants"].items():
        ours = row["raysweep"]
        line = f"{label:<22}{ours['wall_s']:>11.1f}{ours['cpu_s']:>8.1f}{ours['wall_s'] / floor['wall_s']:>8.2f}{ours['peak_rss_bytes'] / gib:>8.2f}"
        if run_llmc and "error" in row["llmc"]:
            line += f"   llm-compressor failed: {row['llmc']['error']}"
        elif run_llmc:
            th, c = row["llmc"], row["compare"]
            line += (
                f"{th['wall_s']:>9.1f}{th['cpu_s']:>8.1f}{ours['wall_s'] / th['wall_s']:>7.2f}"
                f"{ours['cpu_s'] / th['cpu_s']:>10.2f}{th['peak_rss_bytes'] / gib:>8.2f}"
                f"{c['mask_agreement_layer0']:>10.5f}{c['err_ours']:>10.5f}{c['err_theirs']:>10.5f}"
            )
        print(line)
        for tool in ("raysweep", "llmc"):
            layers = row.get(tool, {}).get("layer_sparsity")
            if layers and label.startswith("wanda+owl"):
                print(f"    {tool} layer sparsities: {', '.join(f'{x:.3f}' for x in layers)}")
    stats = r["stats"]
    if not r["fast_path"]:
        return
    print(
        f"fast path: statistics of 3 sources once: wall {stats['wall_s']:.1f} s (peak RSS {stats['peak_rss_bytes'] / gib:.2f} GiB)"
    )
    for method, f in r["fast_path"].items():
        cached, seq = f["cached"], f["sequential"]
        seq_total = sum(seq["per_mix"]) / len(seq["per_mix"]) * N_MIXES
        note = (
            ""
            if seq["runs_timed"] == N_MIXES
            else f" (mean of {seq['runs_timed']} timed x {N_MIXES})"
        )
        print(
            f"  {method}: {N_MIXES} mixes cached {sum(cached['per_mix']):.1f} s (per mix {sum(cached['per_mix']) / N_MIXES:.2f} s, "
            f"RSS {cached['peak_rss_bytes'] / gib:.2f} GiB) vs sequential {seq_total:.1f} s{note} "
            f"(RSS {seq['peak_rss_bytes'] / gib:.2f} GiB): {seq_total / sum(cached['per_mix']):.1f}x; "
            f"with the one-time statistics {seq_total / (sum(cached['per_mix']) + stats['wall_s']):.1f}x"
        )


if __name__ == "__main__":
    main()
