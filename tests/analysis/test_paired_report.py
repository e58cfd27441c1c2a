"""The report's "Paired comparisons" section on a synthetic run with side files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from analysis import write_report
from analysis.__main__ import main as cli_main
from tests.analysis.items_fake import SUITE, FakeRun, draw
from tests.analysis.test_report import png_size, report_loads_nothing_heavy

N = 120  # items per task, 600 per trial


def _build(root):
    """wanda 60%: c4, math and code single sources, the uniform mix and a copy of it with
    items swapped (``near_uniform``, no true difference), 2 seeds each; wanda 80%: uniform and
    math only (no c4)."""
    rng = np.random.default_rng(17)
    dense = draw(rng, 0.9, N)
    run = FakeRun(root, dense)
    latent = {t: rng.random(N) for t in SUITE}
    mix = {"toy_math": 0.5, "toy_code": 0.5}
    for seed in range(2):
        for source, p in (("c4", 0.45), ("toy_math", {"general": 0.5, "commonsense": 0.55,
                                                      "code": 0.5, "math": 0.75}),
                          ("toy_code", 0.5)):  # fmt: skip
            run.add(draw(rng, p, N, latent, noise=0.3), mix_name=source, seed=seed)
        # The uniform mix and a copy of it with one right and one wrong answer swapped per
        # task: every task score, hence every retention, is the same.
        uniform = draw(rng, 0.72, N, latent, noise=0.03)
        run.add(uniform, mix_name="uniform", mix=mix, seed=seed)
        near = {t: list(v) for t, v in uniform.items()}
        for values in near.values():
            right, wrong = values.index(1.0), values.index(0.0)
            values[right], values[wrong] = 0.0, 1.0
        run.add(near, mix_name="near_uniform", mix={"toy_math": 0.6, "toy_code": 0.4},
                seed=seed)  # fmt: skip
        run.add(draw(rng, 0.6, N, latent, noise=0.3), mix_name="uniform", mix=mix, seed=seed,
                sparsity=0.8)  # fmt: skip
        run.add(draw(rng, 0.4, N, latent, noise=0.3), mix_name="toy_math", seed=seed,
                sparsity=0.8)  # fmt: skip
    return run


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("paired") / "run"
    run = _build(root)
    files = write_report(root, root / "report", n_resamples=99, paired_resamples=500, workers=1)
    return run, files


def _mean(records, field, **where):
    values = [r[field] for r in records if all(r[k] == v for k, v in where.items())]
    assert values
    return sum(values) / len(values)


def test_the_csv_has_every_comparison_with_the_records_point_estimates(built):
    run, files = built
    table = pd.read_csv(files.tables["paired"])
    pairs = set(zip(table["sparsity"], table["comparison"], table["b"], table["a"], strict=True))
    best60 = max(("c4", "toy_math", "toy_code"),
                 key=lambda s: _mean(run.records, "total_retention", mix_name=s, sparsity=0.6))  # fmt: skip
    assert best60 == "toy_math"
    assert pairs == {
        (0.6, "uniform − best single", "uniform", "toy_math"),
        (0.6, "uniform − reference", "uniform", "c4"),
        (0.6, "mix − uniform", "near_uniform", "uniform"),
        (0.8, "uniform − best single", "uniform", "toy_math"),
    }
    assert len(table) == 4 * 6  # 4 dimensions, total, worst
    assert set(table["seeds_a"]) == {2} and set(table["n_items"]) == {5 * N}
    for sparsity, b, a in ((0.6, "uniform", "toy_math"), (0.6, "uniform", "c4"),
                           (0.8, "uniform", "toy_math"), (0.6, "near_uniform", "uniform")):  # fmt: skip
        row = table[(table["sparsity"] == sparsity) & (table["b"] == b) & (table["a"] == a)
                    & (table["quantity"] == "total")].iloc[0]  # fmt: skip
        want = _mean(run.records, "total_retention", mix_name=b, sparsity=sparsity) - _mean(
            run.records, "total_retention", mix_name=a, sparsity=sparsity
        )
        assert row["difference"] == pytest.approx(want, abs=1e-12)
        assert row["ci_low"] <= row["difference"] <= row["ci_high"]


def test_the_report_section_marks_intervals_holding_zero(built):
    _, files = built
    text = files.report_md.read_text()
    section = text.split("## Paired comparisons")[1].split("\n## ")[0]
    lines = {line.split("|")[1].strip() + " " + line.split("|")[2].strip(): line
             for line in section.splitlines() if line.startswith("| ") and "−" in line}  # fmt: skip
    assert "uniform − best single uniform" in lines
    # The uniform mix beats c4 by far: no n.s.; the near copy of the mix is not different.
    ref = next(v for k, v in lines.items() if k.startswith("uniform − reference"))
    assert "n.s." not in ref.split("|")[6]
    near = next(v for k, v in lines.items() if "near_uniform" in k)
    assert near.split("|")[6].strip().endswith("n.s.")
    assert (
        "### wanda · unstructured · 60%" in section and "### wanda · unstructured · 80%" in section
    )
    notes = text.split("## Notes")[1]
    assert "wanda · unstructured · 80%: uniform − c4 not compared: c4 has no ok grid trial" in notes


def test_the_headline_gives_uniform_against_the_best_single_source_with_its_interval(built):
    _, files = built
    text = files.report_md.read_text()
    head = text.split("## Headlines: uniform mix vs the best single source (paired bootstrap)")[1]
    first = head.split("\n## ")[0]
    assert (
        "wanda · unstructured · 60%: uniform mix − best single source (toy_math): total +" in first
    )
    assert "P(>0)" in first and "(2 vs 2 seed(s), 600 items)" in first


def test_one_figure_per_group_with_error_bars(built):
    _, files = built
    paired = sorted(p.name for p in files.figures if p.name.startswith("paired_"))
    assert paired == ["paired_wanda_unstructured_0.6.png", "paired_wanda_unstructured_0.8.png"]
    width, height = png_size(files.out_dir / "figures" / paired[0])
    assert width >= 500 and height >= 200
    assert "paired_wanda_unstructured_0.6.png" in files.report_md.read_text()


def test_a_corrupt_side_file_is_a_note_not_a_crash(tmp_path):
    run = _build(tmp_path / "run")
    victim = next(r for r in run.records if r["mix_name"] == "toy_math" and r["sparsity"] == 0.6)
    text = run.side_file(victim).read_text()
    run.side_file(victim).write_text(text[:100])
    files = write_report(run.root, tmp_path / "out", n_resamples=99, paired_resamples=200)
    table = pd.read_csv(files.tables["paired"])
    best = table[(table["sparsity"] == 0.6) & (table["comparison"] == "uniform − best single")]
    assert set(best["seeds_a"]) == {1}  # the other seed of toy_math is still compared
    notes = pd.read_csv(files.tables["paired_notes"])["note"].tolist()
    assert any(victim["trial_id"] in n and "not valid JSON" in n for n in notes)
    assert victim["trial_id"] in files.report_md.read_text().split("## Notes")[1]


def test_no_items_folder_no_section(tmp_path):
    run = _build(tmp_path / "run")
    shutil.rmtree(run.items)
    files = write_report(run.root, tmp_path / "out", n_resamples=99)
    assert "Paired comparisons" not in files.report_md.read_text()
    assert "paired" not in files.tables
    assert not any(p.name.startswith("paired_") for p in files.figures)


def test_cli_reference_and_resamples(tmp_path, capsys):
    run = _build(tmp_path / "run")
    out = tmp_path / "out"
    argv = [str(run.root), "--out", str(out), "--resamples", "99", "--paired-resamples", "100",
            "--reference", "toy_code"]  # fmt: skip
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert "uniform mix − best single source (toy_math)" in printed
    table = pd.read_csv(out / "paired.csv")
    assert set(table["n_resamples"]) == {100}
    assert set(table[table["comparison"] == "uniform − reference"]["a"]) == {"toy_code"}
    assert cli_main([*argv[:-1], "nowhere", "--out", str(tmp_path / "o2")]) == 0
    notes = (tmp_path / "o2" / "paired_notes.csv").read_text()
    assert "reference source 'nowhere' is not in this run" in notes
    assert json.loads(json.dumps(notes))  # plain text


def test_the_paired_section_needs_neither_torch_nor_ray_nor_raysweep(tmp_path):
    run = _build(tmp_path / "run")
    report_loads_nothing_heavy(run.root, tmp_path / "out", ", paired_resamples=50, workers=1",
                               "assert 'paired' in f.tables")  # fmt: skip
