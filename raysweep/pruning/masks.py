"""Sparsity structures and the mask selections shared by every method.

A mask is a bool tensor shaped like the ``(out_features, in_features)`` weight where ``True``
marks a weight to prune. ``"N:M"`` keeps N of every M consecutive weights along the input
dimension of each row (so ``"2:4"`` prunes the 2 lowest scores of every group of 4).
"""

from __future__ import annotations

import torch

from raysweep.names import NMStructure, parse_structure  # noqa: F401 - re-exported


def check_sparsity(sparsity: float, nm: NMStructure | None) -> None:
    """Validate the target: in [0, 1); for N:M it must be the structure's own ratio (M-N)/M."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if nm is not None and abs(sparsity - nm.sparsity) > 1e-9:
        raise ValueError(f"structure {nm} implies sparsity {nm.sparsity:g}, got {sparsity:g}")


def lowest_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the ``k`` lowest entries along the last dimension.

    Same selection as a stable ascending sort (ties go to the lower index), found with a linear
    time ``kthvalue`` instead: everything below the k-th value, then the first tied entries.
    """
    n = scores.shape[-1]
    if k <= 0:
        return torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    if k >= n:
        return torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    kth = torch.kthvalue(scores, k, dim=-1, keepdim=True).values
    mask = scores < kth
    ties = scores == kth
    missing = k - mask.sum(-1, keepdim=True)
    mask |= ties & (ties.cumsum(-1) <= missing)
    return mask


def row_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Prune exactly ``floor(cols * sparsity)`` lowest scores in every row. scores: (rows, cols)."""
    return lowest_k_mask(scores, int(scores.shape[1] * sparsity))


def matrix_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Prune exactly ``floor(numel * sparsity)`` lowest scores of the whole matrix."""
    flat = lowest_k_mask(scores.reshape(-1), int(scores.numel() * sparsity))
    return flat.reshape(scores.shape)


def nm_mask(scores: torch.Tensor, nm: NMStructure) -> torch.Tensor:
    """Prune the ``M-N`` lowest scores of every group of M consecutive columns. scores: (rows, cols)."""
    rows, cols = scores.shape
    if cols % nm.group:
        raise ValueError(f"N:M {nm} needs in_features divisible by {nm.group}, got {cols}")
    grouped = scores.reshape(rows, cols // nm.group, nm.group)
    return lowest_k_mask(grouped, nm.prune).reshape(rows, cols)


def select_mask(
    scores: torch.Tensor, sparsity: float, nm: NMStructure | None, per_row: bool
) -> torch.Tensor:
    """Mask from scores: N:M if given, else per row (Wanda) or per matrix (magnitude)."""
    if nm is not None:
        return nm_mask(scores, nm)
    return row_mask(scores, sparsity) if per_row else matrix_mask(scores, sparsity)
