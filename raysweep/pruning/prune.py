"""Public entry points: ``prune_model``, ``collect_statistics``, ``stream_statistics``,
``measure_sparsity``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from raysweep.names import (
    DSNOT_CYCLES,
    DSNOT_THRESHOLD,
    OWL_LAMBDA,
    OWL_M,
    REFINES,
    NMStructure,
    parse_structure,
)
from raysweep.pruning.allocation import (
    check_allocation,
    layer_share,
    owl_targets,
    uniform_targets,
)
from raysweep.pruning.architecture import (
    DENSE_REASONS,
    DecoderAccount,
    Unit,
    account_decoder,
    decoder_matrices,
    find_decoder_stack,
    ignored_units,
    iter_prunable,
    prunable_modules,
    weight_matrix,
)
from raysweep.pruning.driver import PhaseTimer, walk_layers
from raysweep.pruning.dsnot import dsnot_refine
from raysweep.pruning.experts import ExpertMatrix
from raysweep.pruning.masks import check_sparsity
from raysweep.pruning.memory import track_peak_memory
from raysweep.pruning.methods import (
    DEFAULT_MIN_EXPERT_TOKENS,  # noqa: F401 - re-exported
    METHOD_TABLE,
    Method,
    MethodOptions,
)
from raysweep.pruning.methods import method as method_row
from raysweep.pruning.statistics import LayerStatistics, StatisticsKind
from raysweep.pruning.store import LayerSink, StatisticsProvider

MODES: tuple[str, ...] = ("sequential", "oneshot")
# Tokens per forward batch when batch_size is not given. A GPU wants large batches (efficient
# matmuls, few kernel launches). On a CPU the elementwise work of a layer (norms, RoPE, SiLU,
# residual adds, statistics) is bound by memory bandwidth: about 512 tokens keep a layer's
# intermediates near the core's L2 cache, which made a Wanda prune of a 33 M-parameter Llama
# about 1.2x faster than batches of 8192 tokens (benchmarks/prune.py).
_CPU_TOKENS_PER_BATCH = 512
_ACCELERATOR_TOKENS_PER_BATCH = 8192


@dataclass
class PruneReport:
    """What one ``prune_model`` call did. Sparsities count exact zeros in the pruned weights.

    ``achieved_sparsity``: zeros over the prunable matrices the target applied to (every unit
    not ignored; routed experts left dense by a fallback count as dense).
    ``decoder_zero_fraction``: zeros over every parameter of the decoder layers. ``dense_kept``:
    share of the decoder parameters kept dense, by reason (:data:`DENSE_REASONS`).
    ``statistics_fallback``: layer-relative names of modules pruned without input statistics
    (their weight is read without calling the module) -> the rule used (``magnitude``).
    """

    achieved_sparsity: float
    per_module: dict[str, float]
    timings: dict[str, float]  # seconds per phase, plus "total"
    peak_memory_bytes: dict[str, int]  # "host" (process RSS), "device" (CUDA allocation, 0 on CPU)
    method: str = ""
    structure: str = "unstructured"
    sparsity: float = 0.0
    mode: str = "sequential"
    num_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    decoder_zero_fraction: float = 0.0
    dense_kept: dict[str, float] = field(default_factory=dict)
    statistics_fallback: dict[str, str] = field(default_factory=dict)
    ignored: int = 0  # prunable units kept dense by the caller's ignore patterns
    allocation: str = "uniform"
    layer_sparsity: list[float] = field(default_factory=list)  # target of each decoder layer
    layer_structure: list[str] = field(default_factory=list)  # "unstructured" or its N:M
    outlier_shares: list[float] | None = None  # OWL: percent of outlier scores per layer
    refine: str = "none"
    refined_units: int = 0  # units whose mask DSnoT refined


def measure_sparsity(
    model: nn.Module, ignore: set[str] | frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Exact zero fractions of the decoder, and what stayed dense by design.

    ``total``: zeros over the prunable units not in ``ignore`` (full unit names);
    ``per_module``: every decoder matrix (units, routed experts one by one, routers, kernels);
    ``decoder_zero_fraction``: zeros over every decoder-layer parameter; ``dense_kept``: share of
    the decoder parameters kept dense per reason (ignored units under ``ignored``);
    ``zeros`` / ``weights``: the counts behind ``total``.
    """
    account = account_decoder(model)
    per_module = {name: float((w == 0).sum()) / w.numel()
                  for name, w in decoder_matrices(model).items()}  # fmt: skip
    zeros = weights = all_zeros = 0
    kept = dict.fromkeys(DENSE_REASONS, 0)
    for name, unit in account.units.items():
        w = weight_matrix(unit)
        z = int((w == 0).sum())
        all_zeros += z
        if name in ignore:
            kept["ignored"] += w.numel()
        else:
            zeros += z
            weights += w.numel()
    for reason, param in account.dense.values():
        kept[reason] += param.numel()
        all_zeros += int((param == 0).sum())
    total = max(1, account.total)
    return {
        "total": zeros / weights if weights else 0.0,
        "per_module": per_module,
        "decoder_zero_fraction": all_zeros / total,
        "dense_kept": {k: v / total for k, v in kept.items() if v},
        "zeros": zeros,
        "weights": weights,
    }


class UnprunableWeights(ValueError):
    """The decoder holds weight matrices that no method can prune: a sparsity would be a lie."""


def check_prunable(model: nn.Module) -> DecoderAccount:
    """The decoder's account; :class:`UnprunableWeights` naming each weight matrix that is
    neither prunable nor dense by design (norms, routers, convolution kernels, SSM tensors)."""
    account = account_decoder(model)
    if account.unreadable:
        shown = "; ".join(f"{n}: {why}" for n, why in list(account.unreadable.items())[:3])
        raise UnprunableWeights(
            f"{type(model).__name__} has {len(account.unreadable)} weight tensors in its decoder "
            f"layers that no pruning method handles ({shown}); its achieved sparsity would not "
            "reach the target"
        )
    return account


def _resolve_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    home = next(model.parameters()).device
    if home.type == "cpu" and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return home


def default_batch_size(seqlen: int, device: torch.device | str) -> int:
    """Calibration samples per forward batch when none is given: whole samples, at least one."""
    cpu = torch.device(device).type == "cpu"
    tokens = _CPU_TOKENS_PER_BATCH if cpu else _ACCELERATOR_TOKENS_PER_BATCH
    return max(1, tokens // max(1, seqlen))


def _batch_size(
    calibration: torch.Tensor | None, batch_size: int | None, device: torch.device
) -> int:
    if batch_size is not None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return batch_size
    if calibration is None:
        return 1
    return default_batch_size(calibration.shape[1], device)


def _check_calibration(calibration: torch.Tensor | None) -> None:
    if calibration is None:
        return
    if calibration.dim() != 2 or calibration.dtype != torch.long or calibration.numel() == 0:
        raise ValueError(
            "calibration must be a non-empty LongTensor (n_samples, seqlen), got "
            f"{tuple(calibration.shape)} {calibration.dtype}"
        )


def _pool_key(name: str, unit: Unit) -> str | None:
    """``<block>.experts.*.<projection>`` for a routed expert's unit, None for a linear."""
    if not isinstance(unit, ExpertMatrix):
        return None
    head, _, _ = name.rpartition(f".{unit.index}.{unit.projection}")
    return f"{head}.*.{unit.projection}"


def _expert_fallbacks(
    modules: dict[str, Unit], stats: LayerStatistics | None, options: MethodOptions
) -> dict[str, str]:
    """Routed experts' units whose expert saw fewer than ``min_expert_tokens``: unit -> policy."""
    if stats is None:
        return {}
    floor = options.min_expert_tokens
    return {
        name: options.expert_fallback
        for name, unit in modules.items()
        if isinstance(unit, ExpertMatrix) and stats.count(stats.groups[name]) < floor
    }


def _pooled(modules: dict[str, Unit], stats: LayerStatistics, key: str) -> torch.Tensor:
    """Statistics of a projection pooled over all experts of its block: every token entering
    the block (``top_k`` times over) for the first projection, every routed token's
    intermediate activation for the down projection."""
    members = [stats.for_module(n) for n, u in modules.items() if _pool_key(n, u) == key]
    pooled = members[0].clone()
    for part in members[1:]:
        pooled.add_(part)
    return pooled


@dataclass(frozen=True)
class Refinement:
    """DSnoT over a unit's base mask, from its input statistics (``sum x``, ``sum x^2``)."""

    cycles: int = DSNOT_CYCLES
    threshold: float = DSNOT_THRESHOLD

    def __call__(
        self, weight: torch.Tensor, mask: torch.Tensor, sqnorm: torch.Tensor,
        stats: LayerStatistics, name: str, nm: NMStructure | None,
    ) -> torch.Tensor:  # fmt: skip
        firsts = stats.first_moment(name).to(weight.device)
        return dsnot_refine(weight, mask, firsts, sqnorm, stats.count(stats.groups[name]),
                            max_cycles=self.cycles, update_threshold=self.threshold,
                            nm=nm)  # fmt: skip


def _refinement(refine: str, row: Method, cycles: int, threshold: float) -> Refinement | None:
    """The refinement ``refine`` names, checked against the method before any work."""
    if refine not in REFINES:
        raise ValueError(f"refine must be one of {REFINES}, got {refine!r}")
    if refine == "none":
        return None
    if row.statistics is None:
        raise ValueError(
            f"refine='dsnot' reads input means and variances from calibration statistics, which "
            f"{row.name} pruning never collects; use wanda or ria"
        )
    if row.mask is None:
        raise ValueError(
            f"refine='dsnot' refines the masks of mask methods (wanda, ria); {row.name} updates "
            "the weights it keeps, so a refined mask would not match them"
        )
    if cycles < 0 or threshold < 0:
        raise ValueError(f"dsnot_cycles and dsnot_threshold must be >= 0, got {cycles}, "
                         f"{threshold}")  # fmt: skip
    return Refinement(cycles, threshold)


def _prune_layer(
    modules: dict[str, Unit],
    stats: LayerStatistics | None,
    row: Method,
    sparsity: float,
    nm: NMStructure | None,
    options: MethodOptions,
    *,
    consume: bool = False,
    refine: Refinement | None = None,
) -> dict[str, Any]:
    """Prune one decoder layer's units in place (weights stay in their dtype and device).

    With ``consume`` the layer's statistics are not needed afterwards: SparseGPT overwrites its
    Hessians instead of copying them (one (in, in) buffer less at the widest projection).

    Units the layer reads without calling them (``stats.uncalled``) are pruned by magnitude.
    With ``refine`` every mask a mask method makes from a unit's own statistics is refined
    (DSnoT) before it is applied.

    Returns ``{"experts": routed experts in the layer, "fallback": experts that fell back,
    "uncalled": units pruned by magnitude for want of statistics}``.
    """
    expert_fallbacks = _expert_fallbacks(modules, stats, options)
    uncalled = [n for n in (stats.uncalled if stats is not None else []) if n in modules]
    fallbacks = {**expert_fallbacks, **dict.fromkeys(uncalled, "magnitude")}
    experts = sum(
        1 for n, u in modules.items() if isinstance(u, ExpertMatrix) and u.projection != "down_proj"
    )
    summary: dict[str, Any] = {
        "experts": experts,
        "fallback": sum(1 for n in expert_fallbacks if not n.endswith(".down_proj")),
        "uncalled": uncalled,
    }
    pooled: dict[str, torch.Tensor] = {}

    def evidence(name: str) -> tuple[str, torch.Tensor]:
        """(key, statistics) this unit is pruned from."""
        assert stats is not None
        if fallbacks.get(name) != "layer":
            return stats.groups[name], stats.for_module(name)
        key = _pool_key(name, modules[name])
        assert key is not None
        if key not in pooled:
            pooled[key] = _pooled(modules, stats, key)
        return key, pooled[key]

    by_key: dict[str, list[str]] = {}
    for name, unit in modules.items():
        view = weight_matrix(unit)
        policy = fallbacks.get(name)
        if policy == "dense":
            continue
        used = METHOD_TABLE["magnitude"] if policy == "magnitude" else row
        if used.mask is not None:
            evident = None if used.statistics is None else evidence(name)[1].to(view.device)
            mask = used.mask(view, evident, sparsity, nm, options)
            if refine is not None and policy is None:
                assert stats is not None and evident is not None
                mask = refine(view, mask, evident, stats, name, nm)
                summary["refined"] = summary.get("refined", 0) + 1
            view.masked_fill_(mask, 0.0)
        else:
            by_key.setdefault(evidence(name)[0], []).append(name)
    # A solve (SparseGPT): units sharing an input share statistics: solved stacked, masks still
    # per unit.
    assert not by_key or row.solve is not None
    for key, names in by_key.items():
        views = [weight_matrix(modules[n]) for n in names]
        device = views[0].device
        hessian = evidence(names[0])[1].to(device)
        owned = consume or key in pooled
        if consume and key in stats.sums:
            del stats.sums[key]  # solved below in place: the layer keeps only unsolved entries
        pooled.pop(key, None)
        pruned = row.solve(
            torch.cat([v.detach() for v in views]) if len(views) > 1 else views[0],
            hessian,
            sparsity,
            nm,
            options,
            segments=[v.shape[0] for v in views],
            name=", ".join(names),
            consume=owned,
        )
        for view, part in zip(views, pruned.split([v.shape[0] for v in views]), strict=True):
            view.copy_(part)
    return summary


def _statistics_kind(name: str) -> StatisticsKind:
    row = METHOD_TABLE.get(name)
    if row is None or row.statistics is None:
        readers = ", ".join(repr(m.name) for m in METHOD_TABLE.values() if m.statistics)
        raise ValueError(f"statistics exist for {readers}, got {name!r}")
    return row.statistics


def stream_statistics(
    model: nn.Module,
    calibration: torch.Tensor,
    sink: LayerSink,
    device: torch.device | str | None = None,
    method: str = "sparsegpt",
    *,
    batch_size: int | None = None,
) -> None:
    """Statistics of every prunable module from one dense forward pass, layer by layer.

    Calls ``sink(index, stats)`` once per decoder layer, in order, with that layer's
    :class:`LayerStatistics` (keys are full module names; fp32 on the CPU) as soon as it is
    complete; nothing keeps it afterwards, so memory holds one layer's statistics at a time
    (a :class:`~raysweep.pruning.store.StoreWriter` puts each on disk). ``method="sparsegpt"``
    keeps full Hessians (also usable by Wanda), ``"wanda"`` only their diagonals.
    """
    kind = _statistics_kind(method)
    _check_calibration(calibration)
    target = _resolve_device(model, device)

    def hand_over(index: int, modules: dict[str, Unit], stats: LayerStatistics | None) -> None:
        assert stats is not None
        sums = {k: v.to("cpu") for k, v in stats.sums.items()}
        firsts = {k: v.to("cpu") for k, v in stats.firsts.items()}
        stats.sums.clear()  # drop the device copies before the sink runs
        stats.firsts.clear()
        sink(index, LayerStatistics(kind, sums, stats.groups, stats.num_tokens, stats.counts,
                                    stats.uncalled, firsts))  # fmt: skip

    with _eval_no_grad(model):
        walk_layers(
            model,
            calibration,
            target,
            kind=kind,
            process=hand_over,
            dense_propagation=True,
            batch_size=_batch_size(calibration, batch_size, target),
            timer=PhaseTimer(),
        )


def collect_statistics(
    model: nn.Module,
    calibration: torch.Tensor,
    device: torch.device | str | None = None,
    method: str = "sparsegpt",
    *,
    batch_size: int | None = None,
) -> LayerStatistics:
    """Statistics of every prunable module from one dense forward pass, on the CPU in fp32.

    All layers in one :class:`LayerStatistics` (in memory: for tests and small models; see
    :func:`stream_statistics` for one layer at a time). ``method="sparsegpt"`` keeps full
    Hessians (also usable by Wanda), ``"wanda"`` only their diagonals.
    """
    kind = _statistics_kind(method)
    sums: dict[str, torch.Tensor] = {}
    groups: dict[str, str] = {}
    counts: dict[str, float] = {}
    uncalled: list[str] = []
    firsts: dict[str, torch.Tensor] = {}
    tokens = [0.0]

    def keep(index: int, stats: LayerStatistics) -> None:
        sums.update(stats.sums)
        firsts.update(stats.firsts)
        groups.update(stats.groups)
        counts.update(stats.counts)
        uncalled.extend(stats.uncalled)
        tokens[0] = stats.num_tokens

    stream_statistics(model, calibration, keep, device, method, batch_size=batch_size)
    return LayerStatistics(kind, sums, groups, tokens[0], counts, uncalled, firsts)


class _eval_no_grad:
    """Eval mode (no dropout) and no autograd for the duration; restores the training flag."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.was_training = model.training
        self.no_grad = torch.no_grad()

    def __enter__(self) -> None:
        self.model.eval()
        self.no_grad.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)


def prune_model(
    model: nn.Module,
    calibration: torch.Tensor | None,
    method: str,
    sparsity: float,
    structure: str = "unstructured",
    mode: str = "sequential",
    device: torch.device | str | None = None,
    statistics: LayerStatistics | StatisticsProvider | None = None,
    *,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    ignore: Sequence[str] = (),
    allocation: str = "uniform",
    owl_m: float = OWL_M,
    owl_lambda: float = OWL_LAMBDA,
    refine: str = "none",
    dsnot_cycles: int = DSNOT_CYCLES,
    dsnot_threshold: float = DSNOT_THRESHOLD,
    **method_options: Any,
) -> PruneReport:
    """Prune every decoder-layer linear of ``model`` in place; embeddings and LM head untouched.

    - ``calibration``: LongTensor (n_samples, seqlen) of token ids (unused by magnitude and by
      ``mode="oneshot"`` with ``statistics``).
    - ``method``: ``magnitude`` | ``wanda`` | ``sparsegpt`` (options ``damp``, ``block_size``).
    - ``structure``: ``"unstructured"`` or ``"N:M"`` (keep N of every M; sparsity must be (M-N)/M).
    - ``mode``: ``"sequential"`` (layer by layer; each layer's statistics come from the already
      pruned layers before it) or ``"oneshot"`` (statistics of the dense model: from
      ``statistics`` if given, with no forward pass at all; else each layer is pruned right
      after its statistics are collected from the dense activations, which the next layer
      reads).
    - ``statistics`` (one-shot only): a :class:`LayerStatistics` of the whole model, or a
      per-layer provider: any object with ``layer(index) -> LayerStatistics`` returning decoder
      layer ``index``'s statistics (full module names; e.g.
      :class:`~raysweep.pruning.store.MixedStatistics` over on-disk stores). A provider is asked
      for one layer at a time, just before that layer is pruned, and its result is dropped
      right after; an optional ``num_layers`` attribute is checked against the model before any
      work, an optional ``num_tokens`` is reported. Wanda takes the diagonal of Hessians.
    - ``device``: where each decoder layer is computed (default: the model's device, or CUDA if
      available); the model itself may stay on the CPU.
    - ``progress``: called as ``progress(done, num_layers)`` after each decoder layer is pruned.
    - ``ignore``: regular expressions (``re.fullmatch`` on full unit names, e.g.
      ``".*linear_attn.*"``; an ``re:`` prefix is allowed) of prunable modules to keep dense;
      each must match at least one.
    - ``allocation``: ``"uniform"`` (every layer at ``sparsity``) or ``"owl"`` (OWL's
      outlier-weighted per-layer sparsities, ``owl_m`` and ``owl_lambda``, from the dense
      model's statistics: ``statistics`` when given, else a dense pass over ``calibration``
      before the prune, one layer's statistics at a time). The unweighted mean of the layer
      sparsities is ``sparsity``, as the authors compute it; the report gives each layer's.
    - ``method="ria"``: RIA's saliency (options ``ria_alpha``, ``ria_per_row``).
    - ``refine``: ``"none"`` or ``"dsnot"`` (DSnoT prune-and-regrow on each mask of a mask
      method, ``dsnot_cycles`` and ``dsnot_threshold``; every row keeps its count).

    Parameters that are not projection matrices (norms, biases, routers, depthwise convolution
    kernels, state-space tensors) stay dense by design; the report gives their share. A weight
    matrix that is neither prunable nor one of those is an error before any work.
    """
    row = method_row(method)
    options = row.make_options(method_options)
    account = check_prunable(model)
    ignored = ignored_units(account.units, tuple(ignore))
    nm = parse_structure(structure)
    check_sparsity(sparsity, nm)
    stack = find_decoder_stack(model)
    check_allocation(allocation, sparsity, nm, owl_lambda, len(stack.layers))
    refinement = _refinement(refine, row, dsnot_cycles, dsnot_threshold)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    _check_calibration(calibration)
    kind = row.statistics
    target = _resolve_device(model, device)
    timer = PhaseTimer()
    start = time.perf_counter()
    num_tokens = 0 if calibration is None or kind is None else int(calibration.numel())
    provider = None
    if kind is not None and mode == "oneshot" and statistics is not None:
        provider, num_tokens = _statistics_provider(statistics, kind, model)

    experts = {"experts": 0, "fallback": 0, "refined": 0}
    uncalled: dict[str, str] = {}
    num_layers = len(stack.layers)
    # Statistics made for one layer (sequential, a provider) may serve as the solve's workspace;
    # a whole-model LayerStatistics belongs to the caller, who may prune with it again.
    transient = not isinstance(statistics, LayerStatistics)

    def prune(index: int, modules: dict[str, Unit], stats: LayerStatistics | None) -> None:
        kept = {n: u for n, u in modules.items() if n not in ignored}
        summary = _prune_layer(kept, stats, row, targets.sparsities[index],
                               targets.structures[index], options, consume=transient,
                               refine=refinement)  # fmt: skip
        for k in experts:
            experts[k] += summary.get(k, 0)
        prefix = f"{stack.prefix}.{index}."
        uncalled.update({n.removeprefix(prefix): "magnitude" for n in summary["uncalled"]})
        if progress is not None:
            progress(index + 1, num_layers)

    read_s = [0.0]

    def prune_from(index: int, modules: dict[str, Unit], _: object) -> None:
        assert provider is not None and kind is not None
        t0 = time.perf_counter()
        usable = _usable_statistics(provider(index), kind, modules)
        read_s[0] += time.perf_counter() - t0
        prune(index, modules, usable)

    with track_peak_memory(target) as peak, _eval_no_grad(model):
        if allocation == "owl":
            with timer.phase("allocation"):
                shares = _outlier_shares(model, calibration, statistics, target, owl_m, ignored,
                                         _batch_size(calibration, batch_size, target))  # fmt: skip
            targets = owl_targets(shares, sparsity, nm, owl_lambda)
        else:
            targets = uniform_targets(num_layers, sparsity, nm)
        if provider is not None:
            walk_layers(
                model,
                None,
                target,
                kind=None,
                process=prune_from,
                dense_propagation=False,
                batch_size=1,
                timer=timer,
            )
        else:
            # One-shot without statistics: the statistics pass propagates the dense activations
            # and each layer is pruned from them, exactly as if every layer's statistics had
            # been collected first.
            walk_layers(
                model,
                calibration,
                target,
                kind=kind,
                process=prune,
                dense_propagation=kind is not None and mode == "oneshot",
                batch_size=_batch_size(calibration, batch_size, target),
                timer=timer,
            )
    timings = dict(timer.seconds)
    if read_s[0]:
        timings["statistics"] = timings.get("statistics", 0.0) + read_s[0]
        timings["process"] = timings.get("process", 0.0) - read_s[0]
    if "process" in timings:
        timings["prune"] = timings.pop("process")
    timings["total"] = time.perf_counter() - start
    measured = measure_sparsity(model, ignored)
    return PruneReport(
        achieved_sparsity=measured["total"],
        per_module=measured["per_module"],
        timings=timings,
        peak_memory_bytes=peak.as_dict(),
        method=method,
        structure=structure,
        sparsity=sparsity,
        mode=mode,
        num_tokens=num_tokens,
        extra=_experts_extra(experts, options) if experts["experts"] else {},
        decoder_zero_fraction=measured["decoder_zero_fraction"],
        dense_kept=measured["dense_kept"],
        statistics_fallback=dict(sorted(uncalled.items())),
        ignored=len(ignored),
        allocation=allocation,
        layer_sparsity=list(targets.sparsities),
        layer_structure=[str(s) if s is not None else "unstructured" for s in targets.structures],
        outlier_shares=targets.shares,
        refine=refine,
        refined_units=experts["refined"],
    )


def _outlier_shares(
    model: nn.Module,
    calibration: torch.Tensor | None,
    statistics: LayerStatistics | StatisticsProvider | None,
    device: torch.device,
    m: float,
    ignored: set[str],
    batch_size: int,
) -> list[float]:
    """OWL's outlier share of every decoder layer, from the dense model's statistics: read from
    ``statistics`` layer by layer, or from one dense pass over ``calibration`` (one layer's
    statistics at a time)."""
    stack = find_decoder_stack(model)
    shares: list[float] = []

    def share_of(index: int, stats: LayerStatistics) -> None:
        prefix = f"{stack.prefix}.{index}"
        units = {f"{prefix}.{n}": u for n, u in prunable_modules(stack.layers[index]).items()}
        shares.append(layer_share({n: u for n, u in units.items() if n not in ignored}, stats, m))

    if statistics is not None:
        layer_of, _ = _statistics_provider(statistics, "sqnorm", model)
        for index in range(len(stack.layers)):
            share_of(index, layer_of(index))
    elif calibration is not None:
        stream_statistics(model, calibration, share_of, device, "wanda", batch_size=batch_size)
    else:
        raise ValueError("allocation='owl' needs a calibration tensor or statistics")
    return shares


def _statistics_provider(
    statistics: LayerStatistics | StatisticsProvider, kind: StatisticsKind, model: nn.Module
) -> tuple[Callable[[int], LayerStatistics], int]:
    """``(layer index -> statistics, tokens to report)`` for a one-shot prune, checked as far as
    possible before any layer is pruned."""
    if isinstance(statistics, LayerStatistics):
        usable = _usable_statistics(statistics, kind, iter_prunable(model))
        return (lambda index: usable), int(statistics.num_tokens)
    if not callable(getattr(statistics, "layer", None)):
        raise TypeError(
            "statistics must be a LayerStatistics or have a layer(index) method, got "
            f"{type(statistics).__name__}"
        )
    layers = len(find_decoder_stack(model).layers)
    provided = getattr(statistics, "num_layers", None)
    if provided is not None and int(provided) != layers:
        raise ValueError(f"the statistics cover {provided} decoder layers, the model has {layers}")
    if kind == "hessian" and getattr(statistics, "kind", "hessian") != "hessian":
        raise ValueError("sparsegpt needs Hessian statistics")
    return statistics.layer, int(getattr(statistics, "num_tokens", 0))


def _experts_extra(experts: Mapping[str, int], options: MethodOptions) -> dict[str, Any]:
    """What the report says of routed experts: how many, how many fell back and how."""
    return {
        "experts": int(experts["experts"]),
        "experts_fallback": int(experts["fallback"]),
        "expert_fallback": getattr(options, "expert_fallback", "none"),
        "min_expert_tokens": int(getattr(options, "min_expert_tokens", 0)),
    }


def _usable_statistics(
    statistics: LayerStatistics, kind: StatisticsKind, modules: Mapping[str, Unit]
) -> LayerStatistics:
    """``statistics`` as ``kind`` (Wanda: diagonals), checked to cover ``modules`` at their
    widths."""
    if kind == "hessian" and statistics.kind != "hessian":
        raise ValueError(
            "sparsegpt needs Hessian statistics (collect_statistics(method='sparsegpt'))"
        )
    usable = statistics.diagonal() if kind == "sqnorm" else statistics
    missing = sorted(set(modules) - set(usable.groups) - set(usable.uncalled))
    if missing:
        raise ValueError(f"statistics lack {len(missing)} prunable modules, e.g. {missing[:3]}")
    for name, module in modules.items():
        if name not in usable.groups:
            continue  # read without being called: pruned by magnitude
        width = weight_matrix(module).shape[1]
        if usable.for_module(name).shape[0] != width:
            raise ValueError(
                f"statistics of {name} have width {usable.for_module(name).shape[0]}, weight {width}"
            )
    return usable
