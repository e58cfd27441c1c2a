"""The paired bootstrap on synthetic per-item data whose truth is known."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.items import ItemFile, TaskItems
from analysis.paired import (
    PairedUnavailable,
    compare_records,
    paired_bootstrap,
)
from tests.analysis.items_fake import SUITE, FakeRun, draw

DIMS = ("general", "commonsense", "code", "math")
N_PER_TASK = 400  # 5 tasks: 2 000 items


def files(values: dict[str, list[float]], name: str) -> ItemFile:
    tasks = {
        t: TaskItems(SUITE[t][0], SUITE[t][1], "acc", tuple(range(len(v))), np.asarray(v, float))
        for t, v in values.items()
    }
    return ItemFile(Path(f"{name}.json"), tasks, trial_id=name, dense="dense-k")


def dataset(seed: int, p_a: float, p_b: float, *, n: int = N_PER_TASK, correlated: bool = True,
            noise: float = 1 / 3):  # fmt: skip
    """Dense correct with p 0.9, A and B with p_a and p_b, on one latent difficulty per item
    (a share ``noise`` of the items answered by independent coins) when ``correlated``: in the
    population, retention(B) − retention(A) is (p_b − p_a) / 0.9 in every dimension."""
    rng = np.random.default_rng(seed)
    dense = files(draw(rng, 0.9, n), "dense-k")
    latent = {t: rng.random(n) for t in SUITE} if correlated else None
    a = files(draw(rng, p_a, n, latent, noise), "a")
    b = files(draw(rng, p_b, n, latent, noise), "b")
    assert a.tasks["t_math"].values.tolist() != b.tasks["t_math"].values.tolist()
    return dense, a, b


def test_a_true_difference_of_ten_points_is_found():
    # p_b − p_a = 0.09 = 0.10 × dense 0.9: the population difference is 0.10 everywhere.
    dense, a, b = dataset(11, 0.45, 0.54)
    result = paired_bootstrap(dense, [a], [b], n_resamples=2000, seed=0)
    assert result.n_items == 2000
    for quantity in ("total", "worst"):
        row = result.row(quantity)
        low, high = result.interval(quantity)
        assert low > 0, row
        assert low <= 0.10 <= high, row
        assert not row["contains_zero"] and row["p_positive"] == 1.0
    assert result.row("total")["difference"] == pytest.approx(0.10, abs=0.02)


def test_no_true_difference_gives_intervals_holding_zero():
    held = []
    for seed in range(40):
        dense, a, b = dataset(1000 + seed, 0.55, 0.55, n=200)
        result = paired_bootstrap(dense, [a], [b], n_resamples=1000, seed=seed)
        row = result.row("total")
        held.append(row["contains_zero"])
        assert row["ci_low"] <= row["difference"] <= row["ci_high"]
    assert sum(held) >= 36, sum(held)  # at least 90 % of 40


def test_the_same_seed_gives_identical_intervals():
    dense, a, b = dataset(5, 0.5, 0.55)
    first = paired_bootstrap(dense, [a, b], [b], n_resamples=500, seed=7)
    second = paired_bootstrap(dense, [a, b], [b], n_resamples=500, seed=7)
    pd.testing.assert_frame_equal(first.table, second.table, check_exact=True)
    other = paired_bootstrap(dense, [a, b], [b], n_resamples=500, seed=8)
    assert other.interval("total") != first.interval("total")


def test_pairing_narrows_the_interval_when_items_are_correlated():
    dense, a, b = dataset(21, 0.5, 0.55, noise=0.1)
    paired = paired_bootstrap(dense, [a], [b], n_resamples=2000, seed=0)
    unpaired = paired_bootstrap(dense, [a], [b], n_resamples=2000, seed=0, paired=False)
    # The same point estimate either way; only the spread differs.
    pd.testing.assert_series_equal(paired.table["difference"], unpaired.table["difference"])

    def width(result):
        low, high = result.interval("total")
        return high - low

    assert width(paired) < 0.6 * width(unpaired), (width(paired), width(unpaired))
    # Without item correlation pairing gains little: the two widths are close.
    dense, a, b = dataset(22, 0.5, 0.55, correlated=False)
    paired = paired_bootstrap(dense, [a], [b], n_resamples=2000, seed=0)
    unpaired = paired_bootstrap(dense, [a], [b], n_resamples=2000, seed=0, paired=False)
    assert 0.8 < width(paired) / width(unpaired) < 1.1


def test_seed_spread_widens_the_interval():
    """Seeds whose retentions differ by far more than item noise: resampling seeds (B's seeds
    drawn with replacement) must widen the interval over the items-only one."""
    rng = np.random.default_rng(4)
    n = 300
    latent = {t: rng.random(n) for t in SUITE}
    dense = files(draw(rng, 0.9, n), "dense-k")
    a = [files(draw(rng, 0.5, n, latent), "a0")]
    b = [files(draw(rng, p, n, latent), f"b{k}") for k, p in enumerate((0.40, 0.55, 0.70))]
    seeds = paired_bootstrap(dense, a, b, n_resamples=2000, seed=0)
    items_only = paired_bootstrap(dense, a, b, n_resamples=2000, seed=0, resample_seeds=False)
    assert seeds.row("total")["difference"] == items_only.row("total")["difference"]
    w_seeds = np.subtract(*reversed(seeds.interval("total")))
    w_items = np.subtract(*reversed(items_only.interval("total")))
    assert w_seeds > 2 * w_items, (w_seeds, w_items)


def test_two_thousand_replicates_over_two_thousand_items_are_fast():
    dense, a, b = dataset(1, 0.5, 0.6)
    paired_bootstrap(dense, [a], [b], n_resamples=50, seed=0)  # warm up
    start = time.perf_counter()
    paired_bootstrap(dense, [a, b, a], [b, a, b], n_resamples=2000, seed=0)
    assert time.perf_counter() - start < 1.0


def _run(tmp_path):
    rng = np.random.default_rng(9)
    n = 60
    dense_values = draw(rng, {"general": 0.9, "commonsense": 0.8, "code": 0.7, "math": 0.85}, n)
    dense_values["t_boolq"] = [1.0] * 27 + [0.0] * 33  # 0.45 < chance 0.5 of boolq
    dense_values["t_math"] = [1.0] * 15 + [0.0] * 45  # 0.25: at chance, math undefined
    run = FakeRun(tmp_path / "run", dense_values)
    a = [run.add(draw(rng, 0.5, n), mix_name="c4", seed=s) for s in range(3)]
    b = [run.add(draw(rng, 0.65, n), mix_name="uniform", mix={"x": 0.5, "y": 0.5}, seed=s)
         for s in range(2)]  # fmt: skip
    return run, a, b


def test_the_point_estimate_is_the_records_retention(tmp_path):
    run, a, b = _run(tmp_path)
    result = compare_records(run.root, a, b, label_a="c4", label_b="uniform", n_resamples=200)
    assert result.trials_a == tuple(r["trial_id"] for r in a)
    assert result.notes == ()
    assert a[0]["retention"]["math"] is None
    assert list(result.table["quantity"]) == ["general", "commonsense", "code", "total", "worst"]
    for quantity in ("general", "commonsense", "code", "total", "worst"):
        field = {"total": "total_retention", "worst": "worst_retention"}.get(quantity)
        want = [(r[field] if field else r["retention"][quantity]) for r in (*a, *b)]
        row = result.row(quantity)
        assert row["a"] == pytest.approx(np.mean(want[:3]), abs=1e-12)
        assert row["b"] == pytest.approx(np.mean(want[3:]), abs=1e-12)
        assert row["difference"] == pytest.approx(row["b"] - row["a"], abs=1e-15)
        assert row["n_valid"] <= 200


def test_a_skipped_trial_is_noted_and_the_rest_compared(tmp_path):
    run, a, b = _run(tmp_path)
    run.side_file(a[1]).write_text("{")
    result = compare_records(run.root, a, b, n_resamples=100)
    assert result.trials_a == (a[0]["trial_id"], a[2]["trial_id"])
    assert len(result.notes) == 1 and "not valid JSON" in result.notes[0]
    assert result.row("total")["a"] == pytest.approx(
        np.mean([a[0]["total_retention"], a[2]["total_retention"]]), abs=1e-12
    )


def test_a_side_without_usable_items_is_unavailable(tmp_path):
    run, a, b = _run(tmp_path)
    for rec in b:
        run.side_file(rec).unlink()
    with pytest.raises(PairedUnavailable, match="no usable per-item data for uniform: .*missing"):
        compare_records(run.root, a, b, label_b="uniform")


def test_records_may_be_objects_with_model_dump(tmp_path):
    run, a, b = _run(tmp_path)

    class Record:
        def __init__(self, data):
            self.data = data

        def model_dump(self):
            return self.data

    direct = compare_records(run.root, a, b, n_resamples=100)
    wrapped = compare_records(run.root, map(Record, a), map(Record, b), n_resamples=100)
    pd.testing.assert_frame_equal(direct.table, wrapped.table)
    assert wrapped.to_dict()["quantities"]["total"]["difference"] == pytest.approx(
        direct.row("total")["difference"]
    )


def test_a_dimension_near_chance_drops_replicates_not_dimensions():
    """The dense math score sits just above chance: replicates where it falls to chance leave
    math, total and worst (never a total over fewer dimensions)."""
    rng = np.random.default_rng(2)
    n = 200
    values = draw(rng, 0.9, n)
    values["t_math"] = [1.0] * 54 + [0.0] * 146  # 0.27 > chance 0.25
    dense = files(values, "dense-k")
    a, b = files(draw(rng, 0.2, n), "a"), files(draw(rng, 0.22, n), "b")
    result = paired_bootstrap(dense, [a], [b], n_resamples=500, seed=0)
    rows = result.table.set_index("quantity")
    assert 0 < rows.loc["math", "n_valid"] < 500
    assert rows.loc["total", "n_valid"] == rows.loc["math", "n_valid"]
    assert rows.loc["general", "n_valid"] == 500
    assert any("left out of math, total, worst" in note for note in result.notes)
