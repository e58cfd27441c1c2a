"""Layer-wise sparsity allocation: the target each decoder layer is pruned at.

``uniform``: every layer at the sweep's target (or its N:M structure). ``owl``: OWL's outlier-
weighted allocation (:mod:`raysweep.pruning.owl`), from each layer's Wanda scores on the *dense*
model's calibration activations: a layer whose scores hold more outliers is pruned less. The
scores of one layer are those of every prunable unit that is pruned (ignored units and units
without input statistics, read without being called, are left out), routed experts each with
the statistics of the tokens sent to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from raysweep.names import ALLOCATIONS, NMStructure
from raysweep.pruning.architecture import Unit, weight_matrix
from raysweep.pruning.owl import check_owl, layer_nm, layer_sparsities, outlier_share
from raysweep.pruning.statistics import LayerStatistics
from raysweep.pruning.wanda import wanda_scores


@dataclass(frozen=True)
class LayerTargets:
    """Per decoder layer: its sparsity and N:M structure (None: unstructured); ``shares``: the
    OWL outlier shares (percent) they came from (None for ``uniform``)."""

    sparsities: list[float]
    structures: list[NMStructure | None]
    shares: list[float] | None = None


def check_allocation(
    allocation: str,
    sparsity: float,
    nm: NMStructure | None,
    lam: float,
    num_layers: int | None = None,
) -> None:
    """ValueError before any work: an unknown allocation, or OWL parameters that could push a
    layer outside ``[0, 1)`` (or an N:M count outside ``[1, M - 1]``, or move none); without
    ``num_layers``, for any number of layers."""
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be one of {ALLOCATIONS}, got {allocation!r}")
    if allocation == "owl":
        check_owl(sparsity, lam, num_layers, nm=nm)
        if nm is not None and lam < 0.5:
            # Centred shares span [-lam, lam]; below 0.5 every shift rounds to 0: uniform N:M.
            raise ValueError(
                f"owl_lambda={lam:g} moves no layer's N:M count (shifts below 0.5 round to 0), "
                f"so OWL would prune every layer at {nm}: use owl_lambda >= 0.5 for N:M "
                "(the authors' N:M run: owl_lambda 2, owl_m 6)"
            )


def uniform_targets(num_layers: int, sparsity: float, nm: NMStructure | None) -> LayerTargets:
    return LayerTargets([float(sparsity)] * num_layers, [nm] * num_layers)


def owl_targets(
    shares: list[float], sparsity: float, nm: NMStructure | None, lam: float
) -> LayerTargets:
    """OWL's per-layer targets from the layers' outlier shares (the authors' formulas)."""
    if nm is None:
        return LayerTargets(layer_sparsities(shares, sparsity, lam), [None] * len(shares), shares)
    structures = layer_nm(shares, nm, lam)
    return LayerTargets([s.sparsity for s in structures], list(structures), shares)


def layer_share(modules: Mapping[str, Unit], stats: LayerStatistics, m: float) -> float:
    """OWL's outlier share (percent) of one layer's Wanda scores ``|W| * sqrt(sum_t x^2)``, over
    the units in ``modules`` that have input statistics in ``stats`` (any kind)."""
    usable = stats.diagonal()
    scores = (
        wanda_scores(weight_matrix(unit), usable.for_module(name).to(weight_matrix(unit).device))
        for name, unit in modules.items()
        if name in usable.groups
    )
    return outlier_share(scores, m)
