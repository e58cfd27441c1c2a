"""Find the decoder layers of a causal LM and the prunable linear modules inside them.

Generic over Hugging Face decoder-only models: the decoder stack is the ``nn.ModuleList`` holding
the most parameters (``model.layers``, ``transformer.h``, ``model.decoder.layers``,
``gpt_neox.layers``, ...), and a prunable module is any ``nn.Linear`` or GPT-2 style ``Conv1D``
inside one of its layers. Embeddings and the LM head live outside the stack, so they are never
prunable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D


@dataclass(frozen=True)
class DecoderStack:
    """The decoder layers of a model: ``prefix`` is the dotted name of the ``ModuleList``."""

    prefix: str
    layers: nn.ModuleList


def _param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def find_decoder_stack(model: nn.Module) -> DecoderStack:
    """Return the model's decoder layers: the ``ModuleList`` with the most parameters."""
    best: tuple[int, str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            count = _param_count(module)
            if best is None or count > best[0]:
                best = (count, name, module)
    if best is None or best[0] == 0:
        raise ValueError(
            f"no decoder layers (nn.ModuleList with parameters) in {type(model).__name__}"
        )
    return DecoderStack(prefix=best[1], layers=best[2])


def is_prunable(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear | Conv1D)


def prunable_modules(layer: nn.Module) -> dict[str, nn.Module]:
    """Prunable modules of one decoder layer, by name relative to the layer, in forward order."""
    return {name: m for name, m in layer.named_modules() if name and is_prunable(m)}


def iter_prunable(model: nn.Module) -> dict[str, nn.Module]:
    """Every prunable module of the model, by full dotted name."""
    stack = find_decoder_stack(model)
    found: dict[str, nn.Module] = {}
    for index, layer in enumerate(stack.layers):
        for name, module in prunable_modules(layer).items():
            found[f"{stack.prefix}.{index}.{name}"] = module
    return found


def weight_matrix(module: nn.Module) -> torch.Tensor:
    """The weight as ``(out_features, in_features)``; a view for ``Conv1D`` (stored transposed)."""
    weight = module.weight
    return weight.t() if isinstance(module, Conv1D) else weight


def in_features(module: nn.Module) -> int:
    return weight_matrix(module).shape[1]
