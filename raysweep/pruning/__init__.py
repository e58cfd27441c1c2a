"""Post-training pruning of decoder-only LMs: magnitude, Wanda and SparseGPT, unstructured or N:M.

Imports only torch, transformers and safetensors.
"""

from raysweep.pruning.architecture import find_decoder_stack, iter_prunable
from raysweep.pruning.masks import NMStructure, parse_structure
from raysweep.pruning.prune import (
    METHODS,
    MODES,
    PruneReport,
    collect_statistics,
    default_batch_size,
    measure_sparsity,
    prune_model,
)
from raysweep.pruning.sparsegpt import HessianNotPositiveDefinite
from raysweep.pruning.statistics import LayerStatistics

__all__ = [
    "METHODS",
    "MODES",
    "HessianNotPositiveDefinite",
    "LayerStatistics",
    "NMStructure",
    "PruneReport",
    "collect_statistics",
    "default_batch_size",
    "find_decoder_stack",
    "iter_prunable",
    "measure_sparsity",
    "parse_structure",
    "prune_model",
]
