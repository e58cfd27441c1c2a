import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import CORRELATION_COLUMNS, load_records, write_report
from analysis.__main__ import main as cli_main
from tests.analysis.hand import DATA, GOLDEN, STUDY, raw_records

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    with pytest.warns(UserWarning, match=":61:"):
        files = write_report(GOLDEN, out, n_resamples=199, seed=1)
    return files


def test_every_table_and_figure_is_written(report):
    names = {p.name for p in report.out_dir.iterdir()}
    assert {
        "correlations.csv",
        "correlation_notes.csv",
        "artifact.csv",
        "mixes.csv",
        "retention.csv",
        "report.md",
        "report.html",
        "figures",
    } <= names
    kinds = sorted(p.stem.split("_")[0] for p in report.figures)
    # 3 groups x (rho, retention, mixes) + retention vs sparsity for wanda and magnitude, and
    # the overview of every group
    groups = ["mixes"] * 3 + ["retention"] * 3 + ["rho"] * 3
    assert kinds == sorted([*groups, "overview", "sparsity", "sparsity"])
    for path in report.figures:
        width, height = png_size(path)
        assert path.stat().st_size > 15_000, path
        assert width >= 500 and height >= 250, (path, width, height)


def test_csv_outputs(report):
    corr = pd.read_csv(report.tables["correlations"])
    assert tuple(corr.columns) == CORRELATION_COLUMNS
    assert len(corr) == 40  # wanda 2 x 15 + magnitude 10
    retention = pd.read_csv(report.tables["retention"])
    assert len(retention) == 60  # every readable trial, failed ones included
    assert list(retention.columns[:4]) == ["trial_id", "sweep", "phase", "status"]
    assert {"retention.code", "calib_metrics.perplexity", "mix.c4", "timings.total_s"} <= set(
        retention.columns
    )
    assert (
        retention.loc[retention["trial_id"] == "g001", "retention.general"].iloc[0]
        == (json.loads(GOLDEN.read_text().splitlines()[0])["retention"]["general"])
    )
    notes = pd.read_csv(report.tables["correlation_notes"])
    assert "fewer than 4 sources with values (n=3)" in set(notes["reason"])


def test_markdown_and_html_reports(report):
    md = report.report_md.read_text()
    corr = pd.read_csv(report.tables["correlations"])
    row = corr[(corr["method"] == "wanda") & (corr["sparsity"] == 0.5)]
    row = row[(row["metric"] == "ngram4_aggregation")].set_index("dimension")["rho"]
    assert (
        f"- wanda · unstructured · 50%: ngram4_aggregation: {row['code']:+.2f} with Code, "
        f"{row['general']:+.2f} with General" in md
    )
    assert (
        "- magnitude · unstructured · 50%: no correlation could be computed (see the notes)." in md
    )
    assert "line 61 of the records file was skipped: not valid JSON" in md
    assert "1 failed trial(s): RuntimeError: Cholesky failed" in md
    assert (
        "![Spearman ρ heatmap, wanda · unstructured · 70%](figures/rho_wanda_unstructured_0.7.png)"
        in md
    )
    assert "published numbers" not in md  # not the study sweep
    # The mix table gives each seed mean with half its range over the 3 seeds.
    uniform = [r["total_retention"] for r in raw_records(GOLDEN) if r["status"] == "ok"
               and r["mix_name"] == "uniform" and r["method"] == "wanda" and r["sparsity"] == 0.7]  # fmt: skip
    cell = f"{100 * np.mean(uniform):.1f} ±{50 * (max(uniform) - min(uniform)):.1f}"
    assert len(uniform) == 3 and cell in md
    assert "± half its range over them" in md
    html = report.report_html.read_text()
    assert html.count('src="data:image/png;base64,') == len(report.figures)
    assert 'src="figures/' not in html
    assert "<table>" in html and "Averaging artifact" in html


def test_study_report_sets_published_numbers_beside_the_run(tmp_path):
    files = write_report(STUDY, tmp_path, n_resamples=0)
    md = files.report_md.read_text()
    study = pd.read_csv(files.tables["study_comparison"])
    uniform = study.loc[study["quantity"] == "total retention, uniform mix", "run"].iloc[0]
    assert f"| total retention, uniform mix | 58.8% | {100 * uniform:.1f}% | uniform mix |" in md
    assert "| perplexity rho, Code retention | -0.59 |" in md
    assert "| total retention, C4 (default) | 40.0% |" in md


def test_too_many_groups_for_figures_are_noted_and_stale_figures_removed(tmp_path, report):
    shutil.copytree(report.out_dir / "figures", tmp_path / "figures")
    (tmp_path / "figures" / "mine.png").write_bytes(b"kept")
    with pytest.warns(UserWarning):
        files = write_report(GOLDEN, tmp_path, n_resamples=0, max_figure_groups=1)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(
        [p.name for p in files.figures] + ["mine.png"]
    )
    assert sorted(p.name for p in files.figures) == [
        "mixes_magnitude_unstructured_0.5.png",
        "overview.png",
        "retention_magnitude_unstructured_0.5.png",
        "rho_magnitude_unstructured_0.5.png",
        "sparsity_magnitude_unstructured.png",
    ]
    assert "first 1 group(s) only; 2 more appear" in files.report_md.read_text()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_on_a_run_directory_writes_the_default_report_dir(tmp_path):
    shutil.copy(GOLDEN, tmp_path / "records.jsonl")
    done = _cli(str(tmp_path), "--resamples", "99")
    assert done.returncode == 0, done.stderr
    assert "records.jsonl:61: skipped unreadable record" in done.stderr
    assert (
        f"60 trials (59 ok, 1 failed, 1 unreadable line(s)) -> {tmp_path}/report/report.md"
        in done.stdout
    )
    assert "wanda · unstructured · 70%: " in done.stdout
    assert (tmp_path / "report" / "report.html").is_file()
    assert len(list((tmp_path / "report" / "figures").glob("*.png"))) == 12


def test_cli_on_a_file_with_options(tmp_path):
    out = tmp_path / "out"
    done = _cli(str(STUDY), "--out", str(out), "--group-by", "method,sparsity", "--resamples", "0")
    assert done.returncode == 0, done.stderr
    corr = pd.read_csv(out / "correlations.csv")
    assert tuple(corr.columns) == CORRELATION_COLUMNS
    assert set(corr["structure"]) == {"all"}
    assert "sparsegpt · 60%: perplexity: " in done.stdout


def test_cli_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert cli_main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: no records file at {tmp_path / 'records.jsonl'}"
    )
    assert cli_main([str(STUDY), "--out", str(tmp_path), "--group-by", "method,nonsense"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: cannot group by ['nonsense']: not a field of the records"
    )


def test_cli_without_grouping_pools_every_trial(tmp_path, capsys):
    args = [str(STUDY), "--out", str(tmp_path), "--group-by", "", "--resamples", "0"]
    assert cli_main([*args, "--max-figure-groups", "0"]) == 0
    assert "  all trials: perplexity: " in capsys.readouterr().out
    corr = pd.read_csv(tmp_path / "correlations.csv")
    assert set(corr["method"]) == {"all"} and len(corr) == 5
    assert not (tmp_path / "figures").exists()


def report_loads_nothing_heavy(source: Path, out: Path, options: str = "", check: str = "") -> None:
    """Write the report of ``source`` in a fresh interpreter (``options``: more arguments of
    write_report, ``check``: a statement on its result ``f``): no torch, Ray, raysweep, lm-eval
    or Optuna may be loaded."""
    code = (
        "import sys, warnings, analysis\n"
        "warnings.simplefilter('ignore')\n"
        f"f = analysis.write_report({str(source)!r}, {str(out)!r}, n_resamples=9{options})\n"
        f"{check}\n"
        "print(sorted(m for m in ('torch', 'ray', 'raysweep', 'lm_eval', 'optuna') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_analysis_needs_neither_torch_nor_ray_nor_raysweep(tmp_path):
    report_loads_nothing_heavy(GOLDEN, tmp_path)


def test_golden_files_are_what_the_generator_writes(tmp_path):
    copy = tmp_path / "data"
    copy.mkdir()
    shutil.copy(DATA / "make_golden.py", copy)
    subprocess.run([sys.executable, str(copy / "make_golden.py")], check=True, timeout=60)
    for name in ("golden_records.jsonl", "study_records.jsonl"):
        assert (copy / name).read_text() == (DATA / name).read_text(), name


def test_loader_reads_what_the_generator_intends():
    records = load_records(STUDY)
    assert len(records.trials) == 12 and records.broken_lines == ()


def test_empty_and_metric_free_records_still_give_a_report(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "records.jsonl").write_text("")
    files = write_report(tmp_path / "empty", n_resamples=0)
    assert files.out_dir == tmp_path / "empty" / "report"
    assert "- trials: 0 read, 0 ok, 0 failed" in files.report_md.read_text()
    assert files.figures == []
    bare = [json.loads(line) for line in STUDY.read_text().splitlines()]
    for record in bare:
        del record["calib_metrics"]
    path = tmp_path / "bare.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in bare))
    files = write_report(path, tmp_path / "bare", n_resamples=0, max_figure_groups=0)
    md = files.report_md.read_text()
    assert "No correlation to report: no single-source grid trial has both" in md
    assert "| total retention, uniform mix | 58.8% |" in md  # still a study run
    assert pd.read_csv(files.tables["correlations"]).empty
