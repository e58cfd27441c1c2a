"""What the evaluation benchmarks share: their common options, an offline CPU process, and the
model and suite they score (the toy model and toy suite unless told otherwise).

A sibling module of the scripts (``python benchmarks/<script>.py`` puts this folder on the path).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch


def evaluation_options(doc: str, *, limit: int | None) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first line, with the options every evaluation benchmark
    takes; a script adds its own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the toy model")
    parser.add_argument("--suite", default="toy", help="a suite name (default: toy)")
    parser.add_argument(
        "--limit", type=int, default=limit, help="items per task (default: %(default)s)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    return parser


def offline_model(model_dir: Path | None, threads: int) -> tuple[Path, Any, Any]:
    """``(model_dir, model, tokenizer)`` in float32 on the CPU, after making this process offline
    (Hub and datasets; child processes inherit it) and giving torch ``threads`` threads."""
    torch.set_num_threads(threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model_dir is None:
        from raysweep.toyworld import ensure_toy_model

        model_dir = ensure_toy_model()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return Path(model_dir), model, AutoTokenizer.from_pretrained(model_dir)
