"""Headless matplotlib figures (PNG). ``Figure`` objects are built directly, never through
pyplot, so no GUI backend or global figure state is involved. Layouts are fixed in inches
(margins sized from the longest label) rather than computed by ``tight_layout``, which
dominated the drawing time."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.headlines import dimension_title
from analysis.records import TOTAL, WORST, half_seed_range, retention_column
from analysis.writing import write_atomic

DPI = 100
SIGNIFICANCE = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
SIGNIFICANCE_NOTE = "marks: BH q < 0.05 *, < 0.01 **, < 0.001 ***"
_CHAR_IN = 0.075  # approximate width of one 9-10 pt character, inches


def significance_mark(q_value: float) -> str:
    if q_value is None or math.isnan(q_value):
        return ""
    for threshold, mark in SIGNIFICANCE:
        if q_value < threshold:
            return mark
    return ""


def _figure(
    plot_w: float, plot_h: float, left: float, right: float, bottom: float, top: float
) -> tuple[Figure, tuple[float, float, float, float]]:
    """A figure whose plotting area is plot_w x plot_h inches inside the given margins;
    returns it with that area as a figure-fraction rectangle (left, bottom, width, height)."""
    width, height = left + plot_w + right, bottom + plot_h + top
    figure = Figure(figsize=(width, height))
    return figure, (left / width, bottom / height, plot_w / width, plot_h / height)


def _colorbar(figure: Figure, image, rect: tuple[float, ...], label: str) -> None:
    width_in = figure.get_figwidth()
    x = rect[0] + rect[2] + 0.25 / width_in
    cax = figure.add_axes((x, rect[1], 0.18 / width_in, rect[3]))
    figure.colorbar(image, cax=cax, label=label)


def _save(figure: Figure, path: Path) -> Path:
    return write_atomic(path, lambda handle: figure.savefig(handle, dpi=DPI, format="png"),
                        binary=True)  # fmt: skip


def _annotated_grid(
    axes: Axes, texts: list[list[str]], colours: list[list[str]], fontsize: float
) -> None:
    for i, row in enumerate(texts):
        for j, text in enumerate(row):
            axes.text(j, i, text, ha="center", va="center", color=colours[i][j], fontsize=fontsize)


def rho_heatmap(group_table: pd.DataFrame, title: str, path: Path) -> Path:
    """Metrics x dimensions, colour = Spearman rho, text = rho and its significance marks."""
    metrics = list(dict.fromkeys(group_table["metric"]))
    dimensions = list(dict.fromkeys(group_table["dimension"]))
    rho = group_table.pivot(index="metric", columns="dimension", values="rho")
    q = group_table.pivot(index="metric", columns="dimension", values="q_value")
    rho, q = rho.loc[metrics, dimensions], q.loc[metrics, dimensions]
    left = 0.9 + _CHAR_IN * max(len(m) for m in metrics)
    figure, rect = _figure(1.25 * len(dimensions), 0.5 * len(metrics), left, 1.3, 1.25, 0.7)
    axes = figure.add_axes(rect)
    cmap = colormaps["RdBu_r"].copy()
    cmap.set_bad("#d9d9d9")
    values = rho.to_numpy(float)
    image = axes.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-1, vmax=1, aspect="auto")
    texts = [
        [
            "n/a" if math.isnan(v) else f"{v:+.2f}{significance_mark(qv)}"
            for v, qv in zip(r, qr, strict=True)
        ]
        for r, qr in zip(values, q.to_numpy(float), strict=True)
    ]
    colours = [
        ["#555555" if math.isnan(v) else "white" if abs(v) > 0.6 else "black" for v in r]
        for r in values
    ]
    _annotated_grid(axes, texts, colours, 9)
    axes.set_xticks(
        range(len(dimensions)), [dimension_title(d) for d in dimensions], rotation=20, ha="right"
    )
    axes.set_yticks(range(len(metrics)), metrics)
    axes.set_xlabel(f"retention dimension\n{SIGNIFICANCE_NOTE}", fontsize=9)
    axes.set_ylabel("calibration metric")
    axes.set_title(f"Spearman ρ, calibration metric vs retention\n{title}", fontsize=10)
    _colorbar(figure, image, rect, "Spearman ρ")
    return _save(figure, path)


def retention_heatmap(
    source_rows: pd.DataFrame, dimensions: list[str], title: str, path: Path
) -> Path:
    """Sources x dimensions (and total), seed-averaged retention in percent, with ± half its
    range over seeds where a source has several."""
    columns = [*dimensions, TOTAL]
    rows = source_rows.sort_values(retention_column(TOTAL), ascending=False, na_position="last")
    values = rows[[retention_column(d) for d in columns]].to_numpy(float) * 100
    sources = rows["source"].astype(str).tolist()
    left = 0.9 + _CHAR_IN * max(len(s) for s in sources)
    figure, rect = _figure(1.2 * len(columns), 0.34 * len(sources), left, 1.3, 0.8, 0.7)
    axes = figure.add_axes(rect)
    cmap = colormaps["viridis"].copy()
    cmap.set_bad("#d9d9d9")
    finite = values[np.isfinite(values)]
    top = max(100.0, float(finite.max())) if finite.size else 100.0
    image = axes.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=top, aspect="auto")
    # half the range over seeds, in points; NaN with one seed
    ranges = np.column_stack(
        [half_seed_range(rows, retention_column(d)).to_numpy(float) * 100 for d in columns]
    )
    texts = [
        ["n/a" if math.isnan(v) else f"{v:.1f}" + ("" if math.isnan(h) else f"\n±{h:.1f}")
         for v, h in zip(r, hr, strict=True)]
        for r, hr in zip(values, ranges, strict=True)
    ]  # fmt: skip
    colours = [["black" if v > 0.6 * top else "white" for v in r] for r in values]
    _annotated_grid(axes, texts, colours, 8)
    axes.set_xticks(range(len(columns)), [dimension_title(d) for d in columns])
    axes.set_yticks(range(len(sources)), sources)
    axes.set_xlabel("dimension")
    axes.set_ylabel("calibration source (sorted by total)")
    axes.set_title(f"Retention by calibration source (% of dense)\n{title}", fontsize=10)
    _colorbar(figure, image, rect, "retention (%)")
    return _save(figure, path)


def _half_range(rows: pd.DataFrame, column: str) -> np.ndarray | None:
    """Half of each row's range over seeds, in points (None when no row has several seeds)."""
    half = half_seed_range(rows, column)
    return None if half.isna().all() else half.fillna(0.0).to_numpy(float) * 100


_LEGEND_CHAR_IN = 0.055  # one character at fontsize 7, inches
_LEGEND_ROW_IN = 0.19  # one legend row at fontsize 7, inches
_MARKERS = ("o", "s", "^", "D", "v")


def _legend_rows(labels: list[str], width_in: float) -> tuple[int, int]:
    """(columns, rows) of a legend of ``labels`` laid out across ``width_in`` inches."""
    entry_in = 0.55 + _LEGEND_CHAR_IN * max([len(label) for label in labels] + [4])
    columns = max(1, min(len(labels), int(width_in // entry_in)))
    return columns, -(-len(labels) // columns)


def _legend_height(rows: int, title: bool = True) -> float:
    return 0.15 + rows * _LEGEND_ROW_IN + (0.2 if title else 0.0)


def retention_vs_sparsity(
    source_rows: pd.DataFrame,
    mix_rows: pd.DataFrame,
    dimensions: list[str],
    title: str,
    path: Path,
) -> Path:
    """One panel per dimension (and total): retention vs sparsity, a line per source,
    the uniform mix dashed in black; error bars span each point's range over seeds. The legend
    sits below the panels, in as many columns as fit, so that no number of sources covers the
    data."""
    panels = [*dimensions, TOTAL]
    sources = sorted(source_rows["source"].astype(str).unique())
    palette = colormaps["tab10" if len(sources) <= 10 else "tab20"]
    n_colours = 10 if len(sources) <= 10 else 20
    uniform = mix_rows[mix_rows["entry"] == "uniform mix"].sort_values("sparsity")
    labels = (["uniform mix"] if not uniform.empty else []) + sources
    panel_w, gap, left, right = 2.6, 0.25, 0.8, 0.3
    plot_w = len(panels) * panel_w + (len(panels) - 1) * gap
    columns, rows = _legend_rows(labels, left + plot_w + right - 0.3)
    legend_in = _legend_height(rows)
    figure, rect = _figure(plot_w, 2.6, left, right, 0.6 + legend_in, 0.75)
    by_source = {s: part.sort_values("sparsity") for s, part in source_rows.groupby("source")}
    first: Axes | None = None
    width_in = figure.get_figwidth()
    for k, dimension in enumerate(panels):
        x0 = rect[0] + k * (panel_w + gap) / width_in
        axes = figure.add_axes((x0, rect[1], panel_w / width_in, rect[3]), sharey=first)
        first = first or axes
        column = retention_column(dimension)
        if not uniform.empty and column in uniform:
            axes.errorbar(
                uniform["sparsity"] * 100,
                uniform[column] * 100,
                yerr=_half_range(uniform, column),
                fmt="k--",
                marker="s",
                markersize=4,
                linewidth=2,
                capsize=3,
                label="uniform mix",
                zorder=3,
            )
        for colour, source in enumerate(sources):
            rows_ = by_source[source]
            axes.errorbar(
                rows_["sparsity"] * 100,
                rows_[column] * 100,
                yerr=_half_range(rows_, column),
                marker=_MARKERS[(colour // n_colours) % len(_MARKERS)],
                markersize=3,
                linewidth=1.2,
                capsize=2,
                elinewidth=0.8,
                color=palette(colour % n_colours),
                label=source,
            )
        axes.set_title(dimension_title(dimension), fontsize=10)
        axes.set_xlabel("target sparsity (%)")
        axes.grid(alpha=0.3)
        if k:
            axes.tick_params(labelleft=False)
    first.set_ylabel("retention (% of dense)")
    handles, names = first.get_legend_handles_labels()
    figure.legend(
        handles,
        names,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.05 / figure.get_figheight()),
        ncol=columns,
        fontsize=7,
        title="calibration",
        title_fontsize=8,
        frameon=False,
    )
    figure.suptitle(f"Retention vs sparsity — {title}", fontsize=11)
    return _save(figure, path)


def overview(
    panels: list[tuple[int, int, str, pd.DataFrame]],
    dimensions: list[str],
    title: str,
    path: Path,
) -> Path:
    """Small multiples, one panel per group at its (row, column): per dimension, total and
    worst, grouped bars of the retention of each dimension's aligned source, the best single
    source on total and the uniform mix (``analysis.overview.overview_bars``). A source keeps
    its colour in every panel; each panel's legend says which quantities its sources lead."""
    quantities = [*dimensions, TOTAL, WORST]
    names = [dimension_title(q) for q in quantities]
    sources = sorted({str(s) for _, _, _, bars in panels for s in bars["source"].dropna()})
    palette = colormaps["tab10" if len(sources) <= 10 else "tab20"]
    colour_of = {s: palette(i % (10 if len(sources) <= 10 else 20)) for i, s in enumerate(sources)}
    n_rows = 1 + max(r for r, _, _, _ in panels)
    n_cols = 1 + max(c for _, c, _, _ in panels)
    most = max(len(bars) for _, _, _, bars in panels)
    legend_rows = -(-most // 2)
    cluster_in = max(0.7, 0.1 + 0.07 * max(len(n) for n in names))  # fits its tick label
    panel_w = max(cluster_in * (len(quantities) + 0.4), 0.16 * len(quantities) * (most + 1))
    panel_h = 2.2
    band = 0.5 + legend_rows * 0.16  # tick labels and the panel's legend, below each panel
    gap_w, gap_h = 0.3, band + 0.45
    plot_w = n_cols * panel_w + (n_cols - 1) * gap_w
    heading = textwrap.wrap(title, int((plot_w + 1.0) / 0.09))
    figure, rect = _figure(plot_w, n_rows * panel_h + (n_rows - 1) * gap_h, 0.75, 0.25, band,
                           0.7 + 0.2 * len(heading))  # fmt: skip
    width_in, height_in = figure.get_figwidth(), figure.get_figheight()
    values = [100 * bars[retention_column(q)].to_numpy(float) for _, _, _, bars in panels
              for q in quantities if retention_column(q) in bars]  # fmt: skip
    finite = np.concatenate(values) if values else np.array([])
    finite = finite[np.isfinite(finite)]
    top = 10 * math.ceil(max(100.0, float(finite.max()) if finite.size else 100.0) * 1.06 / 10)
    x = np.arange(len(quantities)) + np.array([0.0] * len(dimensions) + [0.4, 0.4])
    first: Axes | None = None
    for row, column, label, bars in panels:
        x0 = rect[0] + column * (panel_w + gap_w) / width_in
        y0 = rect[1] + (n_rows - 1 - row) * (panel_h + gap_h) / height_in
        axes = figure.add_axes((x0, y0, panel_w / width_in, panel_h / height_in), sharey=first)
        first = first or axes
        width = 0.84 / max(1, len(bars))
        for k, bar in enumerate(bars.to_dict("records")):
            heights = [100 * float(bar.get(retention_column(q), math.nan)) for q in quantities]
            uniform = not isinstance(bar["source"], str)
            leads = ", ".join(dimension_title(q) for q in bar["best_on"])
            axes.bar(
                x + (k - (len(bars) - 1) / 2) * width,
                heights,
                width,
                color="#333333" if uniform else colour_of[bar["source"]],
                edgecolor="white",
                linewidth=0.4,
                hatch="///" if uniform else None,
                label=str(bar["entry"]) + (f" — best {leads}" if leads else ""),
            )
        axes.axhline(100, color="grey", linestyle=":", linewidth=0.9)
        axes.set_ylim(0, top)
        axes.set_xticks(x, names, fontsize=8)
        axes.tick_params(axis="y", labelsize=8)
        axes.grid(axis="y", alpha=0.3)
        axes.set_title(label, fontsize=9)
        if column:
            axes.tick_params(labelleft=False)
        else:
            axes.set_ylabel("retention (% of dense)", fontsize=8)
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=6.5,
                    frameon=False, handlelength=1.2, columnspacing=1.0)  # fmt: skip
    figure.suptitle("\n".join(heading), fontsize=11)
    return _save(figure, path)


def mix_comparison(mix_rows: pd.DataFrame, dimensions: list[str], title: str, path: Path) -> Path:
    """Grouped bars: per dimension, total and worst retention, one bar per compared entry."""
    categories = [retention_column(d) for d in dimensions] + ["total_retention", "worst_retention"]
    names = [dimension_title(d) for d in dimensions] + ["Total", "Worst"]
    kept = [(c, n) for c, n in zip(categories, names, strict=True) if c in mix_rows.columns]
    labels = [
        row["entry"] + ("" if row["entry"] == row["mix_name"] else f" [{row['mix_name']}]")
        for _, row in mix_rows.iterrows()
    ]
    legend_in = 0.5 + 0.065 * max(len(label) for label in labels)
    figure, rect = _figure(1.4 * len(kept), 3.0, 0.8, legend_in, 0.6, 0.7)
    axes = figure.add_axes(rect)
    palette = colormaps["tab10"]
    x = np.arange(len(kept))
    width = 0.8 / len(labels)
    for k, (label, (_, row)) in enumerate(zip(labels, mix_rows.iterrows(), strict=True)):
        values = row[[c for c, _ in kept]].to_numpy(float) * 100
        offset = (k - (len(labels) - 1) / 2) * width
        axes.bar(x + offset, values, width, label=label, color=palette(k % 10))
    axes.set_xticks(x, [n for _, n in kept])
    axes.set_xlabel("dimension")
    axes.set_ylabel("retention (% of dense)")
    axes.set_title(f"Calibration mixes compared\n{title}", fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(figure, path)


def run_scatter(shared: pd.DataFrame, first: str, second: str, path: Path) -> Path:
    """Each shared point's total and worst retention in ``second`` against ``first``; points
    above the diagonal retained more in ``second``."""
    figure, rect = _figure(3.6, 3.6, 0.9, 1.8, 0.7, 0.5)
    axes = figure.add_axes(rect)
    values = []
    for measure, marker, colour in (("total_retention", "o", "tab:blue"),
                                    ("worst_retention", "^", "tab:red")):  # fmt: skip
        x = shared.get(f"{measure} {first}")
        y = shared.get(f"{measure} {second}")
        if x is None or y is None:
            continue
        x, y = x.to_numpy(float) * 100, y.to_numpy(float) * 100
        axes.scatter(x, y, marker=marker, color=colour, s=22, label=measure.replace("_", " "))
        values += [*x[np.isfinite(x)], *y[np.isfinite(y)]]
    low, high = (min(values), max(values)) if values else (0.0, 100.0)
    pad = max(1.0, 0.05 * (high - low))
    axes.plot([low - pad, high + pad], [low - pad, high + pad], color="grey", lw=0.8, ls="--")
    axes.set_xlim(low - pad, high + pad)
    axes.set_ylim(low - pad, high + pad)
    axes.set_xlabel(f"{first}: retention (% of dense)")
    axes.set_ylabel(f"{second}: retention (% of dense)")
    axes.set_title(f"{len(shared)} shared point(s)", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(figure, path)


def agreement_scatter(values: pd.DataFrame, table: pd.DataFrame, first: str, second: str,
                      path: Path) -> Path:  # fmt: skip
    """Per ranked group, each calibration choice's total retention in ``second`` against
    ``first``, with the group's Kendall tau in the legend: choices on a rising line are ranked
    alike by both runs."""
    keys = [c for c in table.columns if c in values.columns and c not in ("choice", "quantity")]
    ranked = table[table["quantity"] == TOTAL]
    figure, rect = _figure(4.2, 4.2, 0.9, 2.6, 0.7, 0.5)
    axes = figure.add_axes(rect)
    colours = colormaps["tab10"]
    seen = []
    for i, (_, row) in enumerate(ranked.iterrows()):
        mask = np.ones(len(values), bool)
        for k in keys:
            mask &= (values[k] == row[k]).to_numpy()
        part = values[mask]
        x, y = part["a"].to_numpy(float) * 100, part["b"].to_numpy(float) * 100
        label = " · ".join(f"{row[k] * 100:g}%" if k == "sparsity" else str(row[k]) for k in keys)
        axes.scatter(x, y, s=18, color=colours(i % 10),
                     label=f"{label}: τ {row['kendall_tau']:+.2f}")  # fmt: skip
        seen += [*x, *y]
    low, high = (min(seen), max(seen)) if seen else (0.0, 100.0)
    pad = max(1.0, 0.05 * (high - low))
    axes.plot([low - pad, high + pad], [low - pad, high + pad], color="grey", lw=0.8, ls="--")
    axes.set_xlabel(f"{first}: total retention (% of dense)")
    axes.set_ylabel(f"{second}: total retention (% of dense)")
    axes.set_title("calibration choices, one colour per group", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(figure, path)


def expert_load(loads: list, path: Path) -> Path:
    """One panel per calibration source: MoE layer x expert, log10 of the routed tokens;
    cells under the coverage threshold are crossed out."""
    columns = min(4, len(loads))
    rows = -(-len(loads) // columns)
    layers, experts = loads[0].tokens.shape
    panel_w, panel_h = max(1.6, 0.22 * experts), max(1.0, 0.22 * layers)
    gap_w, gap_h = 0.5, 0.55
    figure, rect = _figure(
        columns * panel_w + (columns - 1) * gap_w, rows * panel_h + (rows - 1) * gap_h,
        0.6, 1.2, 0.5, 0.8,
    )  # fmt: skip
    width_in, height_in = figure.get_figwidth(), figure.get_figheight()
    top = max(float(np.log10(1 + load.tokens).max()) for load in loads)
    image = None
    for k, load in enumerate(loads):
        r, c = divmod(k, columns)
        x0 = rect[0] + c * (panel_w + gap_w) / width_in
        y0 = rect[1] + (rows - 1 - r) * (panel_h + gap_h) / height_in
        axes = figure.add_axes((x0, y0, panel_w / width_in, panel_h / height_in))
        values = np.log10(1 + load.tokens)
        image = axes.imshow(values, cmap="magma", vmin=0, vmax=top, aspect="auto")
        for i, j in load.uncovered:
            axes.text(j, i, "×", ha="center", va="center", color="cyan", fontsize=7)
        axes.set_title(f"{load.source} ({100 * load.coverage:.0f}%)", fontsize=7)
        axes.set_xticks([])
        axes.set_yticks(range(layers) if layers <= 8 else [])
        axes.tick_params(labelsize=6)
        if c == 0:
            axes.set_ylabel("layer", fontsize=7)
    assert image is not None
    cax = figure.add_axes((1 - 0.9 / width_in, rect[1], 0.15 / width_in, rect[3]))
    figure.colorbar(image, cax=cax, label="log10(1 + routed tokens)")
    figure.suptitle(
        f"Routed calibration tokens per expert (columns) and MoE layer (rows); "
        f"× = under {loads[0].min_tokens} tokens; title: expert coverage",
        fontsize=9,
    )
    return _save(figure, path)


def paired_differences(table: pd.DataFrame, title: str, path: Path) -> Path:
    """One group's paired comparisons: per comparison (rows) the difference B − A in total and
    worst retention (two panels), points of % dense, with its 95% interval as an error bar;
    differences whose interval holds 0 are drawn hollow and grey. A pair compared twice (the
    best single source is also the reference) is drawn once."""
    panels = [("total", "Δ total retention"), ("worst", "Δ worst retention")]
    table = table.drop_duplicates(subset=["b", "a", "quantity"])
    order = list(dict.fromkeys(zip(table["b"], table["a"], strict=True)))
    labels = [f"{b} − {a}" for b, a in order]
    left = 0.4 + _CHAR_IN * max(len(label) for label in labels)
    panel_w, gap = 3.0, 0.3
    figure, rect = _figure(2 * panel_w + gap, 0.2 + 0.45 * len(order), left, 0.3, 0.75, 0.65)
    width_in = figure.get_figwidth()
    first: Axes | None = None
    for k, (quantity, name) in enumerate(panels):
        x0 = rect[0] + k * (panel_w + gap) / width_in
        axes = figure.add_axes((x0, rect[1], panel_w / width_in, rect[3]), sharey=first)
        first = first or axes
        rows = table[table["quantity"] == quantity].set_index(["b", "a"])
        for y, pair in enumerate(order):
            if pair not in rows.index:
                continue
            row = rows.loc[pair]
            value, low, high = (100 * float(row[c]) for c in ("difference", "ci_low", "ci_high"))
            grey = bool(row["contains_zero"])
            colour = "#888888" if grey else "tab:blue"
            axes.errorbar(value, y, xerr=[[value - low], [high - value]], fmt="o", color=colour,
                          mfc="white" if grey else colour, capsize=3, markersize=5)  # fmt: skip
        axes.axvline(0, color="black", lw=0.8)
        axes.set_title(name, fontsize=9)
        axes.set_xlabel("B − A (points of % dense)")
        axes.grid(axis="x", alpha=0.3)
        axes.set_ylim(len(order) - 0.5, -0.5)
        if k:
            axes.tick_params(labelleft=False)
    first.set_yticks(range(len(order)), labels)
    figure.suptitle(f"Paired comparisons, 95% bootstrap interval (hollow: holds 0)\n{title}",
                    fontsize=10)  # fmt: skip
    return _save(figure, path)


def owl_allocation(allocations: pd.DataFrame, target: float, title: str, path: Path) -> Path:
    """One group's OWL allocations (``analysis.allocation.owl_allocations``): layer sparsity
    (%) against the decoder layer, a line per calibration set; the uniform mix black, thick and
    dashed, the target sparsity a grey dotted line."""
    sets = sorted(allocations["source"].astype(str).unique())
    n_layers = int(allocations["layer"].max()) + 1
    legend_in = 0.6 + _CHAR_IN * max([len(s) for s in sets] + [12])
    figure, rect = _figure(min(9.0, max(4.0, 0.28 * n_layers)), 3.0, 0.8, legend_in, 0.6, 0.6)
    axes = figure.add_axes(rect)
    palette = colormaps["tab20"]
    for colour, name in enumerate(sets):
        rows = allocations[allocations["source"] == name].sort_values("layer")
        x, y = rows["layer"].to_numpy(int), rows["layer_sparsity"].to_numpy(float) * 100
        if name == "uniform" and (rows["n_sources"] > 1).all():
            axes.plot(x, y, "k--", marker="s", markersize=4, linewidth=2.4, label="uniform mix",
                      zorder=3)  # fmt: skip
        else:
            axes.plot(x, y, marker="o", markersize=3, linewidth=1.1, color=palette(colour % 20),
                      label=name)  # fmt: skip
    if not math.isnan(target):
        axes.axhline(100 * target, color="grey", linestyle=":", linewidth=1,
                     label=f"target {100 * target:g}%")  # fmt: skip
    axes.set_xlabel("decoder layer")
    axes.set_ylabel("layer sparsity (%)")
    axes.set_xticks(range(0, n_layers, max(1, n_layers // 16)))
    axes.set_xlim(-0.5, n_layers - 0.5)
    axes.grid(alpha=0.3)
    width_in = figure.get_figwidth()
    handles, labels = axes.get_legend_handles_labels()
    figure.legend(handles, labels, loc="center left", fontsize=7, title="calibration",
                  bbox_to_anchor=(1 - (legend_in - 0.15) / width_in, 0.5))  # fmt: skip
    axes.set_title(f"OWL layer sparsity by calibration set\n{title}", fontsize=10)
    return _save(figure, path)


_LINESTYLES = ("-", "--", ":", "-.")


def generation_vs_sparsity(table: pd.DataFrame, path: Path) -> Path:
    """Two panels from ``analysis.generation.generation_table``: mean generated tokens and the
    share of generations cut by ``max_gen_toks`` (%) against sparsity (dense at 0), a colour per
    generative task and a line style per method."""
    tasks = sorted(table["task"].astype(str).unique())
    methods = sorted(table["method"].astype(str).unique())
    legend_in = 0.6 + _CHAR_IN * max(len(f"{t} ({m})") for t in tasks for m in methods)
    figure, rect = _figure(5.6, 2.6, 0.7, legend_in, 0.6, 0.6)
    width_in = figure.get_figwidth()
    panel_w = (rect[2] - 0.6 / width_in) / 2
    palette = colormaps["tab10"]
    panels = (
        ("mean_tokens", "mean generated tokens", 1.0),
        ("truncated_share", "cut by max_gen_toks (%)", 100.0),
    )
    handles: list = []
    names: list[str] = []
    for k, (column, label, scale) in enumerate(panels):
        x0 = rect[0] + k * (panel_w + 0.6 / width_in)
        axes = figure.add_axes((x0, rect[1], panel_w, rect[3]))
        for colour, task in enumerate(tasks):
            for style, method in enumerate(methods):
                rows = table[(table["task"] == task) & (table["method"] == method)]
                rows = rows[rows[column].notna()].sort_values("sparsity")
                axes.plot(rows["sparsity"] * 100, rows[column] * scale, marker="o",
                          markersize=3, linewidth=1.2, color=palette(colour % 10),
                          linestyle=_LINESTYLES[style % len(_LINESTYLES)],
                          label=f"{task} ({method})")  # fmt: skip
        # Both panels start at the dense model and at zero, so growth reads as growth.
        axes.set_xlim(-3, 100 * float(table["sparsity"].max()) + 3)
        axes.set_ylim(bottom=0)
        axes.set_xlabel("target sparsity (%, dense at 0)")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        if k == 0:
            handles, names = axes.get_legend_handles_labels()
    figure.legend(handles, names, loc="center left", fontsize=7, title="task (method)",
                  bbox_to_anchor=(1 - (legend_in - 0.15) / width_in, 0.5))  # fmt: skip
    figure.suptitle("What pruned models generate: length and truncation by sparsity", fontsize=10)
    return _save(figure, path)
