"""Independent references for the pruning tests: what a layer's linears see, from a plain forward
of the dense model (no driver, no replay)."""

from __future__ import annotations

import torch
from torch import nn

from raysweep.pruning import find_decoder_stack


def dense_linear_sqnorms(
    model: nn.Module, ids: torch.Tensor, layer: int | None = None
) -> dict[str, torch.Tensor]:
    """sum_t x^2 (float64) entering every nn.Linear of the decoder layers (or of ``layer``
    alone), by full module name, from one forward of ``model`` on ``ids``."""
    stack = find_decoder_stack(model)
    root, prefix = (stack.layers, stack.prefix) if layer is None else (
        stack.layers[layer], f"{stack.prefix}.{layer}")  # fmt: skip
    sums: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in root.named_modules():
        if isinstance(module, nn.Linear):

            def hook(mod: nn.Module, args: tuple, name: str = f"{prefix}.{name}") -> None:
                x = args[0].reshape(-1, args[0].shape[-1]).double()
                sums[name] = sums.get(name, 0) + x.square().sum(0)

            handles.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model(ids)
    finally:
        for handle in handles:
            handle.remove()
    return sums
