"""Run every analysis on a records file and write tables, figures, report.md and report.html.

The report opens with a table of contents, a summary (per group the best single source per
dimension beside the uniform mix, and the dense model's scores with their chance levels) and
the overview figure ``figures/overview.png`` (``analysis.overview``); the sections follow.

Files written to the output directory (default ``<run dir>/report/``):
``correlations.csv``, ``correlation_notes.csv``, ``artifact.csv``, ``mixes.csv``,
``retention.csv`` (every trial, flattened), ``figures/*.png``, ``report.md``, ``report.html``;
when the run has per-item side files (``items/``), also ``paired.csv`` and ``paired_notes.csv``
(see ``analysis.comparisons``); when some trial was pruned with OWL or a mask refinement,
``owl_allocations.csv``, ``owl_spread.csv``, ``owl_distances.csv``, ``variants_paired.csv``,
``variants_summary.csv``, ``owl_correlations.csv``, ``allocation_notes.csv`` and the figures
``owl_<group>.png`` and ``variants_<group>.png`` (see ``analysis.allocation``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import figures
from analysis.allocation import SPREAD, AllocationResults, allocation_matrix, analyse_allocation
from analysis.artifact import averaging_artifact
from analysis.comparisons import PairedResults, interval_text, paired_comparisons, report_view
from analysis.correlations import CorrelationResult, correlations
from analysis.experts import coverage_table, expert_loads
from analysis.generation import generation_table, task_retention_table
from analysis.headlines import dimension_title, headline
from analysis.markup import (
    Block,
    Bullets,
    Contents,
    Heading,
    Image,
    Links,
    Paragraph,
    Table,
    render_html,
    render_markdown,
)
from analysis.mixes import compare_mixes
from analysis.overview import dense_levels, overview_bars, summary_rows
from analysis.paired import DEFAULT_RESAMPLES
from analysis.records import (
    GROUP_KEYS,
    TOTAL,
    WORST,
    RecordSet,
    dimensions_in,
    group_label,
    group_slug,
    groups,
    half_seed_range,
    load_records,
    ok_trials,
    retention_column,
    source_means,
)
from analysis.runs import RunInfo, shared_points
from analysis.study import STUDY_MODEL, STUDY_SETTING, STUDY_SWEEP, study_comparison
from analysis.writing import write_text_atomic

DEFAULT_MAX_FIGURE_GROUPS = 6
MAX_OVERVIEW_PANELS = 24  # groups in the overview figure; the summary table has them all
_MAX_PAIRED_NOTES = 10  # in the report's notes; paired_notes.csv has them all
# Leading columns of retention.csv; every other flattened field follows alphabetically.
_LEADING = (
    "trial_id", "sweep", "phase", "status", "error", "model", "method", "structure", "sparsity",
    "achieved_sparsity", "mix_name", "source", "n_sources", "n_samples", "seqlen", "seed",
    "total_retention", "worst_retention",
)  # fmt: skip


@dataclass(frozen=True)
class Analysis:
    """Every table the report is made of, computed from one RecordSet."""

    records: RecordSet
    group_by: tuple[str, ...]
    reference: str | None
    correlations: CorrelationResult
    artifact: pd.DataFrame
    mixes: pd.DataFrame
    sources: pd.DataFrame  # seed-averaged single sources (analysis.records.source_means)
    headlines: dict[str, str]  # group label -> sentence
    study: pd.DataFrame | None  # published vs run, when the records come from the study sweep
    runs: tuple[RunInfo, ...] = ()  # the runs compared, when the records come from several
    shared: pd.DataFrame | None = None  # their shared points side by side (analysis.runs)
    paired: PairedResults | None = None  # paired comparisons, when the run has side files
    allocation: AllocationResults | None = None  # when some trial used OWL or a refinement


@dataclass(frozen=True)
class ReportFiles:
    out_dir: Path
    report_md: Path
    report_html: Path
    tables: dict[str, Path]
    figures: list[Path] = field(default_factory=list)


# ``reference="auto"``: the study's web-text baseline where the run has it as a single source,
# else none, without a note (a toy run has no c4); a reference named explicitly that the run
# lacks is noted.
AUTO_REFERENCE = "auto"
DEFAULT_REFERENCE = "c4"


def _default_reference(sources: pd.DataFrame) -> str | None:
    present = "source" in sources and (sources["source"] == DEFAULT_REFERENCE).any()
    return DEFAULT_REFERENCE if present else None


def analyse(
    records: RecordSet | str | Path,
    *,
    group_by: tuple[str, ...] = GROUP_KEYS,
    reference: str | None = AUTO_REFERENCE,
    n_resamples: int = 9999,
    seed: int = 0,
    runs: tuple[RunInfo, ...] = (),
    paired_resamples: int = DEFAULT_RESAMPLES,
) -> Analysis:
    """Load (if given a path) and compute every table of the report; ``runs`` describes the
    runs of records read by :func:`analysis.runs.load_runs`. ``reference`` names the reference
    source of the mix table and of the paired comparisons (``"auto"``: c4 where the run has
    it), which draw ``paired_resamples``
    bootstrap replicates from ``seed``."""
    if not isinstance(records, RecordSet):
        records = load_records(records)
    group_by = tuple(group_by)
    missing = [k for k in group_by if k not in records.trials.columns]
    if missing:
        raise ValueError(f"cannot group by {missing}: not a field of the records")
    corr = correlations(records, group_by=group_by, n_resamples=n_resamples, seed=seed)
    sources = source_means(ok_trials(records), group_by)
    if reference == AUTO_REFERENCE:
        reference = _default_reference(sources)
    mixes = compare_mixes(records, group_by=group_by, reference=reference)
    headlines = {
        group_label(group_by, key): headline(table) for key, table in groups(corr.table, group_by)
    }
    study = None
    if "sweep" in records.trials and (records.trials["sweep"] == STUDY_SWEEP).any():
        study = study_comparison(corr.table, mixes, sources)
    return Analysis(
        records,
        group_by,
        reference,
        corr,
        averaging_artifact(records, group_by=group_by),
        mixes,
        sources,
        headlines,
        study,
        tuple(runs),
        shared_points(records, runs) if len(runs) >= 2 else None,
        paired_comparisons(
            records,
            group_by=group_by,
            reference=reference,
            runs=runs,
            n_resamples=paired_resamples,
            seed=seed,
        ),  # fmt: skip
        analyse_allocation(
            records,
            group_by=group_by,
            runs=runs,
            n_resamples=n_resamples,
            paired_resamples=paired_resamples,
            seed=seed,
        ),
    )


def _pct(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{100 * float(value):.1f}"


def _signed(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):+.2f}"


def _rho_pivot(table: pd.DataFrame) -> pd.DataFrame:
    dimensions = list(dict.fromkeys(table["dimension"]))
    rows = []
    for metric, part in table.groupby("metric", sort=True):
        cells = {"metric": metric}
        for row in part.itertuples(index=False):
            if pd.isna(row.rho):
                cells[dimension_title(row.dimension)] = "n/a"
            else:
                cells[dimension_title(row.dimension)] = (
                    f"{row.rho:+.2f}{figures.significance_mark(row.q_value)} "
                    f"[{_signed(row.ci_low)}, {_signed(row.ci_high)}]"
                )
        rows.append(cells)
    return pd.DataFrame(rows, columns=["metric", *[dimension_title(d) for d in dimensions]])


def _artifact_view(part: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dimension": [dimension_title(d) for d in part["dimension"]],
            "sources": part["n_sources"],
            "trials": part["n_trials"],
            "spread (points)": [_pct(v) for v in part["spread"]],
            "lowest": [
                f"{s} ({_pct(v)})"
                for s, v in zip(part["min_source"], part["min_retention"], strict=True)
            ],
            "highest": [
                f"{s} ({_pct(v)})"
                for s, v in zip(part["max_source"], part["max_retention"], strict=True)
            ],
            "variance explained by source (%)": [_pct(v) for v in part["source_share"]],
        }
    )


def _with_range(part: pd.DataFrame, column: str) -> list[str]:
    """``81.2 ±0.6``: the seed mean in % and half its range over seeds (only with several)."""
    return [
        _pct(v) + ("" if pd.isna(h) else f" ±{100 * float(h):.1f}")
        for v, h in zip(part[column], half_seed_range(part, column), strict=True)
    ]


def _mix_view(part: pd.DataFrame, dimensions: list[str]) -> pd.DataFrame:
    view = pd.DataFrame(
        {"entry": part["entry"], "calibration": part["mix"], "trials": part["n_trials"]}
    )
    for dimension in dimensions:
        column = retention_column(dimension)
        if column in part:
            view[f"{dimension_title(dimension)} (%)"] = _with_range(part, column)
    for column, title in (("total_retention", "Total (%)"), ("worst_retention", "Worst (%)")):
        if column in part:
            view[title] = _with_range(part, column)
    return view


def _study_view(study: pd.DataFrame) -> pd.DataFrame:
    def show(quantity: str, value: float) -> str:
        if pd.isna(value):
            return "not in this run"
        return _signed(value) if "rho" in quantity else f"{100 * value:.1f}%"

    return pd.DataFrame(
        {
            "quantity": study["quantity"],
            f"published ({STUDY_MODEL})": [
                show(q, v) for q, v in zip(study["quantity"], study["published"], strict=True)
            ],
            "this run": [show(q, v) for q, v in zip(study["quantity"], study["run"], strict=True)],
            "matched": study["run_match"],
        }
    )


def _summary_blocks(analysis: Analysis) -> list[Block]:
    records = analysis.records
    trials = records.trials
    ok = ok_trials(records)
    sweeps = sorted(trials["sweep"].dropna().astype(str).unique()) if "sweep" in trials else []
    models = sorted(trials["model"].dropna().astype(str).unique()) if "model" in trials else []
    phases = ok["phase"].value_counts()
    files = [str(r.path) for r in analysis.runs] or [str(records.path)]
    items = [
        f"records file{'s' if len(files) > 1 else ''}: {', '.join(files)}",
        f"trials: {len(trials)} read, {len(ok)} ok, {records.n_errors} failed"
        + (
            f", {len(records.broken_lines)} unreadable line(s) skipped"
            if records.broken_lines
            else ""
        )
        + (
            f", {records.superseded} earlier record(s) of retried trials left out"
            if records.superseded
            else ""
        ),
        "phases (ok trials): " + (", ".join(f"{p} {n}" for p, n in phases.items()) or "none"),
        f"sweep: {', '.join(sweeps) or 'unknown'}; model: {', '.join(models) or 'unknown'}",
        "groups: " + (", ".join(analysis.group_by) or "none (all trials together)"),
        "correlations over single-source grid trials averaged over seeds per source; "
        "95% percentile bootstrap over sources; BH q-values within each group",
    ]
    paired = analysis.paired
    if paired is not None:
        items.append(
            f"paired comparisons: {len(paired.comparisons)} from per-item side files; 95% "
            f"percentile interval of {paired.n_resamples} paired bootstrap replicates "
            f"(seed {paired.seed}) over items within each task and over calibration seeds"
        )
    return [Bullets(tuple(items))]


def _notes_blocks(analysis: Analysis, drawn: int, skipped: int) -> list[Block]:
    items: list[str] = []
    for line in analysis.records.broken_lines:
        items.append(f"line {line.line} of the records file was skipped: {line.reason}")
    for message, count in analysis.records.error_counts().items():
        items.append(f"{count} failed trial(s): {message}")
    items += _undefined_dimension_notes(analysis.records)
    if analysis.paired is not None:
        paired_notes = list(analysis.paired.notes)
        items += [f"paired comparisons: {note}" for note in paired_notes[:_MAX_PAIRED_NOTES]]
        if len(paired_notes) > _MAX_PAIRED_NOTES:
            items.append(f"paired comparisons: {len(paired_notes) - _MAX_PAIRED_NOTES} more "
                         "note(s) in paired_notes.csv")  # fmt: skip
    if analysis.allocation is not None:
        allocation_notes = list(analysis.allocation.notes)
        items += [f"allocation and refinement: {note}"
                  for note in allocation_notes[:_MAX_PAIRED_NOTES]]  # fmt: skip
        if len(allocation_notes) > _MAX_PAIRED_NOTES:
            items.append(f"allocation and refinement: {len(allocation_notes) - _MAX_PAIRED_NOTES} "
                         "more note(s) in allocation_notes.csv")  # fmt: skip
    notes = analysis.correlations.notes
    for key, part in groups(notes, analysis.group_by):
        label = group_label(analysis.group_by, key)
        for reason, count in part["reason"].value_counts().items():
            items.append(f"{label}: {count} correlation(s) NaN or adjusted — {reason}")
    if skipped:
        items.append(
            f"per-group figures were drawn for the first {drawn} group(s) only; {skipped} more "
            "appear in the tables and CSV files (raise --max-figure-groups to draw them)"
        )
    return [Bullets(tuple(items))] if items else [Paragraph("Nothing to note.")]


def _undefined_dimension_notes(records: RecordSet) -> list[str]:
    """Dimensions whose retention is undefined in every ok trial (dense model at chance)."""
    ok = ok_trials(records)
    measured = [c.split(".", 1)[1] for c in ok.columns if c.startswith("dense_dimension_scores.")]
    items = []
    for dimension in measured:
        column = retention_column(dimension)
        if ok.empty or (column in ok and ok[column].notna().any()):
            continue
        dense = pd.to_numeric(ok[f"dense_dimension_scores.{dimension}"], errors="coerce")
        items.append(
            f"{dimension_title(dimension)}: the dense model scores {dense.max():.3f}, at or below "
            "chance, so its retention is undefined in every trial and this report has no "
            f"{dimension_title(dimension)} column; total and worst retention are over the other "
            "dimensions only"
        )
    return items


def write_report(
    records: Analysis | RecordSet | str | Path,
    out_dir: str | Path | None = None,
    *,
    group_by: tuple[str, ...] = GROUP_KEYS,
    reference: str | None = AUTO_REFERENCE,
    n_resamples: int = 9999,
    seed: int = 0,
    max_figure_groups: int = DEFAULT_MAX_FIGURE_GROUPS,
    workers: int | None = None,
    paired_resamples: int = DEFAULT_RESAMPLES,
) -> ReportFiles:
    """Analyse ``records`` (unless given an :class:`Analysis`) and write every output file.

    Per-group figures are drawn for the first ``max_figure_groups`` groups (tables cover all),
    by ``workers`` processes (default: up to 2), started with ``spawn``.
    """
    if isinstance(records, Analysis):
        analysis = records
    else:
        analysis = analyse(
            records, group_by=group_by, reference=reference, n_resamples=n_resamples, seed=seed,
            paired_resamples=paired_resamples,
        )  # fmt: skip
    out = Path(out_dir) if out_dir is not None else analysis.records.path.parent / "report"
    out.mkdir(parents=True, exist_ok=True)
    tables = _write_tables(analysis, out)
    jobs: list[_FigureJob] = []
    blocks: list[Block] = [Heading(1, "raysweep analysis"), *_summary_blocks(analysis)]
    blocks += [Links("tables", tuple(p.name for p in tables.values())), Contents()]
    _first_page_blocks(analysis, out, blocks, jobs, max_figure_groups)
    blocks += [
        Heading(2, "Headlines: strongest opposite-sign correlation per group"),
        Bullets(tuple(f"{label}: {text}" for label, text in analysis.headlines.items()))
        if analysis.headlines
        else Paragraph(
            "No correlation to report: no single-source grid trial has both calibration "
            "metrics and retention values."
        ),
    ]
    if analysis.paired is not None and analysis.paired.headlines:
        blocks += [
            Heading(2, "Headlines: uniform mix vs the best single source (paired bootstrap)"),
            Bullets(tuple(f"{k}: {v}" for k, v in analysis.paired.headlines.items())),
        ]
    if analysis.study is not None:
        blocks += [
            Heading(2, "The study's published numbers beside this run"),
            Paragraph(
                "Published: SparseGPT, 60% unstructured sparsity, LLaMA-3.1-8B (arXiv 2606.03328). "
                "This run's values come from its group "
                + group_label(tuple(STUDY_SETTING), tuple(STUDY_SETTING.values()))
                + "."
            ),
            Table(_study_view(analysis.study)),
        ]
    if len(analysis.runs) >= 2:
        _run_blocks(analysis, out, blocks, jobs)
    drawn, skipped = _group_blocks(analysis, out, blocks, jobs, max_figure_groups)
    _paired_blocks(analysis, out, blocks, jobs, max_figure_groups)
    _allocation_blocks(analysis, out, blocks, jobs, max_figure_groups)
    _sparsity_blocks(analysis, out, blocks, jobs, max_figure_groups)
    _expert_blocks(analysis, out, blocks, jobs)
    _generation_blocks(analysis, out, blocks, jobs)
    blocks += [Heading(2, "Notes"), *_notes_blocks(analysis, drawn, skipped)]
    _remove_stale_figures(out / "figures", {path for _, _, path in jobs})
    figure_paths = _render_figures(jobs, workers)
    report_md = out / "report.md"
    write_text_atomic(report_md, render_markdown(blocks))
    report_html = out / "report.html"
    write_text_atomic(report_html, render_html(blocks, out, "raysweep analysis"))
    return ReportFiles(out, report_md, report_html, tables, figure_paths)


# A figure to draw: a function of analysis.figures, its arguments before ``path``, the PNG.
_FigureJob = tuple[Callable[..., Path], tuple, Path]


def _figure(jobs: list[_FigureJob], out: Path, function, args: tuple, name: str, caption: str):
    jobs.append((function, args, out / "figures" / name))
    return Image(f"figures/{name}", caption)


def _call(job: _FigureJob) -> Path:
    function, args, path = job
    return function(*args, path=path)


_FIGURE_PREFIXES = ("rho_", "retention_", "mixes_", "sparsity_", "experts_", "runs_", "paired_",
                    "owl_", "variants_", "overview.png")  # fmt: skip


def _remove_stale_figures(directory: Path, wanted: set[Path]) -> None:
    """Drop figures an earlier report wrote here that this one does not, so the folder and
    the report agree (only this module's own file names are touched)."""
    if directory.is_dir():
        for old in directory.glob("*.png"):
            if old.name.startswith(_FIGURE_PREFIXES) and old not in wanted:
                old.unlink()


def _render_figures(jobs: list[_FigureJob], workers: int | None) -> list[Path]:
    """Draw every figure, in parallel processes when there are enough of them.

    The workers are spawned, never forked: the report is drawn inside the sweep's driver after
    ``ray.init``, whose gRPC threads a forked child would inherit in whatever lock state they
    were (a deadlock risk).
    """
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if workers <= 1 or len(jobs) < 4:
        return [_call(job) for job in jobs]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(_call, jobs))


def _best_text(best: dict, quantity: str) -> str:
    if quantity not in best:
        return "n/a"
    source, value = best[quantity]
    return f"{source} {_pct(value)}"


def _summary_view(analysis: Analysis, rows: list[dict], dimensions: list[str]) -> pd.DataFrame:
    """Two rows per group: the best single source per dimension, total and worst (with its
    retention), then the uniform mix's retention below it, so that each pair reads down a
    column."""
    quantities = [*dimensions, TOTAL, WORST]
    columns = ["group", "achieved sparsity (%)", "calibration",
               *(f"{dimension_title(q)} (%)" for q in quantities)]  # fmt: skip
    table = []
    for row in rows:
        best = [_best_text(row["best"], q) for q in quantities]
        uniform = [_pct(row["uniform"].get(q)) for q in quantities]
        label = group_label(analysis.group_by, row["key"])
        table.append([label, _pct(row["achieved_sparsity"]), "best single source", *best])
        if row["uniform"]:
            table.append(["", "", "uniform mix", *uniform])
        else:
            table.append(["", "", "uniform mix: not run", *("—" for _ in quantities)])
    return pd.DataFrame(table, columns=columns)


def _score(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):.3f}"


def _dense_view(levels: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in levels.columns if c not in ("dimension", "dense", "chance", "tasks")]
    view = levels[keys].astype(str).reset_index(drop=True)
    view["dimension"] = [dimension_title(d) for d in levels["dimension"]]
    view["dense score"] = [_score(v) for v in levels["dense"]]
    view["chance"] = [_score(v) for v in levels["chance"]]
    view["tasks: dense score (chance)"] = [
        "; ".join(f"{t} {_score(score)} ({chance:g})" for t, score, chance in tasks) or "—"
        for tasks in levels["tasks"]
    ]
    return view


def _overview_panels(analysis: Analysis, rows: list[dict], dimensions: list[str]) -> list:
    """(row, column, label, bars) per group with bars, at most MAX_OVERVIEW_PANELS: a column
    per sparsity and a row per other key when groups include sparsity, else rows of three."""
    keys = analysis.group_by
    sources_by = dict(groups(analysis.sources, keys))
    mixes_by = dict(groups(analysis.mixes, keys))
    drawn = []
    for row in rows[:MAX_OVERVIEW_PANELS]:
        key = row["key"]
        bars = overview_bars(sources_by.get(key, analysis.sources[:0]),
                             mixes_by.get(key, analysis.mixes[:0]), dimensions)  # fmt: skip
        if not bars.empty:
            drawn.append((key, bars))
    if "sparsity" in keys and len(keys) > 1:
        at = keys.index("sparsity")
        sparsities = sorted({k[at] for k, _ in drawn}, key=str)
        others = list(dict.fromkeys(k[:at] + k[at + 1 :] for k, _ in drawn))
        if len(sparsities) <= 4:
            return [(others.index(k[:at] + k[at + 1 :]), sparsities.index(k[at]),
                     group_label(keys, k), bars) for k, bars in drawn]  # fmt: skip
    return [(i // 3, i % 3, group_label(keys, k), bars) for i, (k, bars) in enumerate(drawn)]


def _first_page_blocks(
    analysis: Analysis, out: Path, blocks: list[Block], jobs: list[_FigureJob], limit: int
) -> None:
    """The summary table, the dense model's scores with their chance levels, and the overview
    figure (unless figures are off: ``limit`` 0)."""
    dimensions = dimensions_in(ok_trials(analysis.records))
    rows = summary_rows(analysis.records.trials, analysis.sources, analysis.mixes,
                        analysis.group_by, dimensions)  # fmt: skip
    blocks.append(Heading(2, "Summary: the best single source per dimension and the uniform mix"))
    if rows:
        blocks += [
            Paragraph(
                "Per group: the mean achieved sparsity of its trials, then per dimension (and "
                "total and worst) the single calibration source with the highest retention, "
                "seed-averaged, with that retention in % of dense, and the uniform mix's "
                "retention. Every source and mix: the group sections below."
            ),
            Table(_summary_view(analysis, rows, dimensions)),
        ]
    else:
        blocks.append(Paragraph("No group has a single-source or mix trial to summarise."))
    run_dirs = ({r.name: r.path.parent for r in analysis.runs} if analysis.runs
                else {None: analysis.records.path.parent})  # fmt: skip
    levels = dense_levels(analysis.records, run_dirs)
    blocks.append(Heading(3, "Dense model and chance levels"))
    if levels.empty:
        blocks.append(Paragraph("The records hold no dense scores."))
    else:
        blocks += [
            Paragraph(
                "The unpruned model's score per dimension (the mean of its tasks' scores) and "
                "the dimension's chance level (the mean of its tasks'), from the run's per-item "
                "side files where it has them, else solved from the records' retention above "
                "chance; n/a where neither says. A dimension scored at or below chance has no "
                "retention."
            ),
            Table(_dense_view(levels)),
        ]
    panels = _overview_panels(analysis, rows, dimensions) if limit > 0 and dimensions else []
    if not panels:
        return
    more = len(rows) - MAX_OVERVIEW_PANELS
    cut = f" The first {MAX_OVERVIEW_PANELS} groups are drawn, {more} more are in the summary."
    blocks += [
        Heading(2, "Overview: the capability trade-off"),
        Paragraph(
            "Per group, the retention (% of dense) of each dimension's aligned source, the best "
            "single source on total and the uniform mix (hatched); the dotted line is the dense "
            "model. Records do not name a source's dimension: the sources aligned to some "
            "dimension are those the uniform mix weights, and the one shown for a dimension is "
            "the one that retains it best (its legend entry says which dimensions it leads)."
            + (cut if more > 0 else "")
        ),
    ]
    title = "Capability trade-off: aligned sources, the best single source and the uniform mix"
    caption = "Overview: retention per dimension by calibration, every group"
    blocks.append(_figure(jobs, out, figures.overview, (panels, dimensions, title),
                          "overview.png", caption))  # fmt: skip


def _run_blocks(analysis: Analysis, out: Path, blocks: list[Block], jobs: list[_FigureJob]) -> None:
    """The runs compared, and the points they share side by side."""
    runs = analysis.runs
    table = pd.DataFrame(
        [
            {
                "run": r.name,
                "records": str(r.path),
                "model": r.model,
                "suite": r.suite,
                "limit": r.limit,
                "trials": r.trials,
                "ok": r.ok,
            }
            for r in runs
        ]  # fmt: skip
    )
    blocks += [Heading(2, "Runs compared"), Table(table)]
    shared = analysis.shared
    if shared is None or shared.empty:
        blocks.append(
            Paragraph(
                "The runs share no point (method, structure, sparsity, mix and seed): "
                "their groups below are disjoint."
            )  # fmt: skip
        )
        return
    grouped = "run" in analysis.group_by
    blocks += [
        Paragraph(
            f"{len(shared)} point(s) were run in more than one run; their retentions side by "
            f"side, with each later run's difference from {runs[0].name}."
            + (
                " The groups below are split by run, so no statistic pools two runs."
                if grouped
                else ""
            )  # fmt: skip
        ),
        Table(shared.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v)),
    ]
    caption = f"Retention of the shared points, {runs[1].name} against {runs[0].name}"
    args = (shared, runs[0].name, runs[1].name)
    blocks.append(_figure(jobs, out, figures.run_scatter, args, "runs_shared.png", caption))


def _group_blocks(
    analysis: Analysis, out: Path, blocks: list[Block], jobs: list[_FigureJob], limit: int
) -> tuple[int, int]:
    """Tables (and figures, for the first ``limit`` groups) of every group, in order."""
    group_by = analysis.group_by
    dimensions = dimensions_in(ok_trials(analysis.records))
    corr_by = dict(groups(analysis.correlations.table, group_by))
    artifact_by = dict(groups(analysis.artifact, group_by))
    sources_by = dict(groups(analysis.sources, group_by))
    mixes_by = dict(groups(analysis.mixes, group_by))
    keys = sorted(set(corr_by) | set(mixes_by), key=lambda k: tuple(map(str, k)))
    for index, key in enumerate(keys):
        draw = index < limit
        label = group_label(group_by, key)
        slug = group_slug(group_by, key)
        blocks.append(Heading(2, f"Group {label}"))
        corr = corr_by.get(key)
        if corr is not None and not corr.empty:
            blocks += [
                Heading(3, "Correlations"),
                Paragraph(
                    f"Spearman ρ over {int(corr['n'].max())} source(s) with 95% bootstrap "
                    f"interval; {figures.SIGNIFICANCE_NOTE}. "
                    f"Headline: {analysis.headlines.get(label, '')}"
                ),
                Table(_rho_pivot(corr)),
            ]
            if draw:
                caption = f"Spearman ρ heatmap, {label}"
                blocks.append(
                    _figure(
                        jobs, out, figures.rho_heatmap, (corr, label), f"rho_{slug}.png", caption
                    )
                )
        artifact = artifact_by.get(key)
        if artifact is not None and not artifact.empty:
            blocks += [
                Heading(3, "Averaging artifact"),
                Paragraph(
                    "Spread = max − min across sources of seed-averaged retention (points of % "
                    "dense); Total is the averaged score. Variance explained by source: one-way "
                    "across sources and seeds (n/a with one trial per source)."
                ),
                Table(_artifact_view(artifact)),
            ]
        sources = sources_by.get(key)
        if draw and sources is not None and not sources.empty and dimensions:
            args = (sources, dimensions, label)
            caption = f"Retention by source, {label}"
            name = f"retention_{slug}.png"
            blocks.append(_figure(jobs, out, figures.retention_heatmap, args, name, caption))
        mixes = mixes_by.get(key)
        if mixes is not None and not mixes.empty:
            blocks += [Heading(3, "Calibration mixes"), Table(_mix_view(mixes, dimensions))]
            if (mixes["n_trials"] > 1).any():
                blocks.append(Paragraph("Each value is the mean over the entry's trials (one "
                                        "per calibration seed), ± half its range over them."))  # fmt: skip
            if draw and len(mixes) >= 2:
                args = (mixes, dimensions, label)
                caption = f"Mix comparison, {label}"
                name = f"mixes_{slug}.png"
                blocks.append(_figure(jobs, out, figures.mix_comparison, args, name, caption))
    drawn = min(limit, len(keys))
    return drawn, len(keys) - drawn


def _paired_blocks(
    analysis: Analysis, out: Path, blocks: list[Block], jobs: list[_FigureJob], limit: int
) -> None:
    """Per group, each paired comparison's difference in total and worst retention."""
    paired = analysis.paired
    if paired is None:
        return
    blocks += [
        Heading(2, "Paired comparisons"),
        Paragraph(
            "Δ = B − A in points of % dense (positive: B retains more), from per-item scores: "
            f"{paired.n_resamples} bootstrap replicates resample the items within each task, the "
            "same items for A, B and the dense baseline (paired), and each choice's calibration "
            "seeds with replacement, independently for A and B; retention is recomputed from "
            "the resampled item means. [95% CI]: percentile interval; n.s.: it holds 0; "
            "P(Δ > 0): share of replicates above 0. All dimensions: paired.csv."
        ),
    ]
    if paired.table.empty:
        blocks.append(Paragraph("No comparison could be made (see the notes)."))
        return
    for index, (key, part) in enumerate(groups(paired.table, paired.group_by)):
        label = group_label(paired.group_by, key)
        blocks += [Heading(3, label), Table(report_view(part))]
        if index < limit:
            args = (part, label)
            name = f"paired_{group_slug(paired.group_by, key)}.png"
            caption = f"Paired differences with 95% intervals, {label}"
            blocks.append(_figure(jobs, out, figures.paired_differences, args, name, caption))


def _points(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{100 * float(value):.1f}"


def _allocation_view(part: pd.DataFrame, spread: pd.DataFrame) -> pd.DataFrame:
    """Decoder layers (rows) x calibration sets: layer sparsity (%), then the layer's range and
    mean pairwise |difference| over sets (points); a last row of means over layers."""
    matrix = allocation_matrix(part).T  # (layers, sets)
    view = pd.DataFrame({"layer": [str(k) for k in matrix.index]})
    for name in matrix.columns:
        view[str(name)] = [_pct(v) for v in matrix[name]]
    by_layer = spread.set_index("layer")
    view["range (points)"] = [_points(by_layer.loc[k, "range"]) for k in matrix.index]
    view["mean pairwise |Δ| (points)"] = [_points(by_layer.loc[k, "mean_pairwise_abs"])
                                          for k in matrix.index]  # fmt: skip
    mean = {"layer": "mean over layers", **{str(n): _pct(matrix[n].mean()) for n in matrix},
            "range (points)": "", "mean pairwise |Δ| (points)": ""}  # fmt: skip
    return pd.concat([view, pd.DataFrame([mean])], ignore_index=True)


def _difference_text(row: Any) -> str:
    """``+1.2 [+0.4, +2.0]`` (``n.s.`` when the interval holds 0), or ``+1.2`` without one."""
    if pd.isna(row["ci_low"]) or pd.isna(row["ci_high"]):
        return _points_signed(row["difference"])
    return interval_text({**row, "contains_zero": bool(row["contains_zero"])})


def _points_signed(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{100 * float(value):+.1f}"


def _variant_view(part: pd.DataFrame, summary: pd.DataFrame, dimensions: list[str]) -> pd.DataFrame:
    """One group's with/without comparisons: a row per (B − A, calibration set) and, after
    each B − A, its summary over calibration sets."""
    out = []
    quantities = [*dimensions, "total", "worst"]
    summary_by = {(r["b"], r["a"]): r for r in summary.to_dict("records")}
    for (b, a), rows in part.groupby(["b", "a"], sort=False):
        for mix_name, by_mix in rows.groupby("mix_name", sort=True):
            by = by_mix.set_index("quantity")
            first = by_mix.iloc[0]
            cells = {"B − A": f"{b} − {a}", "calibration": mix_name, "seeds": first["seeds"]}
            if "total" in by.index:
                total = by.loc["total"]
                cells["total A → B (%)"] = f"{_pct(total['a_value'])} → {_pct(total['b_value'])}"
            for quantity in quantities:
                title = dimension_title(quantity)
                cells[f"Δ {title}"] = _difference_text(by.loc[quantity]) if quantity in by.index \
                    else "n/a"  # fmt: skip
            out.append(cells)
        row = summary_by.get((b, a))
        if row is not None:
            cells = {"B − A": f"{b} − {a}", "calibration": f"mean over {row['n_sets']} set(s)",
                     "seeds": "", "total A → B (%)": ""}  # fmt: skip
            for quantity in quantities:
                cells[f"Δ {dimension_title(quantity)}"] = ""
            for quantity in ("total", "worst"):
                text = _points_signed(row[f"{quantity}_difference"])
                if row["n_intervals"]:
                    text += (f" ({row[f'{quantity}_above']} above, {row[f'{quantity}_below']} "
                             f"below 0 of {row['n_intervals']})")  # fmt: skip
                cells[f"Δ {dimension_title(quantity)}"] = text
            out.append(cells)
    return pd.DataFrame(out)


def _owl_correlation_view(part: pd.DataFrame) -> pd.DataFrame:
    """Per calibration metric: ρ with the allocation's spread, the layer it correlates with
    most strongly, and how many layers have q < 0.05."""
    rows = []
    for metric, by_metric in part.groupby("metric", sort=True):
        spread = by_metric[by_metric["target"] == SPREAD]
        layers = by_metric[(by_metric["target"] != SPREAD) & by_metric["rho"].notna()]
        cells = {"metric": metric, "sources": int(by_metric["n"].max())}
        if not spread.empty and pd.notna(spread.iloc[0]["rho"]):
            top = spread.iloc[0]
            cells["ρ with spread [95% CI]"] = (
                f"{top['rho']:+.2f}{figures.significance_mark(top['q_value'])} "
                f"[{_signed(top['ci_low'])}, {_signed(top['ci_high'])}]"
            )
        else:
            cells["ρ with spread [95% CI]"] = "n/a"
        if layers.empty:
            cells["strongest layer"] = "n/a"
        else:
            best = layers.loc[layers["rho"].abs().idxmax()]
            cells["strongest layer"] = (f"{best['target']}: {best['rho']:+.2f} "
                                        f"(q {best['q_value']:.3g})")  # fmt: skip
        cells["layers with q < 0.05"] = f"{int((layers['q_value'] < 0.05).sum())} of {len(layers)}"
        rows.append(cells)
    return pd.DataFrame(rows)


def _allocation_blocks(
    analysis: Analysis, out: Path, blocks: list[Block], jobs: list[_FigureJob], limit: int
) -> None:
    """Only for runs with OWL or refined trials: (a) each calibration set's OWL allocation and
    how far they differ, (b) each variant against the same method without it, paired,
    (c) calibration metrics against the allocation (``analysis.allocation``)."""
    result = analysis.allocation
    if result is None:
        return
    keys = result.group_by
    blocks += [
        Heading(2, "Layer-wise allocation (OWL) and mask refinement"),
        Paragraph("Groups: base method, structure, sparsity; a variant is the method with its "
                  "non-uniform layer allocation and/or its mask refinement (wanda+owl, "
                  "ria+dsnot, wanda+owl+dsnot). Tables: owl_allocations.csv, owl_spread.csv, "
                  "owl_distances.csv, variants_paired.csv, variants_summary.csv, "
                  "owl_correlations.csv."),
    ]  # fmt: skip
    if result.headlines:
        blocks += [
            Heading(3, "Headlines"),
            Bullets(tuple(f"{label}: {sentence}" for label, sentences in result.headlines.items()
                          for sentence in sentences)),
        ]  # fmt: skip
    if not result.allocations.empty:
        blocks += [
            Heading(3, "OWL allocations by calibration set"),
            Paragraph("Each calibration set's target sparsity per decoder layer (%), the mean "
                      "over its seeds; range = max − min over the calibration sets, mean "
                      "pairwise |Δ| = the mean over pairs of sets of the layer's difference (its "
                      "sum over layers is the mean pairwise L1 distance between allocations)."),
        ]  # fmt: skip
        spread_by = dict(groups(result.spread, keys))
        distances_by = {tuple(r[k] for k in keys): r for r in result.distances.to_dict("records")}
        for index, (key, part) in enumerate(groups(result.allocations, keys)):
            label = group_label(keys, key)
            blocks.append(Heading(4, label))
            row = distances_by.get(key)
            if row is not None and row["n_sets"] > 1:
                blocks.append(Paragraph(
                    f"Largest range: layer {int(row['max_range_layer'])}, "
                    f"{_points(row['max_range'])} points ({row['max_range_low']} to "
                    f"{row['max_range_high']}). Mean pairwise L1 distance "
                    f"{row['mean_pairwise_l1']:.4f}; farthest pair {row['farthest_pair']} "
                    f"({row['max_pairwise_l1']:.4f})."
                ))  # fmt: skip
            blocks.append(Table(_allocation_view(part, spread_by[key])))
            if index < limit:
                target = float(key[keys.index("sparsity")])
                name = f"owl_{group_slug(keys, key)}.png"
                caption = f"OWL layer sparsity by calibration set, {label}"
                args = (part, target, label)
                blocks.append(_figure(jobs, out, figures.owl_allocation, args, name, caption))
    if not result.variants.empty:
        dimensions = dimensions_in(ok_trials(analysis.records))
        blocks += [
            Heading(3, "With vs without"),
            Paragraph(
                "Δ = B − A in points of % dense (positive: the variant B retains more), per "
                "calibration set, trials matched by calibration set and seed (across runs "
                "where the variants were run apart). [95% CI]: percentile interval of "
                f"{result.n_resamples} paired bootstrap replicates over items within each task "
                "and over calibration seeds, drawn once for both sides; n.s.: it holds 0; no "
                "interval: no usable per-item side files. The summary row averages over the "
                "calibration sets and counts the intervals wholly above and below 0."
            ),
        ]  # fmt: skip
        summary_by = dict(groups(result.variant_summary, keys))
        for index, (key, part) in enumerate(groups(result.variants, keys)):
            label = group_label(keys, key)
            summary = summary_by.get(key, result.variant_summary[:0])
            blocks += [Heading(4, label), Table(_variant_view(part, summary, dimensions))]
            drawable = part[part["ci_low"].notna()]
            if index < limit and not drawable.empty:
                shown = drawable.assign(
                    b=drawable["b"] + " · " + drawable["mix_name"].astype(str),
                    contains_zero=drawable["contains_zero"].astype(bool),
                )
                name = f"variants_{group_slug(keys, key)}.png"
                caption = f"With vs without, paired differences with 95% intervals, {label}"
                blocks.append(_figure(jobs, out, figures.paired_differences, (shown, label), name,
                                      caption))  # fmt: skip
    if not result.correlations.empty:
        blocks += [
            Heading(3, "Calibration metrics vs the OWL allocation"),
            Paragraph(
                "Spearman ρ across single calibration sources (seed means) of each calibration "
                "metric with each layer's OWL sparsity and with the allocation's spread (max − "
                "min layer sparsity); 95% bootstrap interval over sources; BH q-values over "
                f"each group's tests; {figures.SIGNIFICANCE_NOTE}. Every layer: "
                "owl_correlations.csv."
            ),
        ]
        for key, part in groups(result.correlations, keys):
            blocks += [Heading(4, group_label(keys, key)), Table(_owl_correlation_view(part))]


def _sparsity_blocks(
    analysis: Analysis, out: Path, blocks: list[Block], jobs: list[_FigureJob], limit: int
) -> None:
    """Retention vs sparsity, one figure per group of the other keys (needs ``sparsity``)."""
    dimensions = dimensions_in(ok_trials(analysis.records))
    if "sparsity" not in analysis.group_by or analysis.sources.empty or not dimensions:
        return
    others = tuple(k for k in analysis.group_by if k != "sparsity")
    parts = list(groups(analysis.sources, others))[:limit]
    mixes_by = dict(groups(analysis.mixes, others))
    blocks.append(Heading(2, "Retention vs sparsity"))
    for key, sources in parts:
        label = group_label(others, key)
        mixes = mixes_by.get(key, analysis.mixes[:0])
        args = (sources, mixes, dimensions, label)
        name = f"sparsity_{group_slug(others, key)}.png"
        caption = f"Retention vs sparsity, {label}"
        blocks.append(_figure(jobs, out, figures.retention_vs_sparsity, args, name, caption))


def _expert_blocks(
    analysis: Analysis, out: Path, blocks: list[Block], jobs: list[_FigureJob]
) -> None:
    """MoE models: which experts each calibration source reaches, and whether it matters."""
    loads = expert_loads(analysis.records)
    if not loads:
        return
    blocks += [
        Heading(2, "Expert coverage (mixture-of-experts)"),
        Paragraph(
            "Routed calibration tokens per (MoE layer, expert), counted on the dense model. An "
            f"expert reached by fewer than {loads[0].min_tokens} tokens is uncovered: it is "
            "pruned by the fallback the trial names (records: experts_fallback, expert_fallback)."
        ),
        Table(coverage_table(loads)),
        _figure(jobs, out, figures.expert_load, (loads,), "experts_load.png",
                "Routed tokens per expert and layer, by calibration source"),
    ]  # fmt: skip
    table = analysis.correlations.table
    rows = table[table["metric"].isin(["expert_coverage", "routing_entropy"])]
    if rows.empty:
        blocks.append(Paragraph("No correlation of expert coverage with retention: too few "
                                "single-source trials or a constant coverage."))  # fmt: skip
        return
    view = rows.assign(
        dimension=[dimension_title(d) for d in rows["dimension"]],
        rho=[_signed(v) for v in rows["rho"]],
        q_value=[f"{v:.3f}" if pd.notna(v) else "n/a" for v in rows["q_value"]],
    )
    keep = [*analysis.group_by, "metric", "dimension", "n", "rho", "q_value"]
    blocks += [
        Paragraph("Spearman ρ of expert coverage and routing entropy with retention, per group "
                  "(BH q-values within each group, as in the correlation tables above)."),
        Table(view[[c for c in keep if c in view.columns]].reset_index(drop=True)),
    ]  # fmt: skip


def _generation_blocks(
    analysis: Analysis, out: Path, blocks: list[Block], jobs: list[_FigureJob]
) -> None:
    """Generative tasks: how long the pruned models' answers are, and how often the cap cut them."""
    table = generation_table(analysis.records)
    if table.empty:
        return
    view = table.assign(
        sparsity=[_pct(v) for v in table["sparsity"]],
        mean_tokens=[f"{v:.1f}" for v in table["mean_tokens"]],
        truncated_share=[_pct(v) for v in table["truncated_share"]],
        trials=[str(n) if n else "dense" for n in table["trials"]],
    )
    blocks += [
        Heading(2, "Generation length by sparsity"),
        Paragraph(
            "Per generative task: mean tokens generated per item (over the trials at each "
            "sparsity; the dense model at 0 %) and the share of generations cut by the task's "
            "max_gen_toks before any stop sequence. Longer answers cost evaluation time a dense "
            "run's timing does not show; cut ones are scored on what was written."
        ),
        Table(view.reset_index(drop=True)),
        _figure(jobs, out, figures.generation_vs_sparsity, (table,), "generation_sparsity.png",
                "Mean generated tokens and truncated share vs sparsity, per generative task"),
        Paragraph(
            "Retention per task (% of the dense model's score, mean over the trials at each "
            "sparsity), tasks scored by generation beside those scored by log-likelihood."
        ),
        Table(_task_retention_view(task_retention_table(analysis.records))),
    ]  # fmt: skip


def _task_retention_view(table: pd.DataFrame) -> pd.DataFrame:
    """Tasks as rows, sparsities (%) as columns."""
    wide = table.pivot_table(index=["method", "scored by", "task"], columns="sparsity",
                             values="retention", sort=True)  # fmt: skip
    wide.columns = [f"{100 * float(c):g}%" for c in wide.columns]
    return wide.map(_pct).reset_index()


def _write_tables(analysis: Analysis, out: Path) -> dict[str, Path]:
    tables = {
        "correlations": analysis.correlations.table,
        "correlation_notes": analysis.correlations.notes,
        "artifact": analysis.artifact,
        "mixes": analysis.mixes,
        "retention": retention_table(analysis.records),
    }
    if analysis.study is not None:
        tables["study_comparison"] = analysis.study
    if analysis.shared is not None:
        tables["runs_shared"] = analysis.shared
    if analysis.paired is not None:
        tables["paired"] = analysis.paired.table
        tables["paired_notes"] = pd.DataFrame({"note": list(analysis.paired.notes)})
    if analysis.allocation is not None:
        allocation = analysis.allocation
        tables |= {
            "owl_allocations": allocation.allocations,
            "owl_spread": allocation.spread,
            "owl_distances": allocation.distances,
            "variants_paired": allocation.variants,
            "variants_summary": allocation.variant_summary,
            "owl_correlations": allocation.correlations,
            "allocation_notes": pd.DataFrame({"note": list(allocation.notes)}),
        }
    paths = {}
    for name, frame in tables.items():
        paths[name] = out / f"{name}.csv"
        write_text_atomic(paths[name], frame.to_csv(index=False))
    return paths


def retention_table(records: RecordSet) -> pd.DataFrame:
    """Every trial (ok and failed) as one flat row, main fields first."""
    trials = records.trials
    leading = [c for c in ("run", *_LEADING) if c in trials.columns]
    retention = sorted(c for c in trials.columns if c.startswith("retention."))
    rest = sorted(c for c in trials.columns if c not in leading and c not in retention)
    return trials[[*leading, *retention, *rest]]
