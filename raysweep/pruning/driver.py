"""The one layer-by-layer driver behind every method.

1. ``capture_layer_calls`` runs the model once on the calibration batches with every decoder
   layer replaced by a pass-through stub, recording each layer's exact call (all positional and
   keyword arguments: ``attention_mask`` may be None, RoPE may arrive as ``position_embeddings``,
   per-layer masks such as sliding windows differ by layer). Caches are dropped. The last stub
   stops the forward, so the final norm and LM head never run.
2. ``walk_layers`` moves one decoder layer at a time to ``device`` and replays the recorded calls
   with the current hidden states: a statistics pass with pre-hooks on the layer's prunable
   modules, then the caller's ``process`` (prune, or keep the statistics), then, unless the
   statistics pass already produced them, a propagation pass whose outputs are the next layer's
   inputs. A statistics pass whose outputs are not needed stops as soon as the last prunable
   module has seen its input (the rest of the layer is never computed); the last layer is not
   propagated. Activations stay in the model dtype; statistics are fp32.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import Cache

from raysweep.pruning.architecture import (
    DecoderStack,
    Unit,
    find_decoder_stack,
    prunable_modules,
)
from raysweep.pruning.dsnot import accumulate_sums
from raysweep.pruning.experts import ExpertMatrix, recording_routed_inputs
from raysweep.pruning.sparsegpt import accumulate_hessian, new_hessian
from raysweep.pruning.statistics import LayerStatistics, StatisticsKind
from raysweep.pruning.wanda import accumulate_sqnorm, new_sqnorm


class _StopForward(Exception):
    """Raised by the last layer's stub: nothing after the decoder stack is needed."""


class _LayerStatisticsComplete(Exception):
    """Raised once every prunable module of the layer has seen its input in this call."""


@dataclass
class LayerCall:
    """One recorded call of a decoder layer, with the hidden states taken out."""

    args: tuple[Any, ...]  # positional arguments after the hidden states
    kwargs: dict[str, Any]
    hidden_positional: bool

    def __call__(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        if self.hidden_positional:
            out = layer(hidden, *self.args, **self.kwargs)
        else:
            out = layer(*self.args, hidden_states=hidden, **self.kwargs)
        return out if isinstance(out, torch.Tensor) else out[0]


def _drop_cache(value: Any) -> Any:
    return None if isinstance(value, Cache) else value


def _record(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[torch.Tensor, LayerCall]:
    kwargs = {k: _drop_cache(v) for k, v in kwargs.items()}
    if "use_cache" in kwargs:
        kwargs["use_cache"] = False
    if args:
        rest = tuple(_drop_cache(a) for a in args[1:])
        return args[0], LayerCall(rest, kwargs, hidden_positional=True)
    hidden = kwargs.pop("hidden_states")
    return hidden, LayerCall((), kwargs, hidden_positional=False)


@dataclass
class Activations:
    """Hidden states entering the current layer, per batch, and every layer's recorded calls."""

    hidden: list[torch.Tensor]  # per batch: (batch, seqlen, hidden) in the model dtype
    calls: list[list[LayerCall]]  # [layer][batch]

    @property
    def num_tokens(self) -> int:
        return sum(h.shape[0] * h.shape[1] for h in self.hidden)

    def run(self, index: int, layer: nn.Module, update: bool) -> None:
        for b, call in enumerate(self.calls[index]):
            out = call(layer, self.hidden[b])
            if update:
                self.hidden[b] = out


def _outside_stack(model: nn.Module, stack: nn.ModuleList) -> Iterator[nn.Module]:
    """Maximal submodules that do not contain the decoder stack (embeddings, rotary, norm, head)."""
    for child in model.children():
        if child is stack:
            continue
        if any(m is stack for m in child.modules()):
            yield from _outside_stack(child, stack)
        else:
            yield child


def _module_device(module: nn.Module) -> torch.device | None:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return None


@contextmanager
def _on_device(modules: list[nn.Module], device: torch.device) -> Iterator[None]:
    homes = [_module_device(m) for m in modules]
    for module, home in zip(modules, homes, strict=True):
        if home is not None and home != device:
            module.to(device)
    try:
        yield
    finally:
        for module, home in zip(modules, homes, strict=True):
            if home is not None and home != device:
                module.to(home)


class _NotChained(Exception):
    """A layer was not handed the object the previous layer returned."""


# What a stub returns, tried in order until the model's forward accepts it: a tensor (current
# transformers layers), a 1-tuple (models that read ``output[0]``), a pair (models that unpack
# ``hidden, attn_weights = layer(...)``, e.g. Bamba).
_OUTPUT_FORMS: tuple[Callable[[torch.Tensor], Any], ...] = (
    lambda h: h,
    lambda h: (h,),
    lambda h: (h, None),
    lambda h: (h, None, None),  # (hidden, state, attentions): RWKV
)


def capture_layer_calls(
    model: nn.Module,
    stack: DecoderStack,
    calibration: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> Activations:
    """Record the inputs and calls of every decoder layer for each calibration batch.

    Stubs return their input hidden states unchanged, in the first form of
    :data:`_OUTPUT_FORMS` the model's forward accepts (found on the first batch). Each stub checks
    that it receives exactly what the previous one returned: the driver relies on layer i+1
    reading layer i's output as is.
    """
    layers = stack.layers
    last = len(layers) - 1
    calls: list[list[LayerCall]] = [[] for _ in layers]
    hidden: list[torch.Tensor] = []
    returned: list[Any] = [None]
    form = [0]

    def make_stub(index: int) -> Callable[..., Any]:
        def stub(*args: Any, **kwargs: Any) -> Any:
            h, call = _record(args, kwargs)
            if index > 0 and h is not returned[0]:
                raise _NotChained
            calls[index].append(call)
            if index == 0:
                hidden.append(h)
            if index == last:
                raise _StopForward
            returned[0] = h
            return _OUTPUT_FORMS[form[0]](h)

        return stub

    outside = list(_outside_stack(model, layers))
    for index, layer in enumerate(layers):
        layer.forward = make_stub(index)  # type: ignore[method-assign]
    try:
        with _on_device(outside, device):
            for batch, start in enumerate(range(0, calibration.shape[0], batch_size)):
                ids = calibration[start : start + batch_size].to(device)
                while True:
                    try:
                        model(input_ids=ids, use_cache=False)
                    except _StopForward:
                        break
                    except (_NotChained, ValueError, TypeError) as err:
                        # Only the first batch tries forms; a last form that fails is an error.
                        if batch > 0 or form[0] == len(_OUTPUT_FORMS) - 1:
                            if isinstance(err, _NotChained):
                                raise ValueError(
                                    f"the decoder layers of {type(model).__name__} do not feed "
                                    "each other's outputs directly; layer-by-layer pruning "
                                    "cannot replay them"
                                ) from None
                            raise
                        form[0] += 1
                        del hidden[batch:]
                        for records in calls:
                            del records[batch:]
                    else:
                        raise ValueError(
                            f"{type(model).__name__}'s forward returned without running decoder "
                            f"layer {last} of {stack.prefix} (a layer skipped without other "
                            "inputs, or a stack the text forward never reaches): layer-by-layer "
                            "pruning cannot replay it"
                        )
    finally:
        for layer in layers:
            del layer.forward
    return Activations(hidden=hidden, calls=calls)


# Per statistics kind: (a zero sum for an input width, add a batch of inputs to it).
_ACCUMULATORS: dict[StatisticsKind, tuple[Callable[..., torch.Tensor], Callable[..., None]]] = {
    "hessian": (new_hessian, accumulate_hessian),
    "sqnorm": (new_sqnorm, accumulate_sqnorm),
}


@dataclass
class _Collector:
    """Adds each prunable unit's input statistics (fp32): forward pre-hooks on linears, a
    recorder for routed experts (each sees only the tokens its router sends it)."""

    kind: StatisticsKind
    expected: int  # linears plus experts modules in the layer
    stop_when_complete: bool  # skip the rest of the layer once all statistics are in
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    firsts: dict[str, torch.Tensor] = field(default_factory=dict)  # sum_t x per entry (in,)
    groups: dict[str, str] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)  # routed experts only
    # Inputs seen in the current layer call, by identity: modules fed the same tensor share stats.
    _seen: dict[int, tuple[str, torch.Tensor]] = field(default_factory=dict)
    _called: set[str] = field(default_factory=set)

    def hook(self, name: str) -> Callable[..., None]:
        def pre_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            self._add(name, args[0])
            self._done(name)

        return pre_hook

    def experts_done(self, name: str) -> Callable[..., None]:
        def post_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            self._done(name)

        return post_hook

    def routed(self, names: dict[tuple[int, int, str], str]) -> Callable[..., None]:
        """The recorder of ``experts.recording_routed_inputs``: unit names by (module, expert,
        projection)."""

        def record(experts: nn.Module, index: int, projection: str, rows: torch.Tensor) -> None:
            key = names[(id(experts), index, projection)]
            self.groups.setdefault(key, key)
            self._accumulate(key, rows)
            self.counts[key] = self.counts.get(key, 0.0) + rows.shape[0]

        return record

    def _done(self, name: str) -> None:
        self._called.add(name)
        if self.stop_when_complete and len(self._called) == self.expected:
            raise _LayerStatisticsComplete

    def _accumulate(self, key: str, x: torch.Tensor) -> None:
        new, accumulate = _ACCUMULATORS[self.kind]
        if key not in self.sums:
            self.sums[key] = new(x.shape[-1], x.device)
            self.firsts[key] = new_sqnorm(x.shape[-1], x.device)
        accumulate(self.sums[key], x)
        accumulate_sums(self.firsts[key], x)

    def _add(self, name: str, x: torch.Tensor) -> None:
        seen = self._seen.get(id(x))
        if seen is not None and seen[1] is x:
            self.groups.setdefault(name, seen[0])
            return
        key = self.groups.setdefault(name, name)
        self._seen[id(x)] = (key, x)
        self._accumulate(key, x)

    def unreached(self, units: dict[str, ExpertMatrix], device: torch.device) -> None:
        """Zero statistics (and a zero count) for routed experts that saw no token."""
        new = _ACCUMULATORS[self.kind][0]
        for name, unit in units.items():
            if name not in self.sums:
                self.groups[name] = name
                self.sums[name] = new(unit.weight.shape[1], device)
                self.firsts[name] = new_sqnorm(unit.weight.shape[1], device)
                self.counts[name] = 0.0

    def end_call(self) -> None:
        self._seen.clear()
        self._called.clear()


def _statistics_pass(
    acts: Activations,
    index: int,
    layer: nn.Module,
    modules: dict[str, Unit],
    kind: StatisticsKind,
    update: bool,
) -> LayerStatistics:
    linears = {n: m for n, m in modules.items() if isinstance(m, nn.Module)}
    routed = {n: u for n, u in modules.items() if isinstance(u, ExpertMatrix)}
    experts = {id(u.experts): u.experts for u in routed.values()}
    # Without ``update`` the layer's output is not needed: stop at the last unit's input.
    collector = _Collector(kind, len(linears) + len(experts), stop_when_complete=not update)
    handles = [m.register_forward_pre_hook(collector.hook(name)) for name, m in linears.items()]
    handles += [m.register_forward_hook(collector.experts_done(f"experts@{key}"))
                for key, m in experts.items()]  # fmt: skip
    names = {(id(u.experts), u.index, u.projection): n for n, u in routed.items()}
    try:
        with recording_routed_inputs(list(experts.values()), collector.routed(names)):
            for b, call in enumerate(acts.calls[index]):
                try:
                    out = call(layer, acts.hidden[b])
                except _LayerStatisticsComplete:
                    out = None
                collector.end_call()
                if update:
                    acts.hidden[b] = out
    finally:
        for handle in handles:
            handle.remove()
    # Modules the layer reads without calling them (Mamba's dt_proj weight): no inputs to see.
    uncalled = sorted(set(linears) - set(collector.groups))
    collector.unreached(routed, acts.hidden[0].device if acts.hidden else torch.device("cpu"))
    return LayerStatistics(
        kind, collector.sums, collector.groups, float(acts.num_tokens), collector.counts,
        uncalled, collector.firsts,
    )  # fmt: skip


@dataclass
class PhaseTimer:
    """Accumulated wall time per phase, in seconds."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


LayerProcess = Callable[[int, dict[str, Unit], LayerStatistics | None], None]


def walk_layers(
    model: nn.Module,
    calibration: torch.Tensor | None,
    device: torch.device,
    *,
    kind: StatisticsKind | None,
    process: LayerProcess,
    dense_propagation: bool,
    batch_size: int,
    timer: PhaseTimer,
) -> None:
    """Visit every decoder layer on ``device`` and call ``process(index, modules, stats)``.

    ``modules`` maps full dotted names to the layer's prunable modules. With ``kind=None`` no
    calibration data is used (stats is None). With ``dense_propagation`` the statistics pass also
    produces the next layer's inputs (dense model activations); otherwise the inputs are
    recomputed after ``process`` (the sequential scheme: later layers see pruned predecessors).
    """
    stack = find_decoder_stack(model)
    acts: Activations | None = None
    if kind is not None:
        if calibration is None:
            raise ValueError("this method needs a calibration tensor (n_samples, seqlen)")
        with timer.phase("capture"):
            acts = capture_layer_calls(model, stack, calibration, batch_size, device)
    last = len(stack.layers) - 1
    for index, layer in enumerate(stack.layers):
        modules = {f"{stack.prefix}.{index}.{n}": m for n, m in prunable_modules(layer).items()}
        with _on_device([layer], device):
            stats = None
            if acts is not None and kind is not None:
                with timer.phase("statistics"):
                    stats = _statistics_pass(acts, index, layer, modules, kind, dense_propagation)
            with timer.phase("process"):
                process(index, modules, stats)
            del stats
            if acts is not None and not dense_propagation and index < last:
                with timer.phase("propagate"):
                    acts.run(index, layer, update=True)
        if acts is not None:
            acts.calls[index] = []  # free this layer's recorded masks and embeddings
