"""Choosing the next token: repetition penalty, banned tokens, temperature, top-k then top-p, and
inverse-CDF sampling with per-window uniforms (so a window does not depend on its batch)."""

from __future__ import annotations

import math

import torch

from .base import Sampling, derive_seed


def row_uniforms(seed: int, tag: str, rows: range, steps: int) -> torch.Tensor:
    """Uniforms ``(len(rows), steps)`` on CPU; row ``i`` from its own generator ``(seed, tag, i)``."""
    out = torch.empty(len(rows), steps, dtype=torch.float64)
    for j, i in enumerate(rows):
        gen = torch.Generator().manual_seed(derive_seed(seed, tag, i))
        out[j] = torch.rand(steps, generator=gen, dtype=torch.float64)
    return out


def pick_tokens(
    logits: torch.Tensor,
    uniforms: torch.Tensor,
    seen: torch.Tensor | None,
    banned: list[int],
    temperature: torch.Tensor,
    sampling: Sampling,
) -> torch.Tensor:
    """Sample one token per row. logits ``(B, V)``, uniforms ``(B,)`` in [0, 1), temperature
    ``(B, 1)`` -> ids ``(B,)``."""
    logits = logits.float()
    if seen is not None:
        penalised = torch.where(
            logits > 0, logits / sampling.repetition_penalty, logits * sampling.repetition_penalty
        )
        logits = torch.where(seen, penalised, logits)
    if banned:
        ids = torch.tensor(banned, device=logits.device)
        logits = logits.index_fill(1, ids, -math.inf)
    weights, order = candidate_weights(logits / temperature, sampling)
    keep = weights > 0
    cdf = weights.double().cumsum(-1)  # (B, candidates)
    target = uniforms.to(cdf.device).unsqueeze(1) * cdf[:, -1:]
    pos = torch.searchsorted(cdf, target, right=True)  # (B, 1): first position whose cdf > target
    # Guard against target == total through rounding: fall back to the last kept position.
    positions = torch.arange(keep.shape[1], device=keep.device)
    last = torch.where(keep, positions, -1).max(dim=1, keepdim=True).values
    pos = torch.minimum(pos, last)
    return (pos if order is None else order.gather(1, pos)).squeeze(1)


def candidate_weights(
    logits: torch.Tensor, sampling: Sampling
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Unnormalised sampling weights after top-k then top-p, as Hugging Face's ``generate``
    applies them (``TopKLogitsWarper`` then ``TopPLogitsWarper``): top-p reads the probabilities
    renormalised over the top-k tokens. logits ``(B, V)``, already divided by the temperature ->
    ``(weights (B, C), ids (B, C))`` with the candidates in descending order, or ``(weights
    (B, V), None)`` in token order when nothing is cut; a cut token has weight 0."""
    probs = torch.softmax(logits, dim=-1)
    ranked, order = _ranked(probs, sampling.top_k, sampling.top_p)
    keep = ranked > 0
    if sampling.top_p < 1.0:
        # Top-k's survivors form the distribution top-p cuts (the nucleus probe's are a prefix of
        # the full one, whose mass is 1).
        mass = ranked.sum(-1, keepdim=True) if sampling.top_k else 1.0
        before = (ranked.cumsum(-1) - ranked) / mass  # mass of the tokens ranked above
        keep &= before < sampling.top_p
    if order is not None:
        keep[:, 0] = True  # the most likely token always stays
    return ranked * keep, order


# Nucleus sampling without top-k first looks among this many most likely tokens (a full sort of a
# large vocabulary is slow on CPU); it sorts everything only when their mass is below top_p.
_NUCLEUS_PROBE = 256


def _ranked(
    probs: torch.Tensor, top_k: int, top_p: float
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(probs, None)`` in token order when nothing is cut; else the most likely tokens in
    descending order ``(values (B, k), ids (B, k))``, holding every token top-k/top-p may keep."""
    vocab = probs.shape[-1]
    if top_k:
        return probs.topk(min(top_k, vocab), dim=-1)
    if top_p >= 1.0:
        return probs, None
    values, ids = probs.topk(min(_NUCLEUS_PROBE, vocab), dim=-1)
    if bool((values.sum(-1) >= top_p).all()):
        return values, ids
    return probs.sort(dim=-1, descending=True, stable=True)
