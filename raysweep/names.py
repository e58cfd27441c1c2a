"""Names shared by the whole project, with no dependency: import it from anywhere.

Capability dimensions, pruning methods, the sparsity structure syntax (``"unstructured"`` or
``"N:M"``) and the names of the built-in mixes. ``analysis/`` keeps its own copy of
:data:`DIMENSIONS` (it imports nothing of ``raysweep``); ``tests/test_names.py`` asserts the two
agree.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple, get_args

DIMENSIONS: tuple[str, ...] = ("general", "commonsense", "code", "math")

Method = Literal["magnitude", "wanda", "sparsegpt", "ria"]
METHODS: tuple[str, ...] = get_args(Method)

UNSTRUCTURED = "unstructured"

# Layer-wise sparsity allocations and mask refinements (raysweep.pruning.owl, .dsnot), with the
# authors' defaults: OWL's README runs (Hyper_m 5, Lamda 0.08), RIA's main.py (a 0.5, the whole
# matrix compared unless --per_outneuron), DSnoT's main.py (max_cycle_time 50,
# update_threshold 0.1).
Allocation = Literal["uniform", "owl"]
ALLOCATIONS: tuple[str, ...] = get_args(Allocation)
Refine = Literal["none", "dsnot"]
REFINES: tuple[str, ...] = get_args(Refine)
OWL_M = 5.0
OWL_LAMBDA = 0.08
RIA_ALPHA = 0.5
RIA_PER_ROW = False
DSNOT_CYCLES = 50
DSNOT_THRESHOLD = 0.1

# The grid's mix of equal weight per capability dimension (split evenly among the sources aligned
# to each dimension): ``calibration.uniform_mix``.
UNIFORM_MIX = "uniform"
# The search's first proposal: equal weight per searched source. Records before the two names
# were told apart call it ``uniform`` too (a ``search``-phase record): read as this name.
EQUAL_SOURCES_MIX = "equal_sources"

_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


class NMStructure(NamedTuple):
    """``N:M``: keep N of every M consecutive weights along a row's input dimension."""

    keep: int  # N
    group: int  # M

    @property
    def prune(self) -> int:
        return self.group - self.keep

    @property
    def sparsity(self) -> float:
        return self.prune / self.group

    def __str__(self) -> str:
        return f"{self.keep}:{self.group}"


def parse_structure(value: str) -> NMStructure | None:
    """``"unstructured"`` -> None; ``"N:M"`` (spaces allowed) -> NMStructure(N kept, M group
    size) with 1 <= N < M. Raises ValueError otherwise."""
    if value == UNSTRUCTURED:
        return None
    m = _NM.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"{value!r} is not 'unstructured' or an 'N:M' pattern such as '2:4'")
    keep, group = int(m.group(1)), int(m.group(2))
    if group < 1 or keep < 1 or keep >= group:
        raise ValueError(
            f"{value!r} is impossible: N:M keeps N of every M weights, so it needs 1 <= N < M"
        )
    return NMStructure(keep, group)
