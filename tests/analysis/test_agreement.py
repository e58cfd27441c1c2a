"""analysis.agreement: two runs' rankings of the calibration choices, Kendall's tau-b and
Spearman's rho with bootstrap intervals over the choices, on synthetic runs whose truth is
known."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from analysis.__main__ import main
from analysis.agreement import agreement, kendall_tau_b, spearman_rho
from tests.analysis.items_fake import FakeRun, draw

# Ten single-source choices whose true accuracy (every dimension) is 0.04 apart: 400 items per
# task rank them almost right, 25 items do not.
TRUE = {f"s{i}": 0.45 + 0.04 * i for i in range(10)}


def _run(root, rng, n, truth=TRUE, seeds=(0,)):
    run = FakeRun(root, draw(rng, 0.9, n))
    for seed in seeds:
        for name, p in truth.items():
            run.add(draw(rng, p, n), mix_name=name, seed=seed)
    return run


def test_vectorised_coefficients_equal_scipy_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(30, 7)).astype(float)  # many ties
    y = rng.integers(0, 4, size=(30, 7)).astype(float)
    taus, rhos = kendall_tau_b(x, y), spearman_rho(x, y)
    for i in range(30):
        assert taus[i] == pytest.approx(kendalltau(x[i], y[i]).statistic, abs=1e-12)
        assert rhos[i] == pytest.approx(spearmanr(x[i], y[i]).statistic, abs=1e-12)
    assert np.isnan(kendall_tau_b(np.ones((1, 5)), y[:1]))[0]


def test_two_budgets_of_one_truth_agree_and_the_small_budget_is_less_sure(tmp_path):
    rng = np.random.default_rng(1)
    full = _run(tmp_path / "full", rng, 400)
    big = _run(tmp_path / "big", rng, 400)
    small = _run(tmp_path / "small", rng, 25)
    sure = agreement(full.root, big.root, n_resamples=400, quantities=["total", "math"])
    row = sure.table[sure.table["quantity"] == "total"].iloc[0]
    assert row["n_choices"] == 10 and row["n_valid"] == 400
    assert row["top_a"] == row["top_b"] == "s9"
    assert row["kendall_tau"] > 0.7 and row["tau_low"] > 0.4 and row["tau_high"] <= 1.0
    assert row["spearman_rho"] > 0.8 and row["rho_low"] > 0.5
    assert row["tau_low"] <= row["kendall_tau"] <= row["tau_high"]
    # The point estimate is the one of the records' own retentions.
    vals = sure.values[sure.values["quantity"] == "total"]
    a = {r["mix_name"]: r["total_retention"] for r in full.records}
    assert dict(zip(vals["choice"], vals["a"], strict=True)) == pytest.approx(a, abs=1e-12)
    assert row["kendall_tau"] == pytest.approx(
        kendalltau(vals["a"], vals["b"]).statistic, abs=1e-12
    )
    unsure = agreement(full.root, small.root, n_resamples=400, quantities=["total"]).table.iloc[0]
    width = lambda r: r["tau_high"] - r["tau_low"]  # noqa: E731
    assert unsure["kendall_tau"] < row["kendall_tau"] and width(unsure) > width(row)


def test_a_suite_blind_to_calibration_gives_an_interval_around_zero(tmp_path):
    rng = np.random.default_rng(2)
    full = _run(tmp_path / "full", rng, 400)
    blind = _run(tmp_path / "blind", rng, 200, truth={k: 0.6 for k in TRUE})
    row = agreement(full.root, blind.root, n_resamples=400, quantities=["total"]).table.iloc[0]
    assert row["tau_low"] < 0 < row["tau_high"]


def test_seeds_both_runs_share_are_averaged_and_the_same_seed_repeats(tmp_path):
    rng = np.random.default_rng(3)
    a = _run(tmp_path / "a", rng, 30, seeds=(0, 1, 2))
    b = _run(tmp_path / "b", rng, 30, seeds=(1, 2))
    first = agreement(a.root, b.root, n_resamples=200, seed=5)
    again = agreement(a.root, b.root, n_resamples=200, seed=5)
    other = agreement(a.root, b.root, n_resamples=200, seed=6)
    assert first.table.equals(again.table)
    assert not first.table["tau_low"].equals(other.table["tau_low"])
    s0 = first.values[(first.values["choice"] == "s0") & (first.values["quantity"] == "total")]
    want = np.mean([r["total_retention"] for r in a.records if r["mix_name"] == "s0"
                    and r["seed"] in (1, 2)])  # fmt: skip
    assert s0["a"].iloc[0] == pytest.approx(want, abs=1e-12)
    assert set(first.table["quantity"]) == {"total", "worst", "general", "commonsense", "code",
                                            "math"}  # fmt: skip


def test_records_alone_suffice_and_the_interval_holds_the_estimate(tmp_path):
    rng = np.random.default_rng(4)
    a, b = _run(tmp_path / "a", rng, 100), _run(tmp_path / "b", rng, 100)
    for run in (a, b):
        shutil.rmtree(run.items)
    table = agreement(a.root, b.root, n_resamples=300).table
    assert len(table) == 6
    for _, row in table.iterrows():
        assert row["tau_low"] <= row["kendall_tau"] <= row["tau_high"]
        assert row["rho_low"] <= row["spearman_rho"] <= row["rho_high"]


def test_too_few_shared_choices_is_a_note(tmp_path):
    rng = np.random.default_rng(5)
    a = _run(tmp_path / "a", rng, 50)
    b = _run(tmp_path / "b", rng, 50, truth={"s0": 0.4, "s1": 0.5, "other": 0.6})
    result = agreement(a.root, b.root, n_resamples=50)
    assert result.table.empty
    assert any("2 choice(s) in both runs; agreement needs at least 3" in n for n in result.notes)


def test_cli_writes_the_table_and_refuses_bad_input(tmp_path, capsys):
    rng = np.random.default_rng(6)
    a, b = _run(tmp_path / "a", rng, 60), _run(tmp_path / "b", rng, 60)
    out = tmp_path / "agree"
    assert main(["agreement", str(a.root), str(b.root), "--resamples", "100", "--out",
                 str(out), "--quantity", "total,worst"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "| wanda · unstructured · 60% | total | 10 |" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == ["agreement.csv", "agreement.md", "agreement.png", "agreement_values.csv"]
    assert main(["agreement", str(a.root), str(a.root)]) == 2
    assert "needs two different runs" in capsys.readouterr().err
    assert main(["agreement", str(a.root), str(tmp_path / "nowhere")]) == 2
    assert main(["agreement", str(a.root), str(b.root), "--quantity", "speed"]) == 2
    assert "unknown quantity 'speed'" in capsys.readouterr().err


def test_two_models_are_compared_only_when_asked(tmp_path, capsys):
    """Do the dense toy model and the toy hybrid rank the calibration sources alike?"""
    import json

    rng = np.random.default_rng(7)
    a, b = _run(tmp_path / "a", rng, 60), _run(tmp_path / "b", rng, 60)
    lines = (b.root / "records.jsonl").read_text().splitlines()
    other = [json.dumps({**json.loads(line), "model": "hybrid"}) for line in lines]
    (b.root / "records.jsonl").write_text("\n".join(other) + "\n")
    assert main(["agreement", str(a.root), str(b.root), "--out", str(tmp_path / "o")]) == 2
    assert "--across-models" in capsys.readouterr().err
    result = agreement(a.root, b.root, n_resamples=50, across_models=True)
    assert (result.table["n_choices"] == 10).all()
