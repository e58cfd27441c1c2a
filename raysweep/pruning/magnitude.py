"""Magnitude pruning: score |W|; unstructured compares weights within each whole matrix."""

from __future__ import annotations

import torch

from raysweep.pruning.masks import NMStructure, select_mask


def magnitude_mask(weight: torch.Tensor, sparsity: float, nm: NMStructure | None) -> torch.Tensor:
    """Prune mask for ``weight`` (out_features, in_features)."""
    return select_mask(weight.abs().float(), sparsity, nm, per_row=False)
