"""The routed experts of fused mixture-of-experts blocks, as prunable matrices.

transformers 5 stores an MoE block's routed experts as 3-D parameters of one experts module
(``gate_up_proj`` (experts, 2*I, H) or ``up_proj`` (experts, I, H), and ``down_proj``
(experts, H, I); transposed layouts hold (experts, in, out)). Every such class is decorated by
``transformers.integrations.moe.use_experts_implementation``, which records the layout on each
instance (``is_transposed``, ``is_concatenated``, ``has_bias``, ``has_gate``,
``has_post_expert_norm``) and dispatches ``forward`` through ``ExpertsInterface`` by the config's
``_experts_implementation``. raysweep reads those attributes (:func:`layout`) and nothing
model-specific. One other form exists in transformers 5.25 (Llama 4's experts): the same 3-D
``gate_up_proj`` / ``down_proj`` parameters, undecorated, whose ``forward`` takes only the hidden
states, every expert fed every token pre-scaled by its routing score (zero rows: tokens the router
did not send). :func:`layout` recognises it from that structure (one-argument forward, the
module's ``hidden_size`` telling the storage orientation); a 3-D experts parameter in any other
form is not read, and the architecture check refuses the model before any work.

- each (expert, projection) is an :class:`ExpertMatrix`, pruned as if it were its own linear
  layer (rows are output features, columns input features, whatever the storage layout);
- statistics come only from the tokens the router sends to that expert: during a statistics pass
  the experts module is switched to :func:`routed_experts_forward`, registered in
  ``ExpertsInterface``, which computes what the model's own implementations compute, one expert
  at a time, and hands each expert's input rows to a recorder.
"""

from __future__ import annotations

import functools
import inspect
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


@dataclass(frozen=True)
class ExpertsLayout:
    """How an experts module stores and dispatches its experts.

    ``routed_call``: ``forward(hidden (tokens, H), top_k_index, top_k_weights)`` as
    ``ExpertsInterface`` dispatches it; otherwise ``forward(hidden (experts * tokens, H))`` with
    every expert's block of rows scaled by its routing score (zero where not routed).
    """

    is_transposed: bool  # stored (experts, in, out)
    has_gate: bool  # a concatenated gate|up projection
    has_bias: bool
    routed_call: bool


@functools.cache  # per class: layout() runs on every expert weight access
def _one_argument_forward(cls: type) -> bool:
    try:
        params = list(inspect.signature(cls.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return False
    return len(params) == 1 and params[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD
    )  # fmt: skip


def layout(module: nn.Module) -> ExpertsLayout | None:
    """The module's experts layout, or None when it is not an experts module raysweep reads."""
    down = getattr(module, "down_proj", None)
    if not isinstance(down, torch.Tensor) or down.dim() != 3:
        return None
    if all(hasattr(module, flag) for flag in _LAYOUT_FLAGS):
        return ExpertsLayout(bool(module.is_transposed), bool(module.has_gate),
                             bool(module.has_bias), routed_call=True)  # fmt: skip
    gate_up = getattr(module, "gate_up_proj", None)
    hidden = getattr(module, "hidden_size", None)
    if (
        isinstance(gate_up, torch.Tensor) and gate_up.dim() == 3 and isinstance(hidden, int)
        and _one_argument_forward(type(module))
    ):  # fmt: skip
        transposed = gate_up.shape[1] == hidden and down.shape[2] == hidden
        if transposed or (gate_up.shape[2] == hidden and down.shape[1] == hidden):
            return ExpertsLayout(transposed, has_gate=True, has_bias=False, routed_call=False)
    return None


def is_fused_experts(module: nn.Module) -> bool:
    """An experts module whose layout raysweep reads (see :func:`layout`)."""
    return layout(module) is not None


def _layout(experts: nn.Module) -> ExpertsLayout:
    found = layout(experts)
    if found is None:
        raise TypeError(f"{type(experts).__name__} is not an experts module raysweep reads")
    return found


def projections(experts: nn.Module) -> tuple[str, ...]:
    """The 3-D weight parameters of an experts module, in forward order."""
    return ("gate_up_proj" if _layout(experts).has_gate else "up_proj", "down_proj")


def has_bias(experts: nn.Module) -> bool:
    return _layout(experts).has_bias


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
        return w.t() if _layout(self.experts).is_transposed else w


def expert_matrices(experts: nn.Module) -> dict[str, ExpertMatrix]:
    """``{"<index>.<projection>": ExpertMatrix}`` for every expert, expert by expert."""
    return {
        f"{e}.{p}": ExpertMatrix(experts, p, e)
        for e in range(num_experts(experts))
        for p in projections(experts)
    }


def _linear(x: torch.Tensor, experts: nn.Module, projection: str, index: int) -> torch.Tensor:
    shape = _layout(experts)
    w = getattr(experts, projection)[index]
    out = x @ w if shape.is_transposed else nn.functional.linear(x, w)
    if shape.has_bias:
        out = out + getattr(experts, f"{projection}_bias")[index]
    return out


def _activate(experts: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """The expert's intermediate activation from its first projection's output."""
    if not _layout(experts).has_gate:
        return experts.act_fn(h)
    if hasattr(experts, "_apply_gate"):
        return experts._apply_gate(h)
    gate, up = h.chunk(2, dim=-1)  # the undecorated form concatenates gate first
    return up * experts.act_fn(gate)


def _record_expert(
    record: Recorder, experts: nn.Module, index: int, x: torch.Tensor
) -> torch.Tensor:
    """Report expert ``index``'s inputs to both projections; its intermediate activation."""
    up_name, down_name = projections(experts)
    record(experts, index, up_name, x)
    h = _activate(experts, _linear(x, experts, up_name, index))
    record(experts, index, down_name, h)
    return h


def _prescaled_rows(module: nn.Module, hidden: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """(expert, its routed rows) of an undecorated experts call: hidden is (experts * tokens, H)
    with rows of tokens not sent to an expert zeroed by their routing score."""
    blocks = hidden.reshape(num_experts(module), -1, hidden.shape[-1])
    for expert in range(blocks.shape[0]):
        rows = blocks[expert]
        routed = rows[rows.ne(0).any(dim=-1)]
        if routed.shape[0]:
            yield expert, routed


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
            h = _record_expert(record, self, expert, x)
        else:
            h = _activate(self, _linear(x, self, up_name, expert))
        y = _linear(h, self, down_name, expert)
        if getattr(self, "has_post_expert_norm", False):
            y = self.post_expert_norm(y)
        y = y * top_k_weights[token_idx, slot, None]
        out.index_add_(0, token_idx, y.to(out.dtype))
    return out


ExpertsInterface.register(IMPLEMENTATION, routed_experts_forward)


@contextmanager
def recording_routed_inputs(experts_modules: list[nn.Module], recorder: Recorder) -> Iterator[None]:
    """Report every expert's inputs to ``recorder`` while the block runs: decorated modules are
    routed through :func:`routed_experts_forward`; an undecorated module's own forward runs, and a
    pre-hook reports the rows each expert is sent."""
    routed = [m for m in experts_modules if _layout(m).routed_call]
    configs = {id(m.config): m.config for m in routed}
    saved = {key: config._experts_implementation for key, config in configs.items()}
    for module in routed:
        setattr(module, _RECORDER, recorder)
    for config in configs.values():
        config._experts_implementation = IMPLEMENTATION

    def prescaled(module: nn.Module, args: tuple[Any, ...]) -> None:
        for expert, rows in _prescaled_rows(module, args[0]):
            _record_expert(recorder, module, expert, rows)

    handles = [m.register_forward_pre_hook(prescaled) for m in experts_modules
               if not _layout(m).routed_call]  # fmt: skip
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for key, config in configs.items():
            config._experts_implementation = saved[key]
        for module in routed:
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
            given = [*args, *kwargs.values()]
            if not _layout(module).routed_call:
                for expert, rows in _prescaled_rows(module, given[0]):
                    counts.tokens[row, expert] += rows.shape[0]
                return
            index = given[1].reshape(-1)  # (hidden, top_k_index, weights)
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
