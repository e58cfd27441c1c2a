"""Calibration data: the source table, packing into fixed windows, exact mixing, information metrics."""

from .build import build_calibration_set, source_seed, source_windows
from .generated_sources import GENERATED_SOURCES, generated_source, generated_source_from_spec
from .generators import IGSP, SGS, IGSPResult, SelfCal, SGSResult
from .igsp_select import IGSPSelection, select_igsp
from .metrics import information_metrics
from .mixing import allocate_counts, normalize_mix
from .packing import pack_windows
from .presets import HUB_PRESETS
from .registry import SOURCES, get_source, source_from_spec, sources_from_specs
from .sources import DIMENSIONS, CalibrationSource, file_source

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
