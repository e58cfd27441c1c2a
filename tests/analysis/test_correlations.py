import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import CORRELATION_COLUMNS, correlations, load_records, spearman_rho, spearman_with_ci
from tests.analysis.hand import (
    DIMS,
    GOLDEN,
    benjamini_hochberg,
    bootstrap_ci,
    raw_records,
    seed_means,
    spearman,
    spearman_p,
)

RESAMPLES = 999
SEED = 7


@pytest.fixture(scope="module")
def golden():
    with pytest.warns(UserWarning, match="line|:61:"):
        return load_records(GOLDEN)


@pytest.fixture(scope="module")
def result(golden):
    return correlations(golden, n_resamples=RESAMPLES, seed=SEED)


def test_table_has_exactly_the_agreed_columns(result):
    assert tuple(result.table.columns) == CORRELATION_COLUMNS


def test_every_rho_p_ci_and_q_matches_an_independent_computation(result):
    means = seed_means(raw_records(GOLDEN))
    table = result.table
    checked = 0
    for key in [("wanda", "unstructured", 0.5), ("wanda", "unstructured", 0.7)]:
        sources = sorted(means[key])
        assert len(sources) == 6
        group = table[
            (table["method"] == key[0])
            & (table["structure"] == key[1])
            & (table["sparsity"] == key[2])
        ]
        # 3 metrics x (4 dimensions + total); n_windows is constant, so 10 tests in the family.
        assert len(group) == 15
        family = []
        for metric in ("ngram4_aggregation", "perplexity"):
            for dimension in (*DIMS, "total"):
                x = np.array([means[key][s][f"calib:{metric}"] for s in sources])
                y = np.array([means[key][s][dimension] for s in sources])
                rho = spearman(x, y)
                row = group[(group["metric"] == metric) & (group["dimension"] == dimension)].iloc[0]
                assert row["n"] == 6
                assert row["rho"] == pytest.approx(rho, abs=1e-12)
                assert row["p_value"] == pytest.approx(spearman_p(rho, 6), rel=1e-9, abs=1e-12)
                low, high = bootstrap_ci(x, y, RESAMPLES, SEED)
                assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-12)
                assert row["ci_low"] <= row["rho"] <= row["ci_high"]
                family.append((row, spearman_p(rho, 6)))
                checked += 1
        q = benjamini_hochberg([p for _, p in family])
        for (row, _), want in zip(family, q, strict=True):
            assert row["q_value"] == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert checked == 20


def test_perplexity_correlations_have_the_designed_signs(result):
    t = result.table
    t = t[(t["method"] == "wanda") & (t["sparsity"] == 0.5) & (t["metric"] == "perplexity")]
    rho = dict(zip(t["dimension"], t["rho"], strict=True))
    assert rho["general"] > 0 and rho["code"] < 0 and rho["math"] < 0


def test_three_sources_give_nan_rows_with_a_reason(result):
    t = result.table
    group = t[t["method"] == "magnitude"]
    assert len(group) == 10  # this group never measured n_windows: no rows for it
    assert (group["n"] == 3).all()
    for column in ("rho", "p_value", "ci_low", "ci_high", "q_value"):
        assert group[column].isna().all()
    notes = result.notes[result.notes["method"] == "magnitude"]
    assert set(notes["reason"]) == {"fewer than 4 sources with values (n=3)"}
    assert len(notes) == 10


def test_constant_metric_gives_nan_with_a_reason(result):
    t = result.table
    constant = t[t["metric"] == "n_windows"]
    assert len(constant) == 10 and constant["rho"].isna().all() and constant["q_value"].isna().all()
    notes = result.notes[result.notes["metric"] == "n_windows"]
    assert set(notes["reason"]) == {"metric 'n_windows' is constant across sources"}


def test_constant_retention_column_gives_nan_and_leaves_the_family_smaller(golden):
    trials = golden.ok.copy()
    trials.loc[:, "retention.math"] = 0.5
    result = correlations(trials, n_resamples=0)
    t = result.table
    t = t[(t["method"] == "wanda") & (t["sparsity"] == 0.7)]
    math_rows = t[t["dimension"] == "math"]
    assert math_rows["rho"].isna().all() and len(math_rows) == 3
    notes = result.notes[(result.notes["method"] == "wanda") & (result.notes["sparsity"] == 0.7)]
    reasons = notes[(notes["dimension"] == "math") & (notes["metric"] == "perplexity")]
    assert set(reasons["reason"]) == {"math retention is constant across sources"}
    tested = t[t["p_value"].notna()]
    assert len(tested) == 8
    q = benjamini_hochberg(tested["p_value"].tolist())
    np.testing.assert_allclose(tested["q_value"], q, rtol=1e-12)
    # without resamples there is no interval, but rho and p stand
    assert tested["ci_low"].isna().all() and tested["rho"].notna().all()


def test_grouping_by_fewer_keys_pools_groups_and_labels_the_rest_all(golden):
    result = correlations(golden, group_by=("method",), n_resamples=0)
    t = result.table
    assert tuple(t.columns) == CORRELATION_COLUMNS
    wanda = t[t["method"] == "wanda"]
    assert set(wanda["structure"]) == {"all"} and set(wanda["sparsity"]) == {"all"}
    # sources are averaged over seeds and both sparsities: still six sources
    assert set(wanda["n"]) == {6}
    means = seed_means(raw_records(GOLDEN))
    pooled = {
        s: np.mean([means[("wanda", "unstructured", sp)][s]["general"] for sp in (0.5, 0.7)])
        for s in means[("wanda", "unstructured", 0.5)]
    }
    # the metamath code gap makes pooling by seed differ from pooling by sparsity only for code
    raw = [
        r
        for r in raw_records(GOLDEN)
        if r["status"] == "ok"
        and r["method"] == "wanda"
        and r["phase"] == "grid"
        and len(r["mix"]) == 1
    ]
    sources = sorted(pooled)
    x = [np.mean([r["calib_metrics"]["perplexity"] for r in raw if s in r["mix"]]) for s in sources]
    y = [np.mean([r["retention"]["general"] for r in raw if s in r["mix"]]) for s in sources]
    row = wanda[(wanda["metric"] == "perplexity") & (wanda["dimension"] == "general")].iloc[0]
    assert row["rho"] == pytest.approx(spearman(x, y), abs=1e-12)


def test_vectorised_spearman_matches_scipy_with_ties_and_is_nan_for_constants():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (50, 7)).astype(float)
    y = rng.integers(0, 4, (50, 7)).astype(float)
    x[0] = 1.0  # constant row
    got = spearman_rho(x, y, axis=-1)
    assert math.isnan(got[0])
    for i in range(1, 50):
        if np.ptp(y[i]) == 0:
            assert math.isnan(got[i])
            continue
        assert got[i] == pytest.approx(stats.spearmanr(x[i], y[i]).statistic, abs=1e-12)


def test_bootstrap_with_degenerate_resamples_drops_them_and_counts_them():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([0.2, 0.1, 0.4, 0.3])
    s = spearman_with_ci(x, y, n_resamples=2000, seed=3)
    # one source repeated four times is constant: about 4 / 4**4 of the resamples
    index = np.random.default_rng(3).integers(0, 4, (2000, 4))
    constant = int(sum(len(set(row)) == 1 for row in index.tolist()))
    assert s.degenerate_resamples >= constant > 0
    assert (s.ci_low, s.ci_high) == pytest.approx(bootstrap_ci(x, y, 2000, 3), abs=1e-12)
    assert s.rho == pytest.approx(0.6, abs=1e-12) and s.n == 4


def test_same_seed_same_table_and_scipy_bootstrap_agrees(golden):
    a = correlations(golden, n_resamples=RESAMPLES, seed=SEED).table
    b = correlations(golden, n_resamples=RESAMPLES, seed=SEED).table
    pd.testing.assert_frame_equal(a, b)
    row = a[(a["method"] == "wanda") & (a["sparsity"] == 0.7)]
    row = row[(row["metric"] == "perplexity") & (row["dimension"] == "code")].iloc[0]
    means = seed_means(raw_records(GOLDEN))[("wanda", "unstructured", 0.7)]
    sources = sorted(means)
    x = np.array([means[s]["calib:perplexity"] for s in sources])
    y = np.array([means[s]["code"] for s in sources])
    ref = stats.bootstrap(
        (x, y),
        lambda u, v: stats.spearmanr(u, v).statistic,
        paired=True,
        vectorized=False,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(SEED),
    )
    dist = np.asarray(ref.bootstrap_distribution)
    if np.isnan(dist).any():
        want = np.nanquantile(dist, [0.025, 0.975])
    else:
        want = [ref.confidence_interval.low, ref.confidence_interval.high]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(want), abs=1e-12)
