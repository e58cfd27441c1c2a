"""Find the decoder layers of a causal LM and the prunable linear modules inside them.

Generic over Hugging Face decoder-only models: the decoder stack is the ``nn.ModuleList`` holding
the most parameters (``model.layers``, ``transformer.h``, ``model.decoder.layers``,
``gpt_neox.layers``, ...). A prunable unit is any ``nn.Linear`` or GPT-2 style ``Conv1D`` inside one
of its layers, and every routed expert's projection of a fused mixture-of-experts block
(:class:`~raysweep.pruning.experts.ExpertMatrix`, named ``<block>.experts.<index>.<projection>``).
The linear children of an MoE block beside its experts (routers, shared-expert gates) stay dense.
Embeddings and the LM head live outside the stack, so they are never prunable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from raysweep.pruning.experts import ExpertMatrix, expert_matrices, is_fused_experts

Unit = nn.Module | ExpertMatrix  # something with a weight that a method can prune


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


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def experts_modules(layer: nn.Module) -> dict[str, nn.Module]:
    """Fused experts modules of one decoder layer, by name relative to the layer."""
    return {name: m for name, m in layer.named_modules() if name and is_fused_experts(m)}


def dense_by_design(layer: nn.Module) -> dict[str, nn.Module]:
    """Children of the layer's MoE blocks that route tokens (left dense), by relative name.

    Beside its experts an MoE block holds routers (``gate``: a linear or a router module with
    its own weight), maybe a shared-expert gate (a linear) and shared experts (modules made of
    linears, pruned like any MLP). Every linear child and every child without linears inside is
    a router.
    """
    found: dict[str, nn.Module] = {}
    for name in experts_modules(layer):
        parent_name = name.rpartition(".")[0]
        parent = layer.get_submodule(parent_name) if parent_name else layer
        experts = layer.get_submodule(name)
        for child_name, child in parent.named_children():
            if child is experts:
                continue
            if isinstance(child, nn.Linear) or not any(
                is_prunable(m) or is_fused_experts(m) for m in child.modules()
            ):
                found[_join(parent_name, child_name)] = child
    return found


def prunable_modules(layer: nn.Module) -> dict[str, Unit]:
    """Prunable units of one decoder layer, by name relative to the layer, in module order."""
    experts = experts_modules(layer)
    skip = dense_by_design(layer)
    found: dict[str, Unit] = {}
    for name, module in layer.named_modules():
        if not name or name in skip:
            continue
        if name in experts:
            found.update({f"{name}.{k}": v for k, v in expert_matrices(module).items()})
        elif is_prunable(module):
            found[name] = module
    return found


def iter_prunable(model: nn.Module) -> dict[str, Unit]:
    """Every prunable unit of the model, by full dotted name."""
    stack = find_decoder_stack(model)
    found: dict[str, Unit] = {}
    for index, layer in enumerate(stack.layers):
        for name, module in prunable_modules(layer).items():
            found[f"{stack.prefix}.{index}.{name}"] = module
    return found


def _covered(layer: nn.Module, units: dict[str, Unit]) -> set[int]:
    """Ids of the parameters that the layer's prunable units own (weights; routed experts'
    biases, stored (experts, out) but vectors per expert)."""
    ids = {id(weight_of(u)) for u in units.values()}
    for unit in units.values():
        if isinstance(unit, ExpertMatrix) and unit.experts.has_bias:
            ids.add(id(getattr(unit.experts, f"{unit.projection}_bias")))
    return ids


def decoder_matrices(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight matrix of the decoder layers, routed experts one by one, as (out, in).

    Prunable units first (by unit name), then the other parameters of two or more dimensions
    (by parameter name): together they are what an honest sparsity figure counts.
    """
    stack = find_decoder_stack(model)
    found: dict[str, torch.Tensor] = {}
    for index, layer in enumerate(stack.layers):
        prefix = f"{stack.prefix}.{index}"
        units = prunable_modules(layer)
        covered = _covered(layer, units)
        found.update({f"{prefix}.{n}": weight_matrix(u) for n, u in units.items()})
        for name, param in layer.named_parameters():
            if param.dim() >= 2 and id(param) not in covered:
                found[f"{prefix}.{name}"] = param
    return found


def unprunable_matrices(model: nn.Module) -> list[str]:
    """Decoder weight matrices that no method prunes and that are not routers."""
    stack = find_decoder_stack(model)
    names: list[str] = []
    for index, layer in enumerate(stack.layers):
        covered = _covered(layer, prunable_modules(layer))
        for module in dense_by_design(layer).values():
            covered |= {id(p) for p in module.parameters()}
        for name, param in layer.named_parameters():
            if param.dim() >= 2 and id(param) not in covered:
                names.append(f"{stack.prefix}.{index}.{name}")
    return names


def weight_of(unit: Unit) -> torch.Tensor:
    """The unit's parameter as stored."""
    return unit.weight if isinstance(unit, nn.Module) else getattr(unit.experts, unit.projection)


def weight_matrix(unit: Unit) -> torch.Tensor:
    """The weight as ``(out_features, in_features)``: a view for ``Conv1D`` (stored transposed)
    and for routed experts (one slice of a 3-D parameter)."""
    if isinstance(unit, ExpertMatrix):
        return unit.weight
    weight = unit.weight
    return weight.t() if isinstance(unit, Conv1D) else weight


def in_features(unit: Unit) -> int:
    return weight_matrix(unit).shape[1]
