"""Post-training pruning of decoder-only LMs: magnitude, Wanda and SparseGPT, unstructured or N:M.

Imports only torch, transformers and safetensors.
"""

from raysweep.names import METHODS, NMStructure, parse_structure
from raysweep.pruning.architecture import find_decoder_stack, iter_prunable
from raysweep.pruning.methods import METHOD_TABLE, Method
from raysweep.pruning.prune import (
    MODES,
    PruneReport,
    collect_statistics,
    default_batch_size,
    measure_sparsity,
    prune_model,
    stream_statistics,
)
from raysweep.pruning.sparsegpt import HessianNotPositiveDefinite
from raysweep.pruning.statistics import LayerStatistics
from raysweep.pruning.store import (
    MixedStatistics,
    StatisticsProvider,
    StatisticsStore,
    ensure_store,
    open_store,
)

__all__ = [
    "METHODS",
    "METHOD_TABLE",
    "Method",
    "MODES",
    "HessianNotPositiveDefinite",
    "LayerStatistics",
    "MixedStatistics",
    "NMStructure",
    "PruneReport",
    "StatisticsProvider",
    "StatisticsStore",
    "collect_statistics",
    "default_batch_size",
    "ensure_store",
    "find_decoder_stack",
    "iter_prunable",
    "measure_sparsity",
    "open_store",
    "parse_structure",
    "prune_model",
    "stream_statistics",
]
