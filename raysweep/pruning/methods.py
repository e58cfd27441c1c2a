"""The pruning methods as one table: what statistics each reads, its typed options, its kernel.

A :class:`Method` is a row; :data:`METHOD_TABLE` maps ``magnitude``, ``wanda``, ``sparsegpt``
and ``ria`` to theirs. The layer driver (:mod:`raysweep.pruning.prune`) reads the row instead of branching
on the method's name: a new method is a kernel and a row.

Two kernel shapes exist. A *mask* method scores each weight matrix alone
(``mask(weight, statistics, sparsity, nm, options) -> bool mask``; ``statistics`` is None when
the row reads none). A *solve* method updates the weights of units that share an input together, from
their shared statistics (``solve(weights, statistics, sparsity, nm, options, segments, name,
consume) -> pruned weights``, stacked along rows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

from raysweep.names import METHODS, NMStructure
from raysweep.pruning.experts import EXPERT_FALLBACKS
from raysweep.pruning.magnitude import magnitude_mask
from raysweep.pruning.ria import DEFAULT_ALPHA, DEFAULT_PER_ROW, ria_mask
from raysweep.pruning.sparsegpt import DEFAULT_BLOCK_SIZE, DEFAULT_DAMP, sparsegpt_prune
from raysweep.pruning.statistics import StatisticsKind
from raysweep.pruning.wanda import wanda_mask

# Routed experts reached by fewer calibration tokens fall back (``experts.EXPERT_FALLBACKS``).
DEFAULT_MIN_EXPERT_TOKENS = 16


@dataclass(frozen=True)
class MagnitudeOptions:
    """Magnitude pruning reads no calibration data and takes no options."""


@dataclass(frozen=True)
class WandaOptions:
    min_expert_tokens: int = DEFAULT_MIN_EXPERT_TOKENS
    expert_fallback: str = "layer"

    def __post_init__(self) -> None:
        _check_expert_options(self)


@dataclass(frozen=True)
class SparseGPTOptions:
    damp: float = DEFAULT_DAMP
    block_size: int = DEFAULT_BLOCK_SIZE
    min_expert_tokens: int = DEFAULT_MIN_EXPERT_TOKENS
    expert_fallback: str = "layer"

    def __post_init__(self) -> None:
        _check_expert_options(self)


@dataclass(frozen=True)
class RiaOptions:
    """``ria_alpha``: the activation exponent; ``ria_per_row``: compare within output rows
    (the authors' ``--per_outneuron``) instead of the whole matrix (their default)."""

    ria_alpha: float = DEFAULT_ALPHA
    ria_per_row: bool = DEFAULT_PER_ROW
    min_expert_tokens: int = DEFAULT_MIN_EXPERT_TOKENS
    expert_fallback: str = "layer"

    def __post_init__(self) -> None:
        if not self.ria_alpha >= 0:
            raise ValueError(f"ria_alpha must be >= 0, got {self.ria_alpha}")
        _check_expert_options(self)


MethodOptions = MagnitudeOptions | WandaOptions | SparseGPTOptions | RiaOptions


def _check_expert_options(options: WandaOptions | SparseGPTOptions | RiaOptions) -> None:
    if options.expert_fallback not in EXPERT_FALLBACKS:
        raise ValueError(
            f"expert_fallback must be one of {EXPERT_FALLBACKS}, got {options.expert_fallback!r}"
        )


def _magnitude(
    weight: torch.Tensor,
    statistics: torch.Tensor | None,
    sparsity: float,
    nm: NMStructure | None,
    options: object = None,
) -> torch.Tensor:
    return magnitude_mask(weight, sparsity, nm)


def _wanda(
    weight: torch.Tensor, sqnorm: torch.Tensor, sparsity: float, nm: NMStructure | None,
    options: object = None,
) -> torch.Tensor:  # fmt: skip
    return wanda_mask(weight, sqnorm, sparsity, nm)


def _ria(
    weight: torch.Tensor, sqnorm: torch.Tensor, sparsity: float, nm: NMStructure | None,
    options: RiaOptions,
) -> torch.Tensor:  # fmt: skip
    return ria_mask(weight, sqnorm, sparsity, nm, options.ria_alpha, per_row=options.ria_per_row)


def _sparsegpt(
    weights: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float,
    nm: NMStructure | None,
    options: SparseGPTOptions,
    *,
    segments: list[int],
    name: str,
    consume: bool,
) -> torch.Tensor:
    return sparsegpt_prune(weights, hessian, sparsity, nm, block_size=options.block_size,
                           damp=options.damp, segments=segments, name=name,
                           consume_hessian=consume)  # fmt: skip


@dataclass(frozen=True)
class Method:
    """One row of the method table: ``statistics`` is the kind of input statistics it reads
    (None: none), ``options`` its options' type, and exactly one of ``mask`` / ``solve``."""

    name: str
    statistics: StatisticsKind | None
    options: type[MethodOptions]
    mask: Callable[..., torch.Tensor] | None = None
    solve: Callable[..., torch.Tensor] | None = None

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.options))

    def make_options(self, given: Mapping[str, Any]) -> MethodOptions:
        """The typed options from keyword options; unknown names raise TypeError."""
        unknown = sorted(set(given) - set(self.option_names))
        if unknown:
            raise TypeError(
                f"{self.name} takes options {list(self.option_names)}, got unknown {unknown}"
            )
        return self.options(**given)


METHOD_TABLE: dict[str, Method] = {
    "magnitude": Method("magnitude", None, MagnitudeOptions, mask=_magnitude),
    "wanda": Method("wanda", "sqnorm", WandaOptions, mask=_wanda),
    "sparsegpt": Method("sparsegpt", "hessian", SparseGPTOptions, solve=_sparsegpt),
    "ria": Method("ria", "sqnorm", RiaOptions, mask=_ria),
}
assert tuple(METHOD_TABLE) == METHODS


def method(name: str) -> Method:
    """The row of ``name``; ValueError for an unknown method."""
    if name not in METHOD_TABLE:
        raise ValueError(f"method must be one of {METHODS}, got {name!r}")
    return METHOD_TABLE[name]
