"""The routed experts of fused mixture-of-experts blocks, as prunable matrices.

transformers 5 stores an MoE block's routed experts as 3-D parameters of one experts module
(``gate_up_proj`` (experts, 2*I, H) or ``up_proj`` (experts, I, H), and ``down_proj``
(experts, H, I); transposed layouts hold (experts, in, out)). Every such class is decorated by
``transformers.integrations.moe.use_experts_implementation``, which records the layout on each
instance (``is_transposed``, ``is_concatenated``, ``has_bias``, ``has_gate``,
``has_post_expert_norm``) and dispatches ``forward`` through ``ExpertsInterface`` by the config's
``_experts_implementation``. raysweep reads those attributes and nothing model-specific:

- each (expert, projection) is an :class:`ExpertMatrix`, pruned as if it were its own linear
  layer (rows are output features, columns input features, whatever the storage layout);
- statistics come only from the tokens the router sends to that expert: during a statistics pass
  the experts module is switched to :func:`routed_experts_forward`, registered in
  ``ExpertsInterface``, which computes what the model's own implementations compute, one expert
  at a time, and hands each expert's input rows to a recorder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers.integrations.moe import ExpertsInterface

IMPLEMENTATION = "raysweep_routed"
_LAYOUT_FLAGS = ("is_transposed", "has_gate", "has_bias")
_RECORDER = "_raysweep_recorder"
# Fallbacks for experts that the calibration set reaches with too few tokens.
EXPERT_FALLBACKS: tuple[str, ...] = ("layer", "magnitude", "dense")

# recorder(experts_module, expert_index, projection_name, rows (tokens, in_features))
Recorder = Callable[[nn.Module, int, str, torch.Tensor], None]


def is_fused_experts(module: nn.Module) -> bool:
    """An experts module laid out as ``use_experts_implementation`` describes."""
    if not all(hasattr(module, flag) for flag in _LAYOUT_FLAGS):
        return False
    down = getattr(module, "down_proj", None)
    return isinstance(down, torch.Tensor) and down.dim() == 3


def projections(experts: nn.Module) -> tuple[str, ...]:
    """The 3-D weight parameters of an experts module, in forward order."""
    return ("gate_up_proj" if experts.has_gate else "up_proj", "down_proj")


def num_experts(experts: nn.Module) -> int:
    return int(experts.down_proj.shape[0])


@dataclass(frozen=True, eq=False)
class ExpertMatrix:
    """One routed expert's projection, seen as a linear layer's ``(out, in)`` weight."""

    experts: nn.Module
    projection: str  # "gate_up_proj" | "up_proj" | "down_proj"
    index: int

    @property
    def weight(self) -> torch.Tensor:
        """A view of the expert's slice as (out_features, in_features)."""
        w = getattr(self.experts, self.projection)[self.index]
        return w.t() if self.experts.is_transposed else w


def expert_matrices(experts: nn.Module) -> dict[str, ExpertMatrix]:
    """``{"<index>.<projection>": ExpertMatrix}`` for every expert, expert by expert."""
    return {
        f"{e}.{p}": ExpertMatrix(experts, p, e)
        for e in range(num_experts(experts))
        for p in projections(experts)
    }


def _linear(x: torch.Tensor, experts: nn.Module, projection: str, index: int) -> torch.Tensor:
    w = getattr(experts, projection)[index]
    out = x @ w if experts.is_transposed else nn.functional.linear(x, w)
    if experts.has_bias:
        out = out + getattr(experts, f"{projection}_bias")[index]
    return out


def routed_experts_forward(
    self: nn.Module,
    hidden_states: torch.Tensor,  # (tokens, hidden)
    top_k_index: torch.Tensor,  # (tokens, top_k) expert ids
    top_k_weights: torch.Tensor,  # (tokens, top_k) routing weights
) -> torch.Tensor:
    """The experts' output, one expert at a time, reporting each expert's inputs to a recorder.

    Same arithmetic as transformers' eager and batched implementations: projection, gate (the
    class's own ``_apply_gate``) or activation, down projection, optional post-expert norm,
    routing weight, sum over the token's experts.
    """
    record: Recorder | None = getattr(self, _RECORDER, None)
    up_name, down_name = projections(self)
    out = torch.zeros_like(hidden_states)
    hit = torch.unique(top_k_index)
    for expert in hit.tolist():
        if expert < 0 or expert >= num_experts(self):
            continue  # sentinel ids of expert parallelism: no local expert
        token_idx, slot = torch.where(top_k_index == expert)
        x = hidden_states[token_idx]
        if record is not None:
            record(self, expert, up_name, x)
        h = _linear(x, self, up_name, expert)
        h = self._apply_gate(h) if self.has_gate else self.act_fn(h)
        if record is not None:
            record(self, expert, down_name, h)
        y = _linear(h, self, down_name, expert)
        if getattr(self, "has_post_expert_norm", False):
            y = self.post_expert_norm(y)
        y = y * top_k_weights[token_idx, slot, None]
        out.index_add_(0, token_idx, y.to(out.dtype))
    return out


ExpertsInterface.register(IMPLEMENTATION, routed_experts_forward)


@contextmanager
def recording_routed_inputs(experts_modules: list[nn.Module], recorder: Recorder) -> Iterator[None]:
    """Route these experts modules through :func:`routed_experts_forward` with ``recorder``."""
    configs = {id(m.config): m.config for m in experts_modules}
    saved = {key: config._experts_implementation for key, config in configs.items()}
    for module in experts_modules:
        setattr(module, _RECORDER, recorder)
    for config in configs.values():
        config._experts_implementation = IMPLEMENTATION
    try:
        yield
    finally:
        for key, config in configs.items():
            config._experts_implementation = saved[key]
        for module in experts_modules:
            delattr(module, _RECORDER)


@dataclass
class RoutingCounts:
    """Tokens routed to each (MoE layer, expert), accumulated over forward passes."""

    layers: list[str]  # experts modules, in model order
    tokens: torch.Tensor  # (layers, experts) int64

    def metrics(self, min_tokens: int) -> dict[str, float]:
        """``expert_coverage``: share of (layer, expert) pairs with at least ``min_tokens``;
        ``routing_entropy``: mean over layers of the expert-load entropy over log(experts)."""
        if not self.layers:
            return {}
        load = self.tokens.double()
        share = load / load.sum(dim=1, keepdim=True).clamp_min(1)
        entropy = -(share * share.clamp_min(1e-300).log()).sum(dim=1)
        experts = self.tokens.shape[1]
        norm = torch.log(torch.tensor(float(experts))) if experts > 1 else torch.tensor(1.0)
        return {
            "expert_coverage": float((self.tokens >= min_tokens).double().mean()),
            "routing_entropy": float((entropy / norm).mean()),
        }


@contextmanager
def counting_routed_tokens(model: nn.Module) -> Iterator[RoutingCounts]:
    """Count, during the block, the tokens each routed expert of ``model`` is sent."""
    modules = [(n, m) for n, m in model.named_modules() if is_fused_experts(m)]
    width = max((num_experts(m) for _, m in modules), default=0)
    counts = RoutingCounts(
        [n for n, _ in modules], torch.zeros(len(modules), width, dtype=torch.long)
    )

    def hook(row: int) -> Callable[..., None]:
        def pre_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            index = [*args, *kwargs.values()][1].reshape(-1)  # (hidden, top_k_index, weights)
            index = index[(index >= 0) & (index < width)]
            counts.tokens[row] += torch.bincount(index.cpu(), minlength=width)

        return pre_hook

    handles = [
        m.register_forward_pre_hook(hook(i), with_kwargs=True) for i, (_, m) in enumerate(modules)
    ]
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()
