"""Calibration data: the source table, packing into fixed windows, exact mixing, information metrics.

Importing the package loads no torch, so that a config's source names and generated-source specs
are checked without it: the names whose modules need torch (building sets, information metrics)
are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .generated_sources import GENERATED_SOURCES, generated_source, generated_source_from_spec
from .generators import IGSP, SGS, IGSPResult, SelfCal, SGSResult
from .igsp_select import IGSPSelection, select_igsp
from .mixing import allocate_counts, normalize_mix
from .packing import pack_windows
from .presets import HUB_PRESETS
from .registry import SOURCES, get_source, source_from_spec, sources_from_specs
from .sources import DIMENSIONS, CalibrationSource, file_source

if TYPE_CHECKING:
    from .build import build_calibration_set, source_seed, source_windows
    from .metrics import information_metrics

# Public names whose modules import torch: name -> module, imported on first access.
_TORCH_BACKED = {
    "build_calibration_set": "build",
    "source_seed": "build",
    "source_windows": "build",
    "information_metrics": "metrics",
}


def __getattr__(name: str) -> Any:
    module = _TORCH_BACKED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DIMENSIONS",
    "GENERATED_SOURCES",
    "IGSP",
    "SGS",
    "IGSPResult",
    "IGSPSelection",
    "SGSResult",
    "SelfCal",
    "generated_source",
    "generated_source_from_spec",
    "select_igsp",
    "HUB_PRESETS",
    "SOURCES",
    "CalibrationSource",
    "allocate_counts",
    "build_calibration_set",
    "file_source",
    "get_source",
    "information_metrics",
    "normalize_mix",
    "pack_windows",
    "source_from_spec",
    "sources_from_specs",
    "source_seed",
    "source_windows",
]
