"""OWL (Outlier Weighed Layerwise sparsity; Yin et al., ICML 2024): denser decoder layers where
more Wanda scores are outliers, sparser where fewer are, at the same mean sparsity.

Ported from the authors' code (luuyin/OWL, ``lib/prune_all.py``: ``check_outlier_mean`` and the
first pass of ``prune_wanda_outlier``; the N:M form from ``prune_wanda_outlier_structure``).

1. Per decoder layer l, on the *dense* model, ``D_l`` = percentage (0-100) of all the layer's
   Wanda scores ``|W| * sqrt(sum_t x^2)`` (every projection's, concatenated) strictly above
   ``M`` times their mean: :func:`outlier_share`.
2. ``D`` rescaled to ``[0, 2 * lambda]``, shifted so that the *unweighted* mean over layers of
   the keep ratios is ``1 - s``; layer sparsity = ``1 - ratio``: :func:`layer_sparsities`. The
   mean is over layers, not parameters, exactly as the authors' ``np.mean``: with layers of
   unequal size (hybrid or MoE stacks) the parameter-weighted sparsity differs from ``s``.

Defaults: :data:`DEFAULT_M` = 5 and :data:`DEFAULT_LAMBDA` = 0.08 are the README's settings for
every unstructured LLaMA example (wanda_owl, sparsegpt_owl, magnitude_owl at 70 %: ``--Hyper_m
5 --Lamda 0.08``). ``main.py``'s argparse defaults are ``Hyper_m=3`` and ``Lamda=0.08``; 5 is
taken because it is the value behind the published numbers and no documented command relies on
the argparse default.

Where this differs from the authors:

- All shares equal: the authors divide by ``max - min = 0`` (NaN sparsities); here every layer
  gets the uniform target (the limit of the formula).
- Out of range: the authors clamp a layer sparsity ``<= 0`` to 0.01 and let one above 1 prune
  every weight; here :func:`check_owl` rejects any ``lambda`` for which some layer could leave
  ``[0, 1)``, before any statistics are gathered.
- The authors' statistics scale (``scaler_row`` divided by the number of sequences) changes no
  share: the share is a ratio to the mean.

N:M (:data:`NM_SUPPORTED`): the authors' ``prune_wanda_outlier_structure`` (README "OWL-wanda
n:m sparsity", run with ``--Lamda 2 --Hyper_m 6 --sparsity_type 5:8``) keeps M and moves the
number pruned per group: ``D`` rescaled to ``[0, lambda]`` (not ``2 * lambda``), centred on its
mean, rounded half to even, and subtracted from the pruned count, so a layer with more outliers
prunes fewer per group: :func:`layer_nm`. The mean pruned count is then only approximately the
target's. Their ``_special`` variant (a rounded 1 becomes 2) is not ported.
:data:`DEFAULT_NM_M` and :data:`DEFAULT_NM_LAMBDA` are that README command's values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from raysweep.names import OWL_LAMBDA, OWL_M  # the defaults, in one place
from raysweep.pruning.masks import NMStructure, check_sparsity

DEFAULT_M = OWL_M
DEFAULT_LAMBDA = OWL_LAMBDA
NM_SUPPORTED = True
DEFAULT_NM_M = 6.0
DEFAULT_NM_LAMBDA = 2.0


def outlier_share(scores: Iterable[torch.Tensor], m: float) -> float:
    """Percentage (0-100) of all entries of ``scores`` strictly greater than ``m`` times the
    mean of all of them (one decoder layer's projections together, any shapes).

    The mean is accumulated in float64 without concatenating or copying the tensors; the
    comparison runs in the scores' own dtype (fp32 from ``wanda_scores``, as the authors').
    """
    parts = list(scores)
    count = sum(t.numel() for t in parts)
    if count == 0:
        raise ValueError("outlier_share needs at least one score")
    mean = sum(float(t.sum(dtype=torch.float64)) for t in parts) / count
    threshold = m * mean
    above = sum(int((t > threshold).sum()) for t in parts)
    return 100.0 * above / count


def _spread(num_layers: int | None) -> float:
    """The largest ``|x_l - mean(x)|`` for ``x`` spanning ``[0, 1]`` over ``num_layers`` values:
    one value at an end and all the others at the other end gives ``(L - 1) / L``."""
    return 1.0 if num_layers is None else (num_layers - 1) / num_layers


def check_owl(
    sparsity: float, lam: float, num_layers: int | None = None, *, nm: NMStructure | None = None
) -> None:
    """ValueError unless every layer's target stays valid for any outlier shares.

    Unstructured: a layer's sparsity is ``s - (x_l - mean(x))`` with ``x`` spanning exactly
    ``[0, 2 * lambda]``, so it lies within ``s +- 2 * lambda * (L - 1) / L`` (bound attained; for
    unknown L, strictly within ``s +- 2 * lambda``), which must stay in ``[0, 1)``.
    N:M: the pruned count per group moves by ``round(x_l - mean(x))`` with ``x`` spanning
    ``[0, lambda]``; it must stay in ``[1, M - 1]`` (rounding ties counted as rounding away).
    """
    check_sparsity(sparsity, nm)
    if num_layers is not None and num_layers < 1:
        raise ValueError(f"OWL needs at least one layer, got {num_layers}")
    if not lam >= 0:  # also NaN
        raise ValueError(f"owl_lambda must be >= 0, got {lam}")
    spread = _spread(num_layers)
    layers = "" if num_layers is None else f" and {num_layers} layers"
    if nm is not None:
        reach = lam * spread
        # Largest rounded shift: closed bound (L known) or open bound (L unknown).
        k = math.floor(reach + 0.5) if num_layers is not None else math.ceil(reach + 0.5) - 1
        if nm.prune - k < 1 or nm.prune + k > nm.group - 1:
            limit = min(nm.prune - 1, nm.group - 1 - nm.prune) + 0.5
            allowed = f"[0, {limit:g}]" if num_layers is None else f"[0, {limit / spread:g})"
            raise ValueError(
                f"owl_lambda={lam:g} can move a layer's pruned count per group of {nm.group} by "
                f"{k}, leaving [1, {nm.group - 1}]: for N:M {nm}{layers} owl_lambda must lie "
                f"in {allowed}"
            )
        return
    if spread == 0:
        return
    reach, eps = 2 * lam * spread, 1e-12  # eps: rounding of the products only
    low, high = sparsity / (2 * spread), (1 - sparsity) / (2 * spread)
    if num_layers is None:  # the extremes are suprema only: s - 2λ >= 0 and s + 2λ <= 1
        ok = sparsity - reach >= -eps and sparsity + reach <= 1 + eps
        allowed = f"[0, {min(low, high):g}]"
    else:  # the extremes are attained: s - 2λc >= 0 and s + 2λc < 1
        ok = sparsity - reach >= -eps and sparsity + reach < 1
        allowed = f"[0, {low:g}]" if low < high else f"[0, {high:g})"
    if not ok:
        raise ValueError(
            f"owl_lambda={lam:g} lets a layer's sparsity leave [0, 1): layer sparsities reach "
            f"{sparsity:g} +- {2 * spread:g} * owl_lambda, so for sparsity {sparsity:g}{layers} "
            f"owl_lambda must lie in {allowed}"
        )


def _rescaled(shares: Sequence[float], top: float) -> list[float] | None:
    """``shares`` mapped linearly onto ``[0, top]`` and centred on their mean; None if all equal."""
    lo, hi = min(shares), max(shares)
    if hi == lo:
        return None
    x = [(d - lo) * (1.0 / (hi - lo) * top) for d in shares]
    mean = sum(x) / len(x)
    return [v - mean for v in x]


def layer_sparsities(shares: Sequence[float], sparsity: float, lam: float) -> list[float]:
    """Per-layer sparsities from the layers' outlier shares (:func:`outlier_share`).

    Invariants: their unweighted mean is ``sparsity``; more outliers, lower sparsity; the
    spread ``max - min`` is ``2 * lam`` (0 when all shares are equal: uniform); each lies in
    ``[0, 1)`` (:func:`check_owl` is enforced).
    """
    if not shares:
        raise ValueError("layer_sparsities needs at least one layer's outlier share")
    check_owl(sparsity, lam, len(shares))
    centred = _rescaled(shares, 2 * lam)
    if centred is None:
        return [float(sparsity)] * len(shares)
    # keep ratio = c + (1 - s), sparsity = 1 - ratio; max() only absorbs rounding at the bound
    return [max(0.0, 1.0 - (c + (1.0 - sparsity))) for c in centred]


def layer_nm(shares: Sequence[float], nm: NMStructure, lam: float) -> list[NMStructure]:
    """Per-layer N:M structures (same M) from the layers' outlier shares, as the authors'
    ``prune_wanda_outlier_structure``: pruned per group = ``nm.prune - round(x_l - mean(x))``
    with ``x`` the shares rescaled to ``[0, lam]``. All shares equal: ``nm`` everywhere."""
    if not shares:
        raise ValueError("layer_nm needs at least one layer's outlier share")
    check_owl(nm.sparsity, lam, len(shares), nm=nm)
    centred = _rescaled(shares, lam)
    if centred is None:
        return [nm] * len(shares)
    pruned = [nm.prune - round(c) for c in centred]  # Python's round: half to even, as np.round
    return [NMStructure(keep=nm.group - p, group=nm.group) for p in pruned]
