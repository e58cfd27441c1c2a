"""How far can calibration data move each pruning method on the toy world?

Prunes the toy model at one sparsity (default 70 %) over several calibration seeds with raysweep's
own pruning and scores every item of the four toy tasks, as a trial does, for:

- ``uniform``: the default sweep's uniform mix of the 15 domain-aligned toy sources;
- ``uniform, flat``: the same documents with every whitespace run (line breaks, indentation)
  collapsed to one space;
- ``uniform, shuffled``: the same documents with their words permuted in place (whitespace runs
  kept), the word-order control of the uniform mix itself;
- ``toy_shuffled_words``: the default sweep's shuffled-words control (the crawl-like pages of
  ``toy_web`` with their words permuted in place);
- ``task text`` (ordered, flat, words shuffled in place): the held-out task items themselves
  (context and correct answer), an oracle no real calibration set can match: the evaluation's
  own text.

Prints total retention per calibration (mean [min, max] over seeds) and its four dimensions.
A method whose oracle does not beat a shuffled blend gains little from *which* text it is
calibrated on, beyond the blend of domains it covers.

    python benchmarks/toy_calibration_ceiling.py [--methods wanda sparsegpt] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from raysweep.calibration import build_calibration_set, get_source
from raysweep.calibration.sources import CalibrationSource
from raysweep.names import DIMENSIONS
from raysweep.pruning import prune_model
from raysweep.toyworld.sources import shuffle_words
from raysweep.toyworld.tasks import TOY_TASKS, task_items
from raysweep.toyworld.tradeoff import N_SAMPLES, dimension_scores, task_scores, uniform_weights
from raysweep.toyworld.train import ensure_toy_model


def flat(text: str) -> str:
    return " ".join(text.split())


def _task_text(form: str) -> Callable[[int], Iterator[str]]:
    docs = [i.context + i.choices[i.label] for t in TOY_TASKS for i in task_items(t.name)]

    def texts(seed: int) -> Iterator[str]:
        # One stream of draws for every form: the forms differ only in how a document is written.
        draws, order = random.Random(f"task-text-{seed}"), random.Random(f"shuffle-{seed}")
        while True:
            doc = draws.choice(docs)
            yield {"ordered": doc, "flat": flat(doc), "shuffled": shuffle_words(doc, order)}[form]

    return texts


def _rewritten(name: str, form: str) -> Callable[[int], Iterator[str]]:
    """Source ``name``'s documents written ``flat`` or word-``shuffled`` (whitespace kept)."""
    texts = get_source(name).texts

    def rewritten(seed: int) -> Iterator[str]:
        if form == "flat":
            return (flat(doc) for doc in texts(seed))
        rng = random.Random(f"shuffle-{name}-{seed}")
        return (shuffle_words(doc, rng) for doc in texts(seed))

    return rewritten


def calibrations() -> tuple[dict[str, dict[str, float]], dict[str, CalibrationSource]]:
    """(named mixes, the extra sources they read)."""
    uniform = uniform_weights()
    extra = {
        f"{form}_{n}": CalibrationSource(f"{form}_{n}", kind="builtin", texts=_rewritten(n, form))
        for form in ("flat", "shuffled")
        for n in uniform
    }
    for form in ("ordered", "flat", "shuffled"):
        name = f"task_text_{form}"
        extra[name] = CalibrationSource(name, kind="builtin", texts=_task_text(form))
    mixes = {
        "uniform": uniform,
        "uniform, flat": {f"flat_{n}": w for n, w in uniform.items()},
        "uniform, shuffled": {f"shuffled_{n}": w for n, w in uniform.items()},
        "toy_shuffled_words": {"toy_shuffled_words": 1.0},
        **{f"task text, {f}": {f"task_text_{f}": 1.0} for f in ("ordered", "flat", "shuffled")},
    }
    return mixes, extra


def _cell(values: list[float]) -> str:
    return f"{sum(values) / len(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="*", default=["wanda", "sparsegpt"])
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--sparsity", type=float, default=0.7)
    p.add_argument("--samples", type=int, default=N_SAMPLES, help="calibration windows")
    p.add_argument("--seqlen", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", type=Path, default=None, help="model directory (default: toy)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = args.model or ensure_toy_model()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    dense = dimension_scores(task_scores(model, tokenizer))
    mixes, extra = calibrations()
    cache = tempfile.mkdtemp(prefix="toy-ceiling-")
    started = time.perf_counter()
    print(f"retention at {args.sparsity:.0%}, {args.samples} x {args.seqlen} tokens, "
          f"mean [min, max] over seeds {args.seeds}\n")  # fmt: skip
    print("| method | calibration | total | " + " | ".join(DIMENSIONS) + " |")
    print("|---|---|---|" + "---|" * len(DIMENSIONS))
    for method in args.methods:
        for name, mix in mixes.items():
            per_dim: dict[str, list[float]] = {d: [] for d in DIMENSIONS}
            for seed in args.seeds:
                model.load_state_dict(state)
                windows = build_calibration_set(tokenizer, mix, args.samples, args.seqlen, seed,
                                                extra_sources=extra, cache_dir=cache)  # fmt: skip
                prune_model(model, windows, method, args.sparsity)
                dims = dimension_scores(task_scores(model, tokenizer))
                for d in DIMENSIONS:
                    per_dim[d].append(dims[d] / dense[d])
            totals = [sum(per_dim[d][i] for d in DIMENSIONS) / len(DIMENSIONS)
                      for i in range(len(args.seeds))]  # fmt: skip
            cells = [_cell(totals)] + [f"{sum(v) / len(v):.3f}" for v in per_dim.values()]
            print(f"| {method} | {name} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
