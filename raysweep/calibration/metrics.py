"""Information metrics of a calibration set (token level; n-grams never cross windows)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Tokens per forward pass of the model body: at Llama-3-8B width (FFN 14336) a pass over 4096
# tokens holds about 0.35 GB of MLP intermediates, so the metric stays within one layer's scale.
_PPL_FORWARD_TOKENS = 4096
# fp32 logits per LM-head chunk: about 130 tokens at a 128256-token vocabulary. With the
# model-dtype logits and log-softmax beside it a chunk holds about 2.5x this.
_PPL_CHUNK_BYTES = 64 * 2**20
# Tokens of the first window scored both ways to check that the head split matches the model.
_PROBE_TOKENS = 16


def _entropy_bits(counts: torch.Tensor) -> float:
    p = counts.double() / counts.sum()
    return float(-(p * torch.log2(p)).sum())


def _ngram_counts(input_ids: torch.Tensor, n: int) -> torch.Tensor:
    # (windows, seqlen - n + 1, n) -> (occurrences, n): n-grams are taken inside each window only.
    grams = input_ids.unfold(1, n, 1).reshape(-1, n)
    return torch.unique(grams, dim=0, return_counts=True)[1]


def _output_transform(config: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """What causal-LM heads apply to ``lm_head``'s output, read from the config (identity if none).

    Gemma 2/3 soft-cap (``final_logit_softcapping``), Cohere multiplies by ``logit_scale``,
    Granite divides by ``logits_scaling``. Anything else is caught by the probe in
    :func:`_split_head`.
    """
    cap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(config, "logit_scale", None)
    divide = getattr(config, "logits_scaling", None)

    def transform(logits: torch.Tensor) -> torch.Tensor:
        if isinstance(scale, int | float):
            logits = logits * scale
        if isinstance(divide, int | float):
            logits = logits / divide
        if isinstance(cap, int | float):
            logits = torch.tanh(logits / cap) * cap
        return logits

    return transform


@dataclass(frozen=True)
class _SplitHead:
    """A causal LM as body (ids -> final hidden states) and head (hidden -> logits)."""

    body: nn.Module
    head: nn.Module
    transform: Callable[[torch.Tensor], torch.Tensor]
    vocab: int

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.body(input_ids=ids, use_cache=False)
        return out[0] if not isinstance(out, torch.Tensor) else out  # (b, seqlen, hidden)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.transform(self.head(hidden)).float()


def _split_head(model: Any, probe: torch.Tensor) -> tuple[_SplitHead | None, str]:
    """The model's body and LM head, or None and why the full forward must be used instead.

    ``probe`` (1, n) is scored both ways: a model whose forward does more to the logits than
    the head and the config-declared transforms (an unknown multiplier, say) falls back.
    """
    body = getattr(model, "base_model", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if body is None or body is model or head is None:
        return None, f"{type(model).__name__} exposes no separate base model and output embeddings"
    reference = model(input_ids=probe, use_cache=False).logits.float()  # (1, n, vocab)
    split = _SplitHead(body, head, _output_transform(model.config), reference.shape[-1])
    ours = split.logits(split.hidden(probe))
    if ours.shape != reference.shape:
        return (
            None,
            f"its head gives logits of shape {tuple(ours.shape)}, the model {tuple(reference.shape)}",
        )
    scale = float(reference.abs().max()) + 1e-6
    error = float((ours - reference).abs().max())
    if error > 1e-2 * scale:
        return None, (
            f"its forward transforms the LM head's logits beyond the config's known transforms "
            f"(max difference {error:.3g} at logit scale {scale:.3g})"
        )
    return split, ""


def _chunk_tokens(vocab: int) -> int:
    return max(1, _PPL_CHUNK_BYTES // (4 * vocab))


def _windows_per_forward(seqlen: int) -> int:
    return max(1, _PPL_FORWARD_TOKENS // seqlen)


@torch.no_grad()
def window_nll(
    model: Any,
    input_ids: torch.Tensor,
    batch_size: int | None = None,
    *,
    chunk_tokens: int | None = None,
) -> torch.Tensor:
    """Summed next-token NLL over positions 1..seqlen-1 of each window: float64 ``(windows,)``.

    Memory does not grow with windows x seqlen x vocabulary: the model body runs on
    ``batch_size`` windows at a time (default: about 4096 tokens' worth) and the LM head and
    cross-entropy on ``chunk_tokens`` hidden states at a time (default: 64 MiB of fp32 logits).
    A model that cannot be split into base model and output embeddings, or whose logits the
    split does not reproduce on a short probe, is scored by its full forward instead, one
    ``batch_size`` at a time, with a warning.
    """
    n_windows, seqlen = input_ids.shape
    sums = torch.zeros(n_windows, dtype=torch.float64)
    if seqlen < 2:
        return sums
    device = next(model.parameters()).device
    windows = batch_size or _windows_per_forward(seqlen)
    was_training = model.training
    model.eval()
    try:
        first = input_ids[:1, : min(seqlen, _PROBE_TOKENS)].to(device)
        split, reason = _split_head(model, first)
        if split is None:
            warnings.warn(
                f"perplexity: full logits per batch for {type(model).__name__}: {reason}",
                stacklevel=2,
            )
        for w0 in range(0, n_windows, windows):
            batch = input_ids[w0 : w0 + windows].to(device)
            targets = batch[:, 1:].reshape(-1)  # (b * (seqlen-1),)
            owner = torch.arange(batch.shape[0]).repeat_interleave(seqlen - 1) + w0
            if split is None:
                logits = model(input_ids=batch, use_cache=False).logits[:, :-1].float()
                nll = F.cross_entropy(logits.flatten(0, 1), targets, reduction="none")
                sums.index_add_(0, owner, nll.double().cpu())
                del logits
                continue
            hidden = split.hidden(batch)[:, :-1].flatten(0, 1)  # (b * (seqlen-1), hidden)
            step = chunk_tokens or _chunk_tokens(split.vocab)
            for start in range(0, hidden.shape[0], step):
                logits = split.logits(hidden[start : start + step])  # (step, vocab) fp32
                nll = F.cross_entropy(logits, targets[start : start + step], reduction="none")
                sums.index_add_(0, owner[start : start + step], nll.double().cpu())
                del logits
    finally:
        model.train(was_training)
    return sums


def next_token_nll(
    model: Any,
    input_ids: torch.Tensor,
    batch_size: int | None = None,
    *,
    chunk_tokens: int | None = None,
) -> tuple[float, int]:
    """Summed next-token NLL over positions 1..seqlen-1 of every window, and how many there are
    (:func:`window_nll` summed over windows)."""
    n_windows, seqlen = input_ids.shape
    if seqlen < 2:
        return 0.0, 0
    total = window_nll(model, input_ids, batch_size, chunk_tokens=chunk_tokens).sum()
    return float(total), n_windows * (seqlen - 1)


def perplexity(
    model: Any,
    input_ids: torch.Tensor,
    batch_size: int | None = None,
    *,
    chunk_tokens: int | None = None,
) -> float:
    """exp(mean next-token NLL) over every predicted position (1..seqlen-1) of every window.

    Computed by :func:`next_token_nll` (chunked: no (windows, seqlen, vocab) logits tensor).
    """
    nll, tokens = next_token_nll(model, input_ids, batch_size, chunk_tokens=chunk_tokens)
    return math.exp(nll / tokens) if tokens else float("nan")


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
