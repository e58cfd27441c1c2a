"""Turn a sweep's ``records.jsonl`` into the calibration study's findings: Spearman correlations
between calibration metrics and per-dimension retention, the averaging artifact, mix
comparisons (paired over items and seeds where the run has per-item side files), OWL layer
allocations and pruning variants with vs without (``analysis.allocation``), figures and a
report. Reads records and side files only: needs neither Ray, torch nor raysweep.

    python -m analysis <run dir or records.jsonl> [--out DIR] [--group-by method,structure,sparsity]
    python -m analysis agreement RUN_A RUN_B     # do two suites rank the calibration choices alike?
"""

from analysis.agreement import Agreement, agreement, kendall_tau_b
from analysis.allocation import AllocationResults, analyse_allocation
from analysis.artifact import averaging_artifact, source_variance_share
from analysis.correlations import (
    CORRELATION_COLUMNS,
    CorrelationResult,
    correlations,
    spearman_rho,
    spearman_with_ci,
)
from analysis.headlines import OppositePair, headline, strongest_opposite_pair
from analysis.items import load_items
from analysis.mixes import compare_mixes
from analysis.paired import PairedComparison, PairedUnavailable, compare_records, paired_bootstrap
from analysis.records import (
    DIMENSIONS,
    GROUP_KEYS,
    BrokenLine,
    RecordSet,
    RecordsWarning,
    flatten_record,
    load_records,
    source_means,
)
from analysis.report import Analysis, ReportFiles, analyse, retention_table, write_report
from analysis.study import PUBLISHED, study_comparison

__all__ = [
    "CORRELATION_COLUMNS",
    "DIMENSIONS",
    "GROUP_KEYS",
    "PUBLISHED",
    "Agreement",
    "AllocationResults",
    "Analysis",
    "BrokenLine",
    "CorrelationResult",
    "OppositePair",
    "PairedComparison",
    "PairedUnavailable",
    "RecordSet",
    "RecordsWarning",
    "ReportFiles",
    "agreement",
    "analyse_allocation",
    "analyse",
    "averaging_artifact",
    "compare_mixes",
    "compare_records",
    "correlations",
    "flatten_record",
    "headline",
    "kendall_tau_b",
    "load_items",
    "load_records",
    "paired_bootstrap",
    "retention_table",
    "source_means",
    "source_variance_share",
    "spearman_rho",
    "spearman_with_ci",
    "strongest_opposite_pair",
    "study_comparison",
    "write_report",
]
