"""The published numbers of the study raysweep reproduces, set beside a run's own.

Source: the abstract of "Calibration Data Trade-offs Across Capability Dimensions" (arXiv
2606.03328): LLaMA-3.1-8B, SparseGPT, 60 % unstructured sparsity.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

STUDY_SWEEP = "study"
STUDY_SETTING = {"method": "sparsegpt", "structure": "unstructured", "sparsity": 0.6}
STUDY_MODEL = "LLaMA-3.1-8B"


@dataclass(frozen=True)
class PublishedNumber:
    quantity: str
    kind: str  # "rho" (metric vs dimension) or "total" (total retention of a calibration set)
    subject: str  # metric for "rho", calibration set for "total"
    target: str  # dimension for "rho", "" for "total"
    value: float


PUBLISHED = (
    PublishedNumber("perplexity rho, General retention", "rho", "perplexity", "general", 0.71),
    PublishedNumber("perplexity rho, Math retention", "rho", "perplexity", "math", -0.53),
    PublishedNumber("perplexity rho, Code retention", "rho", "perplexity", "code", -0.59),
    PublishedNumber("total retention, uniform mix", "total", "uniform", "", 0.588),
    PublishedNumber("total retention, MetaMath", "total", "metamath", "", 0.500),
    PublishedNumber("total retention, C4 (default)", "total", "c4", "", 0.400),
)


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _match_metric(metrics: list[str], wanted: str) -> str | None:
    if wanted in metrics:
        return wanted
    candidates = [m for m in metrics if wanted in m.lower() or m.lower() in ("ppl", "log_ppl")]
    return sorted(candidates)[0] if candidates else None


def _match_source(sources: list[str], wanted: str) -> str | None:
    exact = [s for s in sources if _squash(s) == wanted]
    if exact:
        return exact[0]
    partial = sorted(s for s in sources if wanted in _squash(s))
    return partial[0] if partial else None


def _in_setting(frame: pd.DataFrame) -> pd.DataFrame:
    for key, value in STUDY_SETTING.items():
        if key not in frame.columns:
            return frame[:0]
        column = frame[key]
        if key == "sparsity":
            frame = frame[pd.to_numeric(column, errors="coerce").sub(value).abs() < 1e-9]
        else:
            frame = frame[column.astype(str).str.lower() == value]
    return frame


def study_comparison(
    correlation_table: pd.DataFrame, mix_table: pd.DataFrame, source_table: pd.DataFrame
) -> pd.DataFrame:
    """Published value beside the run's value (NaN where the run lacks it), with what matched.

    ``source_table`` is :func:`analysis.records.source_means` (seed-averaged single sources).
    """
    rhos = _in_setting(correlation_table)
    mixes = _in_setting(mix_table)
    singles = _in_setting(source_table)
    rows = []
    for item in PUBLISHED:
        run_value, matched = math.nan, "not in this run"
        if item.kind == "rho":
            metric = _match_metric(sorted(rhos["metric"].unique()), item.subject)
            hit = rhos[(rhos["metric"] == metric) & (rhos["dimension"] == item.target)]
            if metric is not None and not hit.empty:
                run_value, matched = float(hit["rho"].iloc[0]), f"metric {metric}"
        elif item.subject == "uniform":
            hit = mixes[mixes["entry"] == "uniform mix"]
            if not hit.empty:
                run_value, matched = float(hit["total_retention"].iloc[0]), "uniform mix"
        else:
            source = _match_source(sorted(singles["source"].astype(str).unique()), item.subject)
            hit = singles[singles["source"] == source]
            if source is not None and not hit.empty:
                run_value, matched = float(hit["total_retention"].iloc[0]), f"source {source}"
        rows.append(
            {
                "quantity": item.quantity,
                "published": item.value,
                "run": run_value,
                "run_match": matched,
            }
        )
    return pd.DataFrame(rows, columns=["quantity", "published", "run", "run_match"])
