from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from raysweep.evaluation import evaluate_capabilities, heldout_perplexity, heldout_texts
from tests.evaluation.tiny_world import TinyWorld

SEQLEN = 32


def _reference(world: TinyWorld, text: str) -> float:
    ids = world.tokenizer(text, return_tensors="pt").input_ids[0]
    n = ids.numel() // SEQLEN
    losses = []
    with torch.no_grad():
        for i in range(n):
            window = ids[i * SEQLEN : (i + 1) * SEQLEN][None]
            losses.append(float(world.model(input_ids=window, labels=window).loss))
    # every window predicts SEQLEN - 1 tokens, so the mean of window means is the token mean
    return math.exp(sum(losses) / n)


def test_heldout_perplexity_matches_reference(world: TinyWorld, tmp_path: Path) -> None:
    docs = [(world.tasks_dir / "rs_tiny_facts.test.jsonl").read_text(), "What is 1 plus 2? 3"]
    expected = _reference(world, "\n\n".join(docs))
    got = heldout_perplexity(world.model, world.tokenizer, docs, seqlen=SEQLEN, batch_size=3)
    assert got == pytest.approx(expected, rel=1e-5)
    assert got > 1.0
    capped = heldout_perplexity(world.model, world.tokenizer, docs, seqlen=SEQLEN, max_windows=2)
    assert capped != got


def test_perplexity_recorded_beside_task_scores(world: TinyWorld, tmp_path: Path) -> None:
    corpus = tmp_path / "heldout.txt"
    corpus.write_text((world.tasks_dir / "rs_tiny_sums.test.jsonl").read_text())
    suite = {
        "name": "ppl",
        "include_path": str(world.tasks_dir),
        "perplexity_corpus": f"file:{corpus}",
        "tasks": [{"name": "rs_tiny_facts", "dimension": "general", "chance": 0.25}],
    }
    scores = evaluate_capabilities(
        world.model, world.tokenizer, suite, limit=5, max_length=SEQLEN, perplexity=True
    )
    assert set(scores.perplexity) == {f"file:{corpus}"}
    assert scores.perplexity[f"file:{corpus}"] == pytest.approx(
        heldout_perplexity(
            world.model, world.tokenizer, heldout_texts(f"file:{corpus}"), seqlen=SEQLEN
        )
    )


def test_too_short_text_and_unknown_corpus(world: TinyWorld) -> None:
    with pytest.raises(ValueError, match="fewer than one window of 32"):
        heldout_perplexity(world.model, world.tokenizer, ["What is 1 plus 2?"], seqlen=SEQLEN)
    with pytest.raises(ValueError, match="unknown perplexity corpus 'c5'"):
        heldout_texts("c5")
