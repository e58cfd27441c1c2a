"""Headless matplotlib figures (PNG). ``Figure`` objects are built directly, never through
pyplot, so no GUI backend or global figure state is involved."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from analysis.headlines import dimension_title
from analysis.records import TOTAL, retention_column

DPI = 110
SIGNIFICANCE = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
SIGNIFICANCE_NOTE = "marks: BH q < 0.05 *, < 0.01 **, < 0.001 ***"


def significance_mark(q_value: float) -> str:
    if q_value is None or math.isnan(q_value):
        return ""
    for threshold, mark in SIGNIFICANCE:
        if q_value < threshold:
            return mark
    return ""


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, format="png")
    return path


def rho_heatmap(group_table: pd.DataFrame, path: Path, title: str) -> Path:
    """Metrics x dimensions, colour = Spearman rho, text = rho and its significance marks."""
    metrics = list(dict.fromkeys(group_table["metric"]))
    dimensions = list(dict.fromkeys(group_table["dimension"]))
    rho = group_table.pivot(index="metric", columns="dimension", values="rho")
    q = group_table.pivot(index="metric", columns="dimension", values="q_value")
    rho, q = rho.loc[metrics, dimensions], q.loc[metrics, dimensions]
    figure = Figure(figsize=(3.4 + 1.25 * len(dimensions), 2.0 + 0.5 * len(metrics)))
    axes = figure.add_subplot()
    cmap = colormaps["RdBu_r"].copy()
    cmap.set_bad("#d9d9d9")
    values = np.ma.masked_invalid(rho.to_numpy(float))
    image = axes.imshow(values, cmap=cmap, vmin=-1, vmax=1, aspect="auto")
    for i, metric in enumerate(metrics):
        for j, dimension in enumerate(dimensions):
            value = rho.loc[metric, dimension]
            if math.isnan(value):
                text, colour = "n/a", "#555555"
            else:
                text = f"{value:+.2f}{significance_mark(q.loc[metric, dimension])}"
                colour = "white" if abs(value) > 0.6 else "black"
            axes.text(j, i, text, ha="center", va="center", color=colour, fontsize=9)
    axes.set_xticks(
        range(len(dimensions)), [dimension_title(d) for d in dimensions], rotation=20, ha="right"
    )
    axes.set_yticks(range(len(metrics)), metrics)
    axes.set_xlabel(f"retention dimension\n{SIGNIFICANCE_NOTE}", fontsize=9)
    axes.set_ylabel("calibration metric")
    axes.set_title(f"Spearman ρ, calibration metric vs retention\n{title}", fontsize=10)
    figure.colorbar(image, ax=axes, label="Spearman ρ", shrink=0.8)
    figure.tight_layout()
    return _save(figure, path)


def retention_heatmap(
    source_rows: pd.DataFrame, dimensions: list[str], path: Path, title: str
) -> Path:
    """Sources x dimensions (and total), seed-averaged retention in percent."""
    columns = [*dimensions, TOTAL]
    rows = source_rows.sort_values(retention_column(TOTAL), ascending=False, na_position="last")
    values = rows[[retention_column(d) for d in columns]].to_numpy(float) * 100
    sources = rows["source"].astype(str).tolist()
    figure = Figure(figsize=(2.6 + 1.2 * len(columns), 1.6 + 0.38 * len(sources)))
    axes = figure.add_subplot()
    cmap = colormaps["viridis"].copy()
    cmap.set_bad("#d9d9d9")
    finite = values[np.isfinite(values)]
    top = max(100.0, float(finite.max())) if finite.size else 100.0
    image = axes.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=top, aspect="auto")
    for i in range(len(sources)):
        for j in range(len(columns)):
            value = values[i, j]
            text = "n/a" if math.isnan(value) else f"{value:.1f}"
            colour = "black" if not math.isnan(value) and value > 0.6 * top else "white"
            axes.text(j, i, text, ha="center", va="center", color=colour, fontsize=8)
    axes.set_xticks(range(len(columns)), [dimension_title(d) for d in columns])
    axes.set_yticks(range(len(sources)), sources)
    axes.set_xlabel("dimension")
    axes.set_ylabel("calibration source (sorted by total)")
    axes.set_title(f"Retention by calibration source (% of dense)\n{title}", fontsize=10)
    figure.colorbar(image, ax=axes, label="retention (%)", shrink=0.8)
    figure.tight_layout()
    return _save(figure, path)


def retention_vs_sparsity(
    source_rows: pd.DataFrame,
    mix_rows: pd.DataFrame,
    dimensions: list[str],
    path: Path,
    title: str,
) -> Path:
    """One panel per dimension (and total): retention vs sparsity, a line per source,
    the uniform mix dashed in black."""
    panels = [*dimensions, TOTAL]
    sources = sorted(source_rows["source"].astype(str).unique())
    palette = colormaps["tab20"]
    figure = Figure(figsize=(3.2 * len(panels) + 2.4, 3.6))
    axes_list = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for axes, dimension in zip(axes_list, panels, strict=True):
        column = retention_column(dimension)
        for k, source in enumerate(sources):
            rows = source_rows[source_rows["source"].astype(str) == source].sort_values("sparsity")
            axes.plot(
                rows["sparsity"] * 100,
                rows[column] * 100,
                marker="o",
                markersize=3,
                linewidth=1.2,
                color=palette(k % 20),
                label=source,
            )
        uniform = mix_rows[mix_rows["entry"] == "uniform mix"].sort_values("sparsity")
        if not uniform.empty and column in uniform:
            axes.plot(
                uniform["sparsity"] * 100,
                uniform[column] * 100,
                "k--",
                marker="s",
                markersize=4,
                linewidth=2,
                label="uniform mix",
            )
        axes.set_title(dimension_title(dimension))
        axes.set_xlabel("target sparsity (%)")
        axes.grid(alpha=0.3)
    axes_list[0].set_ylabel("retention (% of dense)")
    handles, labels = axes_list[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="center right", fontsize=7, title="calibration")
    figure.suptitle(f"Retention vs sparsity — {title}", fontsize=11)
    figure.tight_layout(rect=(0, 0, 1 - 2.2 / figure.get_figwidth(), 1))
    return _save(figure, path)


def mix_comparison(mix_rows: pd.DataFrame, dimensions: list[str], path: Path, title: str) -> Path:
    """Grouped bars: per dimension, total and worst retention, one bar per compared entry."""
    categories = [retention_column(d) for d in dimensions] + ["total_retention", "worst_retention"]
    categories = [c for c in categories if c in mix_rows.columns]
    names = [dimension_title(d) for d in dimensions] + ["Total", "Worst"]
    names = names[: len(categories)]
    entries = mix_rows["entry"].tolist()
    width = 0.8 / max(len(entries), 1)
    figure = Figure(figsize=(2.5 + 1.4 * len(categories), 4.2))
    axes = figure.add_subplot()
    palette = colormaps["tab10"]
    x = np.arange(len(categories))
    for k, (_, row) in enumerate(mix_rows.iterrows()):
        values = row[categories].to_numpy(float) * 100
        offset = (k - (len(entries) - 1) / 2) * width
        label = f"{row['entry']}" + (
            "" if row["entry"] == row["mix_name"] else f" [{row['mix_name']}]"
        )
        axes.bar(x + offset, values, width, label=label, color=palette(k % 10))
    axes.set_xticks(x, names)
    axes.set_xlabel("dimension")
    axes.set_ylabel("retention (% of dense)")
    axes.set_title(f"Calibration mixes compared\n{title}", fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    return _save(figure, path)
