"""The averaging artifact: calibration moves single dimensions far more than their average.

Per group and dimension (and ``total``, the averaged score), over single-source grid trials:
``spread`` = max - min across sources of the seed-averaged retention, with the sources at both
ends, and ``source_share`` = the share of the variance across all trials (sources x seeds)
explained by the source, SS_between / SS_total of a one-way layout (eta squared; NaN unless
some source has at least two trials, since with one trial per source it is trivially 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.records import (
    GROUP_KEYS,
    TOTAL,
    RecordSet,
    dimensions_in,
    ok_trials,
    retention_column,
    single_source_trials,
)

ARTIFACT_VALUE_COLUMNS = (
    "dimension",
    "n_sources",
    "n_trials",
    "spread",
    "min_source",
    "min_retention",
    "max_source",
    "max_retention",
    "source_share",
)


def source_variance_share(values: pd.Series, sources: pd.Series) -> float:
    """Eta squared of a one-way layout: between-source sum of squares over the total."""
    frame = pd.DataFrame({"v": values.to_numpy(float), "s": sources.to_numpy()}).dropna()
    # With one trial per source every source "explains" all variance: no estimate.
    if frame["s"].nunique() < 2 or frame["s"].value_counts().max() < 2:
        return float("nan")
    grand = frame["v"].mean()
    total = float(((frame["v"] - grand) ** 2).sum())
    if total == 0.0:
        return float("nan")
    by_source = frame.groupby("s")["v"].agg(["mean", "size"])
    between = float((by_source["size"] * (by_source["mean"] - grand) ** 2).sum())
    return between / total


def averaging_artifact(
    records: RecordSet | pd.DataFrame, *, group_by: tuple[str, ...] = GROUP_KEYS
) -> pd.DataFrame:
    """One row per (group, dimension): spread across sources and the source's variance share."""
    single = single_source_trials(ok_trials(records))
    dimensions = [d for d in [*dimensions_in(single), TOTAL] if retention_column(d) in single]
    columns = [retention_column(d) for d in dimensions]
    rows: list[dict] = []
    groups = single.groupby(list(group_by), sort=True, dropna=False) if group_by else [((), single)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        labels = dict(zip(group_by, key, strict=True))
        by_source = group.groupby("source")[columns]
        means, counts = by_source.mean(), by_source.count()  # (sources, dimensions)
        grand = group[columns].mean()
        total = ((group[columns] - grand) ** 2).sum()
        between = (counts * (means - grand) ** 2).sum()
        for dimension, column in zip(dimensions, columns, strict=True):
            observed = means[column].dropna()
            row = {
                **labels,
                "dimension": dimension,
                "n_sources": int(observed.size),
                "n_trials": int(counts[column].sum()),
                "spread": np.nan,
                "min_source": None,
                "min_retention": np.nan,
                "max_source": None,
                "max_retention": np.nan,
                "source_share": np.nan,
            }
            if not observed.empty:
                row |= {
                    "spread": float(observed.max() - observed.min()),
                    "min_source": str(observed.idxmin()),
                    "min_retention": float(observed.min()),
                    "max_source": str(observed.idxmax()),
                    "max_retention": float(observed.max()),
                }
            if observed.size >= 2 and counts[column].max() >= 2 and total[column] > 0:
                row["source_share"] = float(between[column] / total[column])
            rows.append(row)
    return pd.DataFrame(rows, columns=[*group_by, *ARTIFACT_VALUE_COLUMNS])
