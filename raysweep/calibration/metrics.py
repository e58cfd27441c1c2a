"""Information metrics of a calibration set (token level; n-grams never cross windows)."""

from __future__ import annotations

import math
from typing import Any

import torch

_PPL_BATCH = 8  # windows per forward pass when measuring perplexity


def _entropy_bits(counts: torch.Tensor) -> float:
    p = counts.double() / counts.sum()
    return float(-(p * torch.log2(p)).sum())


def _ngram_counts(input_ids: torch.Tensor, n: int) -> torch.Tensor:
    # (windows, seqlen - n + 1, n) -> (occurrences, n): n-grams are taken inside each window only.
    grams = input_ids.unfold(1, n, 1).reshape(-1, n)
    return torch.unique(grams, dim=0, return_counts=True)[1]


@torch.no_grad()
def perplexity(model: Any, input_ids: torch.Tensor, batch_size: int = _PPL_BATCH) -> float:
    """exp(mean next-token NLL) over every predicted position (1..seqlen-1) of every window."""
    if input_ids.shape[1] < 2:
        return float("nan")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_nll, total_tokens = 0.0, 0
    try:
        for batch in input_ids.split(batch_size):
            batch = batch.to(device)
            logits = model(input_ids=batch).logits[:, :-1].float()  # (b, seqlen-1, vocab)
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum"
            )
            total_nll += float(nll)
            total_tokens += batch[:, 1:].numel()
    finally:
        model.train(was_training)
    return math.exp(total_nll / total_tokens)


def information_metrics(input_ids: torch.Tensor, model: Any = None) -> dict[str, float]:
    """Information metrics of a calibration set ``input_ids`` of shape ``(n_windows, seqlen)``.

    - ``ngram4_aggregation``: 1 - distinct 4-grams / 4-gram occurrences (share of repeats);
    - ``ngram4_entropy``: Shannon entropy (bits) of the empirical 4-gram distribution;
    - ``type_token_ratio``: distinct tokens / tokens;
    - ``unigram_entropy``: Shannon entropy (bits) of the token distribution;
    - ``perplexity`` (with ``model``): exp of the mean next-token NLL over all predicted positions.

    4-gram metrics are NaN when windows are shorter than 4 tokens.
    """
    if input_ids.dim() != 2 or input_ids.numel() == 0:
        raise ValueError(
            f"input_ids must be a non-empty (n_windows, seqlen) tensor, got shape {tuple(input_ids.shape)}"
        )
    input_ids = input_ids.long().cpu()
    unigrams = torch.unique(input_ids, return_counts=True)[1]
    metrics = {
        "type_token_ratio": len(unigrams) / input_ids.numel(),
        "unigram_entropy": _entropy_bits(unigrams),
    }
    if input_ids.shape[1] >= 4:
        grams = _ngram_counts(input_ids, 4)
        metrics["ngram4_aggregation"] = 1.0 - len(grams) / float(grams.sum())
        metrics["ngram4_entropy"] = _entropy_bits(grams)
    else:
        metrics["ngram4_aggregation"] = metrics["ngram4_entropy"] = float("nan")
    if model is not None:
        metrics["perplexity"] = perplexity(model, input_ids)
    return {
        name: float(metrics[name])
        for name in (
            "ngram4_aggregation",
            "ngram4_entropy",
            "type_token_ratio",
            "unigram_entropy",
            "perplexity",
        )
        if name in metrics
    }
