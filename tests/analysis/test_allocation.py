"""OWL allocations per calibration set, variants with vs without (paired, across runs) and
calibration metrics against the allocation (``analysis.allocation``), and the report section."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import analyse, load_records, write_report
from analysis.__main__ import main as cli_main
from analysis.allocation import (
    SPREAD,
    allocation_correlations,
    allocation_spread,
    analyse_allocation,
    has_variants,
    owl_allocations,
)
from analysis.items import load_items
from analysis.paired import paired_bootstrap
from analysis.runs import load_runs
from tests.analysis.hand import benjamini_hochberg
from tests.analysis.items_fake import COMPACT, SUITE, FakeRun, draw, record, trial_file, trial_id
from tests.analysis.test_report import png_size

# Seed-mean OWL allocations at 80 %, 4 layers (each sums to 3.2: mean 0.8); c4's two seeds
# differ, the others' do not.
C4_SEEDS = ([0.76, 0.80, 0.82, 0.82], [0.78, 0.80, 0.80, 0.82])  # mean .77 .80 .81 .82
ALLOCATIONS = {
    "code": [0.74, 0.82, 0.80, 0.84],
    "math": [0.80, 0.78, 0.81, 0.81],
    "uniform": [0.76, 0.80, 0.81, 0.83],
}
MIX = {"code": 0.5, "math": 0.5}
N = 60  # items per task


def _owl_vector(source: str, seed: int) -> list[float]:
    return C4_SEEDS[seed] if source == "c4" else ALLOCATIONS[source]


def _add(run: FakeRun, values: dict, *, source: str, seed: int, method: str = "wanda",
         allocation: str = "uniform", refine: str = "none", **fields) -> dict:  # fmt: skip
    """One trial with side file, its record carrying the new pruning fields."""
    mix = MIX if source == "uniform" else {source: 1.0}
    tid = trial_id(source, seed, method, allocation, refine)
    rec = record(tid, values, run.dense_values, mix=mix, mix_name=source, seed=seed,
                 method=method, sparsity=0.8, key=run.key)  # fmt: skip
    rec |= {"allocation": allocation, "refine": refine, **fields}
    (run.items / f"{tid}.json").write_text(json.dumps(trial_file(tid, values, run.key),
                                                      **COMPACT))  # fmt: skip
    with open(run.root / "records.jsonl", "a") as handle:
        handle.write(json.dumps(rec) + "\n")
    run.records.append(rec)
    return rec


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``base``: wanda and wanda+owl on c4, code, math and the uniform mix, and ria, 2 seeds;
    ``dsnot`` (another output directory): ria+dsnot on c4 and code, item for item the same
    answers as ria on the same calibration set and seed."""
    root = tmp_path_factory.mktemp("allocation")
    rng = np.random.default_rng(5)
    dense = draw(rng, 0.9, N)
    latent = {t: rng.random(N) for t in SUITE}
    base, dsnot = FakeRun(root / "base", dense), FakeRun(root / "dsnot", dense)
    for seed in range(2):
        for source in ("c4", "code", "math", "uniform"):
            _add(base, draw(rng, 0.5, N, latent, noise=0.2), source=source, seed=seed)
            _add(base, draw(rng, 0.7, N, latent, noise=0.2), source=source, seed=seed,
                 allocation="owl", layer_sparsity=_owl_vector(source, seed),
                 outlier_shares=[5.0, 3.0, 2.0, 1.0])  # fmt: skip
        for source in ("c4", "code"):
            values = draw(rng, 0.6, N, latent, noise=0.5)
            _add(base, values, source=source, seed=seed, method="ria")
            _add(dsnot, values, source=source, seed=seed, method="ria", refine="dsnot")
    return base, dsnot


def test_allocations_ranges_and_pairwise_l1_by_hand(runs):
    base, _ = runs
    allocations, notes = owl_allocations(load_records(base.root))
    assert notes == []
    assert set(allocations["base_method"]) == {"wanda"}
    c4 = allocations[allocations["source"] == "c4"].sort_values("layer")
    assert c4["layer_sparsity"].tolist() == pytest.approx([0.77, 0.80, 0.81, 0.82])
    assert set(c4["n_seeds"]) == {2} and set(c4["outlier_share"]) == {5.0, 3.0, 2.0, 1.0}
    spread, distances = allocation_spread(allocations)
    assert spread["range"].tolist() == pytest.approx([0.06, 0.04, 0.01, 0.03])
    assert spread.loc[0, ["min_source", "max_source"]].tolist() == ["code", "math"]
    # Pairs: c4-code .08, c4-math .06, c4-uniform .02, code-math .14, code-uniform .06,
    # math-uniform .08: mean .44 / 6.
    row = distances.iloc[0]
    assert row["mean_pairwise_l1"] == pytest.approx(0.44 / 6)
    assert row["max_pairwise_l1"] == pytest.approx(0.14) and row["farthest_pair"] == "code / math"
    assert spread["mean_pairwise_abs"].sum() == pytest.approx(0.44 / 6)
    assert (row["max_range_layer"], row["max_range"]) == (0, pytest.approx(0.06))


def _mean_retention(records, field, **where):
    values = [r[field] for r in records if all(r.get(k) == v for k, v in where.items())]
    assert len(values) == 2  # two seeds
    return sum(values) / 2


def test_with_vs_without_paired_across_runs(runs):
    base, dsnot = runs
    records, infos = load_runs([base.root, dsnot.root])
    result = analyse_allocation(records, runs=infos, n_resamples=0, paired_resamples=300)
    table = result.variants
    total = table[table["quantity"] == "total"].set_index(["b", "mix_name"])
    # wanda+owl answers 0.7 of the items right, wanda 0.5: B − A is clearly positive.
    every = base.records
    for source in ("c4", "code", "math", "uniform"):
        row = total.loc[("wanda+owl", source)]
        want = _mean_retention(every, "total_retention", mix_name=source, allocation="owl",
                               method="wanda") - _mean_retention(
            every, "total_retention", mix_name=source, allocation="uniform", method="wanda")  # fmt: skip
        assert row["a"] == "wanda" and row["change"] == "+owl" and row["seeds"] == 2
        assert row["difference"] == pytest.approx(want, abs=1e-12)
        assert 0 < row["ci_low"] <= row["difference"] <= row["ci_high"]
    # ria+dsnot (run dsnot) kept ria's answers (run base) seed for seed: with the seeds drawn
    # once for both sides, every replicate's difference is exactly 0.
    for source in ("c4", "code"):
        row = total.loc[("ria+dsnot", source)]
        assert (row["a"], row["run_b"], row["run_a"]) == ("ria", "dsnot", "base")
        assert row["difference"] == row["ci_low"] == row["ci_high"] == 0.0
        assert bool(row["contains_zero"])
    summary = result.variant_summary.set_index("b")
    assert summary.loc["wanda+owl", ["n_sets", "total_above", "total_below"]].tolist() == [4, 4, 0]
    assert summary.loc["ria+dsnot", ["n_sets", "total_above", "total_below"]].tolist() == [2, 0, 0]
    assert summary.loc["wanda+owl", "total_difference"] == pytest.approx(
        total.loc["wanda+owl"]["difference"].mean()
    )


def test_without_seed_pairing_the_same_answers_differ_by_chance(runs):
    """The independent draw of seeds (the default) mixes one seed of A with another of B."""
    base, dsnot = runs
    ria = [r for r in base.records if r["method"] == "ria" and r["mix_name"] == "c4"]
    refined = [r for r in dsnot.records if r["mix_name"] == "c4"]
    items_a, items_b = load_items(base.root, ria), load_items(dsnot.root, refined)
    a = [items_a.trials[r["trial_id"]] for r in ria]
    b = [items_b.trials[r["trial_id"]] for r in refined]
    dense = items_a.dense_of(ria[0]["trial_id"])
    free = paired_bootstrap(dense, a, b, n_resamples=300).row("total")
    paired = paired_bootstrap(dense, a, b, n_resamples=300, pair_seeds=True).row("total")
    assert free["difference"] == paired["difference"] == 0.0
    assert free["ci_high"] - free["ci_low"] > 0.01
    assert paired["ci_low"] == paired["ci_high"] == 0.0


def _records_only(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_records(path)


def test_spearman_of_metrics_with_layers_and_spread_against_scipy(tmp_path):
    rng = np.random.default_rng(3)
    sources = ["s1", "s2", "s3", "s4", "s5", "s6"]
    rows, by_hand = [], {}
    for k, source in enumerate(sources):
        seeds = []
        for seed in range(2):
            layers = (0.7 + 0.05 * rng.standard_normal(5)).round(4).tolist()
            metrics = {"perplexity": 10.0 * k + seed, "entropy": float(rng.random())}
            rows.append({"trial_id": f"{source}-{seed}", "status": "ok", "phase": "grid",
                         "method": "wanda", "structure": "unstructured", "sparsity": 0.7,
                         "mix": {source: 1.0}, "mix_name": source, "seed": seed,
                         "allocation": "owl", "refine": "none", "layer_sparsity": layers,
                         "calib_metrics": metrics})  # fmt: skip
            seeds.append((layers, metrics))
        layers = [(a + b) / 2 for a, b in zip(seeds[0][0], seeds[1][0], strict=True)]
        metrics = {m: (seeds[0][1][m] + seeds[1][1][m]) / 2 for m in ("perplexity", "entropy")}
        by_hand[source] = (layers, metrics)
    records = _records_only(tmp_path / "records.jsonl", rows)
    allocations, _ = owl_allocations(records)
    table, notes = allocation_correlations(records, allocations, n_resamples=99)
    assert notes == []
    assert len(table) == 2 * 6  # 2 metrics x (5 layers + spread)
    for metric in ("perplexity", "entropy"):
        x = [by_hand[s][1][metric] for s in sources]
        for target in [f"layer {k}" for k in range(5)] + [SPREAD]:
            if target == SPREAD:
                y = [max(by_hand[s][0]) - min(by_hand[s][0]) for s in sources]
            else:
                y = [by_hand[s][0][int(target.split()[1])] for s in sources]
            want = stats.spearmanr(x, y)
            row = table[(table["metric"] == metric) & (table["target"] == target)].iloc[0]
            assert row["n"] == 6
            assert row["rho"] == pytest.approx(want.statistic, abs=1e-12)
            assert row["p_value"] == pytest.approx(want.pvalue, rel=1e-9)
            assert row["ci_low"] <= row["rho"] <= row["ci_high"]
    q = benjamini_hochberg(table["p_value"].tolist())
    assert table["q_value"].tolist() == pytest.approx(q, rel=1e-12)


def test_report_section_with_figure_across_two_runs(runs, tmp_path):
    base, dsnot = runs
    out = tmp_path / "out"
    records, infos = load_runs([base.root, dsnot.root])
    analysis = analyse(records, n_resamples=9, runs=infos, paired_resamples=200)
    write_report(analysis, out, max_figure_groups=1, workers=1)
    headline = ("the calibration source moves layer 0's sparsity by up to 6.0 points at 80% "
                "(74.0% with code, 80.0% with math)")  # fmt: skip
    assert headline in analysis.allocation.headlines["wanda · unstructured · 80%"][0]
    md = (out / "report.md").read_text()
    section = md.split("## Layer-wise allocation (OWL) and mask refinement")[1].split("\n## ")[0]
    assert f"wanda · unstructured · 80%: {headline}" in section
    assert "### With vs without" in section and "ria+dsnot − ria" in section
    assert "| ria+dsnot − ria | c4 | 2 |" in section
    assert "![OWL layer sparsity by calibration set, wanda · unstructured · 80%]" in section
    figure = out / "figures" / "owl_wanda_unstructured_0.8.png"
    width, height = png_size(figure)
    assert width >= 400 and height >= 250
    for name in ("owl_allocations", "owl_spread", "variants_paired", "owl_correlations"):
        assert (out / f"{name}.csv").is_file()
    spread = pd.read_csv(out / "owl_spread.csv")
    assert spread["range"].tolist() == pytest.approx([0.06, 0.04, 0.01, 0.03])


def test_no_owl_or_refined_trial_no_section(runs, tmp_path):
    base, _ = runs
    plain = [dict(r) for r in base.records if r["allocation"] == "uniform" and r["method"] == "ria"]
    for r in plain[:2]:  # records from before the new fields: no allocation, no refine
        del r["allocation"], r["refine"]
    records = _records_only(tmp_path / "records.jsonl", plain)
    assert not has_variants(records)
    assert analyse_allocation(records) is None
    files = write_report(records, tmp_path / "out", n_resamples=0, max_figure_groups=0)
    md = files.report_md.read_text()
    assert "Layer-wise allocation" not in md and "owl_allocations" not in files.tables
    assert not any(p.name.startswith(("owl_", "variants_")) for p in files.figures)


def test_without_side_files_the_records_give_the_difference_without_interval(runs, tmp_path):
    base, _ = runs
    records = _records_only(tmp_path / "records.jsonl", base.records)  # no items/ beside it
    result = analyse_allocation(records, n_resamples=0, paired_resamples=100)
    row = result.variants[(result.variants["b"] == "wanda+owl") & (result.variants["mix_name"]
                          == "math") & (result.variants["quantity"] == "worst")].iloc[0]  # fmt: skip
    want = _mean_retention(base.records, "worst_retention", mix_name="math", allocation="owl",
                           method="wanda") - _mean_retention(
        base.records, "worst_retention", mix_name="math", allocation="uniform", method="wanda")  # fmt: skip
    assert row["difference"] == pytest.approx(want, abs=1e-12)
    assert np.isnan(row["ci_low"]) and row["n_resamples"] == 0
    assert any("without intervals" in note for note in result.notes)
    # ria+dsnot lives in another run: ria alone has nothing to be compared with, and no note.
    assert set(result.variants["b"]) == {"wanda+owl"}


def test_cli_prints_the_allocation_headlines(runs, tmp_path, capsys):
    base, _ = runs
    argv = [str(base.root), "--out", str(tmp_path / "out"), "--resamples", "0",
            "--paired-resamples", "50", "--max-figure-groups", "0"]  # fmt: skip
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert "wanda · unstructured · 80%: the calibration source moves layer 0's sparsity" in printed
    assert "wanda · unstructured · 80%: wanda+owl − wanda: total +" in printed
