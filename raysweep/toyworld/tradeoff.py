"""Measure the calibration trade-off of the toy world: single-source Wanda, per-dimension retention.

``python -m raysweep.toyworld.tradeoff --sparsity 0.7`` prunes the toy model once per
(source, seed) with a small self-contained Wanda (score |W_ij| * ||X_j||_2, pruned per output
row, layer by layer with earlier layers already pruned), scores every toy task with the
in-process scorer, and prints the source x dimension retention table (mean and seed range) and
the source pairs that trade dimensions off beyond the seed range.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from raysweep.toyworld.mcscore import accuracy
from raysweep.toyworld.sources import SOURCES_BY_NAME, TOY_SOURCES, ToySource
from raysweep.toyworld.tasks import TOY_TASKS, task_items
from raysweep.toyworld.train import ensure_toy_model

DIMENSIONS = ("general", "commonsense", "code", "math")


def calibration_windows(
    tokenizer, source: ToySource, seed: int, n_windows: int, seqlen: int
) -> torch.Tensor:
    """Documents of ``source`` tokenised, joined by EOS and cut into windows: (n_windows, seqlen)."""
    need = n_windows * seqlen
    ids: list[int] = []
    for text in source.texts(seed):
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
        if len(ids) >= need:
            break
    return torch.tensor(ids[:need], dtype=torch.long).view(n_windows, seqlen)


class _Stop(Exception):
    """Raised after the layer being calibrated: later layers need not run."""


def _accumulate_sq_norm(sq_norm: torch.Tensor):
    def hook(_module, args, _output):
        x = args[0].reshape(-1, args[0].shape[-1]).double()  # (tokens, in_features)
        sq_norm.add_((x * x).sum(0))

    return hook


def _stop(_module, _args, _output):
    raise _Stop


@torch.no_grad()
def wanda_prune(model, windows: torch.Tensor, sparsity: float, batch_size: int = 16) -> None:
    """Unstructured Wanda in place on every linear layer of every decoder layer.

    Layer i is calibrated on activations that flow through the already pruned layers 0..i-1.
    """
    for layer in model.model.layers:
        linears = {n: m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}
        sq_norms = {n: torch.zeros(m.in_features, dtype=torch.float64) for n, m in linears.items()}
        handles = [
            m.register_forward_hook(_accumulate_sq_norm(sq_norms[n])) for n, m in linears.items()
        ]
        handles.append(layer.register_forward_hook(_stop))
        try:
            for batch in windows.split(batch_size):
                with contextlib.suppress(_Stop):
                    model(input_ids=batch)
        finally:
            for handle in handles:
                handle.remove()
        for name, module in linears.items():
            score = module.weight.abs() * sq_norms[name].sqrt().to(module.weight.dtype)[None, :]
            n_prune = int(module.in_features * sparsity)
            drop = torch.topk(score, n_prune, dim=1, largest=False).indices  # (out, n_prune)
            module.weight.scatter_(1, drop, 0.0)


def task_scores(model, tokenizer, items: dict[str, list]) -> dict[str, float]:
    return {name: accuracy(model, tokenizer, task_items_) for name, task_items_ in items.items()}


def dimension_scores(scores: dict[str, float]) -> dict[str, float]:
    out = {}
    for dim in DIMENSIONS:
        names = [t.name for t in TOY_TASKS if t.dimension == dim]
        out[dim] = sum(scores[n] for n in names) / len(names)
    return out


def find_tradeoffs(table: dict[str, dict[str, list[float]]]) -> list[dict[str, object]]:
    """(A, B, X, Y) with A above B on X and B above A on Y, every seed of the winner above every seed
    of the loser (ranges do not overlap); sorted by the smaller of the two margins."""
    found = []
    # (A, B, X, Y) and (B, A, Y, X) are the same trade-off: list each once, A before B in the table.
    for a, b in itertools.combinations(table, 2):
        for x, y in itertools.permutations(DIMENSIONS, 2):
            gap_x = min(table[a][x]) - max(table[b][x])
            gap_y = min(table[b][y]) - max(table[a][y])
            if gap_x > 0 and gap_y > 0:
                mean = lambda s, d: sum(table[s][d]) / len(table[s][d])  # noqa: E731
                found.append({"A": a, "B": b, "X": x, "Y": y,
                              "margin_x": round(mean(a, x) - mean(b, x), 4),
                              "margin_y": round(mean(b, y) - mean(a, y), 4),
                              "range_gap": round(min(gap_x, gap_y), 4)})  # fmt: skip
    return sorted(found, key=lambda r: -r["range_gap"])


def _prune(model, windows: torch.Tensor, sparsity: float, engine: str) -> None:
    if engine == "builtin":
        wanda_prune(model, windows, sparsity)
    elif engine == "raysweep":
        from raysweep.pruning import prune_model

        prune_model(model, windows, "wanda", sparsity)
    else:
        raise ValueError(f"unknown engine {engine!r}; use 'builtin' or 'raysweep'")


def run(
    source_names: Sequence[str],
    seeds: Sequence[int],
    sparsity: float,
    n_windows: int,
    seqlen: int,
    engine: str = "builtin",
) -> dict:
    torch.set_num_threads(1)
    model_dir = ensure_toy_model()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dense_model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    items = {t.name: task_items(t.name) for t in TOY_TASKS}
    dense = task_scores(dense_model, tokenizer, items)
    dense_dims = dimension_scores(dense)
    print("dense", json.dumps(dense), json.dumps(dense_dims), flush=True)
    state = {k: v.clone() for k, v in dense_model.state_dict().items()}
    table: dict[str, dict[str, list[float]]] = {}
    raw = []
    for name in source_names:
        table[name] = {d: [] for d in DIMENSIONS}
        for seed in seeds:
            started = time.perf_counter()
            dense_model.load_state_dict(state)
            windows = calibration_windows(tokenizer, SOURCES_BY_NAME[name], seed, n_windows, seqlen)
            _prune(dense_model, windows, sparsity, engine)
            scores = task_scores(dense_model, tokenizer, items)
            dims = dimension_scores(scores)
            for d in DIMENSIONS:
                table[name][d].append(dims[d] / dense_dims[d])
            raw.append({"source": name, "seed": seed, "task_scores": scores})
            print(f"{name:26s} seed {seed}  " + "  ".join(f"{d} {dims[d] / dense_dims[d]:.3f}" for d in DIMENSIONS)
                  + f"  ({time.perf_counter() - started:.1f}s)", flush=True)  # fmt: skip
    return {"sparsity": sparsity, "engine": engine, "seeds": list(seeds), "n_windows": n_windows, "seqlen": seqlen,
            "dense_task_scores": dense, "dense_dimension_scores": dense_dims,
            "retention": table, "runs": raw, "tradeoffs": find_tradeoffs(table)}  # fmt: skip


def format_table(result: dict) -> str:
    lines = ["| source | " + " | ".join(DIMENSIONS) + " |", "|---|" + "---|" * len(DIMENSIONS)]
    for name, dims in result["retention"].items():
        cells = []
        for d in DIMENSIONS:
            v = dims[d]
            cells.append(f"{sum(v) / len(v):.3f} ± {(max(v) - min(v)) / 2:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", nargs="*", default=[s.name for s in TOY_SOURCES])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--sparsity", type=float, default=0.7)
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--seqlen", type=int, default=128)
    parser.add_argument("--engine", choices=("builtin", "raysweep"), default="builtin",
                        help="this module's Wanda, or raysweep.pruning.prune_model(..., 'wanda', ...)")  # fmt: skip
    parser.add_argument("--output", type=Path, default=None, help="write the full result as JSON")
    args = parser.parse_args(argv)
    result = run(args.sources, args.seeds, args.sparsity, args.windows, args.seqlen, args.engine)
    print(
        f"\nretention at {args.sparsity:.0%} unstructured Wanda (mean ± half range over seeds {args.seeds})"
    )
    print(format_table(result))
    print("\ntrade-offs (ranges not overlapping):")
    for row in result["tradeoffs"][:10]:
        print(json.dumps(row))
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
