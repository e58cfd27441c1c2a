"""Wanda: score |W_ij| * ||X_j||_2 over all calibration tokens, compared within each output row.

Statistics are the per-input-feature sums of squares ``sum_t x_tj^2`` in fp32 (additive over
tokens, so batches, sources and mixes combine by weighted sums).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from raysweep.pruning.masks import NMStructure, select_mask


def new_sqnorm(in_features: int, device: torch.device | str | None = None) -> torch.Tensor:
    return torch.zeros(in_features, dtype=torch.float32, device=device)


# On the CPU, squaring a few hundred tokens at a time keeps the temporary in cache (about 5x
# faster than squaring a whole batch); a GPU prefers one large kernel.
_CPU_CHUNK_TOKENS = 256


def token_chunks(inputs: torch.Tensor) -> Iterator[torch.Tensor]:
    """``inputs`` (..., in_features) as (tokens, in_features) blocks: a few hundred tokens at a
    time on the CPU (an fp32 temporary of that size stays in cache), all at once elsewhere."""
    x = inputs.reshape(-1, inputs.shape[-1])
    chunk = _CPU_CHUNK_TOKENS if x.device.type == "cpu" else max(1, x.shape[0])
    for start in range(0, x.shape[0], chunk):
        yield x[start : start + chunk]


def accumulate_sqnorm(sqnorm: torch.Tensor, inputs: torch.Tensor) -> None:
    """Add ``sum_t x_t^2`` of ``inputs`` (..., in_features) to ``sqnorm`` (in_features,) in place."""
    for block in token_chunks(inputs):
        sqnorm.add_(block.float().square().sum(dim=0))


def wanda_scores(weight: torch.Tensor, sqnorm: torch.Tensor) -> torch.Tensor:
    """|W| * sqrt(sqnorm) broadcast over rows. weight: (out, in), sqnorm: (in,)."""
    return weight.abs().float() * sqnorm.sqrt().reshape(1, -1)


def wanda_mask(
    weight: torch.Tensor, sqnorm: torch.Tensor, sparsity: float, nm: NMStructure | None
) -> torch.Tensor:
    """Prune mask: exactly ``floor(in * sparsity)`` per row, or N:M groups along each row."""
    return select_mask(wanda_scores(weight, sqnorm), sparsity, nm, per_row=True)
