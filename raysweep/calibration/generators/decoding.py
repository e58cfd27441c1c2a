"""Running the model: batched decoding of prompts into windows with a KV cache, whichever way the
installed transformers names it, and each window's perplexity."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from ..metrics import window_nll
from .base import Sampling
from .progress import Progress
from .sampler import pick_tokens, row_uniforms


def _forward_kwargs(model: Any) -> tuple[dict[str, Any], str]:
    """Extra forward arguments, and the name of the KV-cache argument (``cache`` in recent
    transformers, ``past_key_values`` before)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        params = {}
    # Only the last position's logits are needed while sampling: (B, 1, V) instead of (B, L, V).
    extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    return extra, "cache" if "cache" in params else "past_key_values"


def _kv_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


@torch.no_grad()
def _sample_batch(
    model: Any,
    prompts: Sequence[Sequence[int]],
    seqlen: int,
    uniforms: torch.Tensor,
    banned: list[int],
    sampling: Sampling,
) -> torch.Tensor:
    """Continue ``prompts`` (B rows of any lengths >= 1) to ``(B, seqlen)`` with a KV cache.

    The shortest prompt length is run in one forward pass; after that every position takes the
    row's prompt token while it has one, else a sampled token, so rows with prompts of different
    lengths share a batch without padding. ``uniforms (B, seqlen)``: position ``p`` of a row is
    sampled with ``uniforms[row, p]``.
    """
    device = next(model.parameters()).device
    b = len(prompts)
    lengths = torch.tensor([len(row) for row in prompts], device=device)  # (B,)
    forced = torch.full((b, seqlen), -1, dtype=torch.long)  # prompt tokens, -1 where sampled
    for i, row in enumerate(prompts):
        forced[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    forced = forced.to(device)
    uniforms = uniforms.to(device)
    first = int(lengths.min())
    tokens = torch.empty((b, seqlen), dtype=torch.long, device=device)
    tokens[:, :first] = forced[:, :first]
    extra, cache_arg = _forward_kwargs(model)
    out = model(input_ids=tokens[:, :first], use_cache=True, **extra)
    seen = None  # (B, vocab) tokens already in each row, for the repetition penalty
    if sampling.repetition_penalty != 1.0:
        seen = torch.zeros(b, out.logits.shape[-1], dtype=torch.bool, device=device)
        seen.scatter_(1, tokens[:, :first], True)
    for pos in range(first, seqlen):
        # Index of this token among the row's sampled ones (negative while still in the prompt).
        temps = sampling.temperatures(pos - lengths).unsqueeze(1)  # (B, 1)
        sampled = pick_tokens(out.logits[:, -1], uniforms[:, pos], seen, banned, temps, sampling)
        nxt = torch.where(forced[:, pos] >= 0, forced[:, pos], sampled)  # (B,)
        tokens[:, pos] = nxt
        if seen is not None:
            seen.scatter_(1, nxt.unsqueeze(1), True)
        if pos + 1 < seqlen:
            extra[cache_arg] = _kv_cache(out)
            out = model(input_ids=nxt.unsqueeze(1), use_cache=True, **extra)
    return tokens.cpu()


def sample_windows(
    model: Any,
    prompts: Sequence[Sequence[int]] | torch.Tensor,
    seqlen: int,
    sampling: Sampling,
    seed: int,
    tag: str,
    banned: Sequence[int] = (),
    progress: Progress | None = None,
) -> torch.Tensor:
    """Continue each prompt (start token included; lengths may differ) to ``seqlen`` tokens.

    Row ``i`` is sampled with uniforms from ``(seed, tag, i)``; returns LongTensor ``(N, seqlen)``.
    """
    prompts = [[int(t) for t in row] for row in prompts]
    longest = max(len(row) for row in prompts)
    if min(len(row) for row in prompts) < 1 or longest >= seqlen:
        raise ValueError(
            f"{sampling.kind}: prompts need 1 to {seqlen - 1} tokens for seqlen {seqlen}, "
            f"got up to {longest}"
        )
    was_training = model.training
    model.eval()
    parts = []
    try:
        for start in range(0, len(prompts), sampling.batch_size):
            rows = range(start, min(start + sampling.batch_size, len(prompts)))
            uniforms = row_uniforms(seed, tag, rows, seqlen)
            batch = prompts[rows.start : rows.stop]
            parts.append(_sample_batch(model, batch, seqlen, uniforms, list(banned), sampling))
            if progress is not None:
                progress.update(len(rows))
    finally:
        model.train(was_training)
    return torch.cat(parts, dim=0)


def window_perplexities(model: Any, windows: torch.Tensor, batch_size: int = 4) -> torch.Tensor:
    """Per-window exp(mean next-token NLL) over positions 1..seqlen-1: float64 ``(N,)``.

    Through the chunked LM head of :func:`raysweep.calibration.metrics.window_nll`: no
    (batch, seqlen, vocab) logits tensor.
    """
    sums = window_nll(model, windows, batch_size)
    return (sums / max(1, windows.shape[1] - 1)).exp()


def draw_and_score(
    model: Any,
    prompts: Sequence[Sequence[int]],
    seqlen: int,
    sampling: Sampling,
    seed: int,
    banned: Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pool (N, seqlen), perplexities (N,))``: one draw over all ``prompts`` (rows of different
    prompts share batches), tagged with the generator's kind, then each window scored."""
    progress = Progress(sampling.kind, len(prompts), len(prompts) * seqlen)
    try:
        pool = sample_windows(
            model, prompts, seqlen, sampling, seed, sampling.kind, banned, progress
        )
        return pool, window_perplexities(model, pool, sampling.score_batch_size)
    finally:
        progress.close()
