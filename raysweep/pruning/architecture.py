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

import re
from dataclasses import dataclass

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from raysweep.pruning.experts import ExpertMatrix, expert_matrices, has_bias, is_fused_experts

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
        if isinstance(unit, ExpertMatrix) and has_bias(unit.experts):
            ids.add(id(getattr(unit.experts, f"{unit.projection}_bias")))
    return ids


def decoder_matrices(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight matrix of the decoder layers, routed experts one by one, as (out, in).

    Prunable units first (by unit name), then the other parameters of two or more dimensions
    (by parameter name: routers, convolution kernels, state-space matrices).
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


# Why a decoder parameter stays dense. ``ignored``: matched by the caller's ignore patterns.
DENSE_REASONS: tuple[str, ...] = (
    "router", "depthwise_conv", "state_space", "vector", "ignored", "fallback_dense"
)  # fmt: skip


@dataclass(frozen=True)
class DecoderAccount:
    """Every parameter of the decoder layers, by what pruning does with it.

    ``units``: the prunable units by full name. ``dense``: full parameter name -> (reason, the
    parameter) for everything no method prunes: routers and shared-expert gates (``router``),
    depthwise convolution kernels of short-convolution and state-space mixers
    (``depthwise_conv``), matrices a convolutional mixer holds itself such as Mamba's ``A_log``
    (``state_space``), and every parameter with at most one dimension above 1: norm scales,
    biases, ``A_log`` / ``D`` / ``dt_bias`` vectors (``vector``). ``unreadable``: full name ->
    why no method can prune it although it is a weight matrix; a model with any is refused.
    ``total``: elements of all decoder parameters (each parameter once).
    """

    units: dict[str, Unit]
    dense: dict[str, tuple[str, torch.Tensor]]
    unreadable: dict[str, str]
    total: int


def _matrix_dims(param: torch.Tensor) -> int:
    return sum(1 for size in param.shape if size > 1)


def _is_depthwise_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv1d | nn.Conv2d) and module.groups == module.in_channels > 1


def account_decoder(model: nn.Module) -> DecoderAccount:
    """Classify every decoder-layer parameter (see :class:`DecoderAccount`)."""
    stack = find_decoder_stack(model)
    units: dict[str, Unit] = {}
    dense: dict[str, tuple[str, torch.Tensor]] = {}
    unreadable: dict[str, str] = {}
    seen: set[int] = set()
    total = 0
    for index, layer in enumerate(stack.layers):
        prefix = f"{stack.prefix}.{index}"
        layer_units = prunable_modules(layer)
        weights = {id(weight_of(u)) for u in layer_units.values()}
        covered = _covered(layer, layer_units)
        for name, unit in layer_units.items():
            if id(weight_of(unit)) in seen:
                unreadable[f"{prefix}.{name}"] = "shared by several decoder layers"
            else:
                units[f"{prefix}.{name}"] = unit
        reason_of: dict[int, str] = {}
        for module in dense_by_design(layer).values():
            reason_of.update({id(p): "router" for p in module.parameters()})
        for module in layer.modules():
            if _is_depthwise_conv(module):
                reason_of.update({id(p): "depthwise_conv" for p in module.parameters()})
            if any(_is_depthwise_conv(c) for c in module.children()):
                # A convolutional sequence mixer's own tensors (Mamba's A_log (inner, state)).
                reason_of.update({id(p): "state_space" for p in module.parameters(recurse=False)
                                  if id(p) not in reason_of})  # fmt: skip
        for name, param in layer.named_parameters(remove_duplicate=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            total += param.numel()
            if id(param) in weights:
                continue
            reason = reason_of.get(id(param))
            if reason is None and _matrix_dims(param) <= 1:
                reason = "vector"  # norm scales, biases, A_log / D / dt_bias
            if reason is None and id(param) in covered:
                reason = "vector"  # routed experts' biases (experts, out): a vector per expert
            full = f"{prefix}.{name}"
            if reason is not None:
                dense[full] = (reason, param)
            elif param.dim() >= 3:
                unreadable[full] = f"a {param.dim()}-D tensor in a layout raysweep cannot read"
            else:
                unreadable[full] = "a weight matrix outside any linear layer"
    return DecoderAccount(units, dense, unreadable, total)


def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text.removeprefix("re:"))


def ignored_units(names: list[str] | dict[str, Unit], patterns: tuple[str, ...]) -> set[str]:
    """Unit names matched (``re.fullmatch``; an ``re:`` prefix is allowed) by any pattern.

    ValueError naming each pattern that is not a regular expression or matches no unit.
    """
    compiled = []
    for text in patterns:
        try:
            compiled.append((text, _pattern(text)))
        except re.error as err:
            raise ValueError(
                f"ignore pattern {text!r} is not a regular expression: {err}"
            ) from None
    matched: set[str] = set()
    for text, pattern in compiled:
        hits = {n for n in names if pattern.fullmatch(n)}
        if not hits:
            example = next(iter(names), "")
            raise ValueError(
                f"ignore pattern {text!r} matches no prunable module (full names such as "
                f"{example!r}; patterns must match a whole name)"
            )
        matched |= hits
    return matched


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
