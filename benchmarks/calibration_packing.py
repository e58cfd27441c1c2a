"""Tokenisation + packing throughput of calibration sources: cold cache vs warm cache.

For each source, `source_windows` builds n windows of seqlen tokens into an empty cache (cold:
read documents, tokenise in batches, pack, write) and then reads them back (warm). As a reference
point, the cold path is also timed against per-document tokenizer calls (the loop that reference
pruning repositories use), packed the same way.

    python benchmarks/calibration_packing.py [--n 128] [--seqlen 512] [--sources toy_web ...]

Uses the toy world's sources and the toy model's tokenizer when they are present; otherwise
word-salad sources and a small byte-level BPE tokenizer built here.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from itertools import islice
from pathlib import Path

import torch

from raysweep.calibration import SOURCES, CalibrationSource, source_seed, source_windows
from raysweep.calibration.loading import iter_documents

_WORDS = [
    "the",
    "river",
    "town",
    "market",
    "old",
    "bridge",
    "rain",
    "people",
    "walk",
    "morning",
    "story",
    "city",
    "add",
    "plus",
    "minus",
    "times",
    "equals",
    "seven",
    "three",
    "twelve",
    "sum",
    "number",
    "def",
    "return",
    "if",
    "else",
    "for",
    "while",
    "print",
    "list",
    "index",
    "value",
]


def _salad_texts(seed: int):
    rng = random.Random(seed)
    while True:
        yield " ".join(rng.choice(_WORDS) for _ in range(rng.randint(20, 200))) + "."


def _fallback_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(islice(_salad_texts(0), 500)), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>")


def _setup(names: list[str] | None):
    toy = [SOURCES[n] for n in SOURCES if n.startswith("toy_")]
    if toy:
        from transformers import AutoTokenizer

        from raysweep.toyworld.model import DEFAULT_MODEL_DIR

        if (DEFAULT_MODEL_DIR / "config.json").is_file():
            tokenizer, label = AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR), "toy model"
        else:
            tokenizer, label = _fallback_tokenizer(), "byte-level BPE (toy model not built)"
        sources = toy
    else:
        tokenizer, label = _fallback_tokenizer(), "byte-level BPE"
        sources = [
            CalibrationSource(name=f"salad_{i}", kind="builtin", texts=_salad_texts)
            for i in range(3)
        ]
    if names:
        sources = [s for s in sources if s.name in names]
    return tokenizer, label, sources


def _per_document(tokenizer, source: CalibrationSource, n: int, seqlen: int, seed: int) -> float:
    """Seconds to fill n windows calling the tokenizer once per document."""
    start = time.perf_counter()
    buffer: list[int] = []
    windows = []
    for doc in iter_documents(source, source_seed(seed, source.name)):
        buffer += tokenizer(doc, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        while len(buffer) >= seqlen and len(windows) < n:
            windows.append(buffer[:seqlen])
            buffer = buffer[seqlen:]
        if len(windows) == n:
            break
    torch.tensor(windows)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--seqlen", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sources", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer, label, sources = _setup(args.sources)
    tokens = args.n * args.seqlen
    print(f"tokenizer: {label}; {args.n} windows x {args.seqlen} tokens per source")
    print(
        f"{'source':26s} {'cold tok/s':>12s} {'warm tok/s':>12s} {'warm/cold':>10s} {'per-doc tok/s':>14s} {'batched/per-doc':>16s}"
    )
    totals = {"cold": 0.0, "warm": 0.0, "doc": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for source in sources:
            cache = Path(tmp) / source.name
            t0 = time.perf_counter()
            cold = source_windows(
                tokenizer, source, args.n, args.seqlen, args.seed, cache_dir=cache
            )
            t1 = time.perf_counter()
            warm = source_windows(
                tokenizer, source, args.n, args.seqlen, args.seed, cache_dir=cache
            )
            t2 = time.perf_counter()
            assert torch.equal(cold, warm)
            per_doc = _per_document(tokenizer, source, args.n, args.seqlen, args.seed)
            c, w = t1 - t0, t2 - t1
            totals["cold"] += c
            totals["warm"] += w
            totals["doc"] += per_doc
            print(
                f"{source.name:26s} {tokens / c:12.0f} {tokens / w:12.0f} {c / w:10.1f} "
                f"{tokens / per_doc:14.0f} {per_doc / c:16.2f}"
            )
    all_tokens = tokens * len(sources)
    print(
        f"{'all':26s} {all_tokens / totals['cold']:12.0f} {all_tokens / totals['warm']:12.0f} "
        f"{totals['cold'] / totals['warm']:10.1f} {all_tokens / totals['doc']:14.0f} "
        f"{totals['doc'] / totals['cold']:16.2f}"
    )


if __name__ == "__main__":
    main()
