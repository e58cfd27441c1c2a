import numpy as np
import pandas as pd
import pytest

from analysis import (
    PUBLISHED,
    averaging_artifact,
    compare_mixes,
    correlations,
    headline,
    load_records,
    source_means,
    source_variance_share,
    strongest_opposite_pair,
    study_comparison,
)
from tests.analysis.hand import DIMS, GOLDEN, STUDY, raw_records, seed_means


@pytest.fixture(scope="module")
def golden():
    with pytest.warns(UserWarning):
        return load_records(GOLDEN)


def _ok(path):
    return [r for r in raw_records(path) if r["status"] == "ok"]


def test_artifact_spread_and_source_share_match_hand_values(golden):
    table = averaging_artifact(golden)
    means = seed_means(raw_records(GOLDEN))[("wanda", "unstructured", 0.7)]
    rows = table[(table["method"] == "wanda") & (table["sparsity"] == 0.7)].set_index("dimension")
    assert list(rows.index) == [*DIMS, "total"]
    for dimension in (*DIMS, "total"):
        by_source = {s: v[dimension] for s, v in means.items()}
        low, high = min(by_source, key=by_source.get), max(by_source, key=by_source.get)
        row = rows.loc[dimension]
        assert row["spread"] == pytest.approx(by_source[high] - by_source[low], abs=1e-12)
        assert (row["min_source"], row["max_source"]) == (low, high)
        # eta squared by hand over the 18 trials (6 sources x 3 seeds)
        trials = [
            (
                next(iter(r["mix"])),
                r["retention"][dimension] if dimension != "total" else r["total_retention"],
            )
            for r in _ok(GOLDEN)
            if r["method"] == "wanda"
            and r["sparsity"] == 0.7
            and r["phase"] == "grid"
            and len(r["mix"]) == 1
        ]
        values = np.array([v for _, v in trials])
        grand = values.mean()
        between = sum(
            len(vs) * (np.mean(vs) - grand) ** 2
            for s in by_source
            for vs in [[v for src, v in trials if src == s]]
        )
        assert row["n_trials"] == 18 and row["n_sources"] == 6
        assert row["source_share"] == pytest.approx(
            between / ((values - grand) ** 2).sum(), rel=1e-12
        )
    # the averaged score moves less across sources than the per-dimension scores
    assert rows.loc["total", "spread"] < rows.loc[["code", "math"], "spread"].min()


def test_source_share_edge_cases():
    s = pd.Series(["a", "a", "b", "b"])
    assert source_variance_share(pd.Series([1.0, 1.0, 3.0, 3.0]), s) == 1.0
    assert source_variance_share(pd.Series([1.0, 3.0, 1.0, 3.0]), s) == 0.0
    assert np.isnan(source_variance_share(pd.Series([2.0] * 4), s))
    assert np.isnan(source_variance_share(pd.Series([1.0, 2.0]), pd.Series(["a", "a"])))
    assert np.isnan(source_variance_share(pd.Series([1.0, 2.0]), pd.Series(["a", "b"])))


def test_one_trial_per_source_has_no_variance_share(golden):
    once = golden.ok[golden.ok["seed"] == 0]
    table = averaging_artifact(once)
    wanda = table[table["method"] == "wanda"]
    assert wanda["source_share"].isna().all() and (wanda["spread"] > 0).all()


def test_mix_comparison_entries_and_values(golden):
    table = compare_mixes(golden)
    part = table[(table["method"] == "wanda") & (table["sparsity"] == 0.7)].set_index("entry")
    assert list(part.index) == [
        "uniform mix",
        "best single (total)",
        "best single (worst)",
        "reference (c4)",
        "mix: code_math",
        "searched best",
    ]
    ok = [r for r in _ok(GOLDEN) if r["method"] == "wanda" and r["sparsity"] == 0.7]
    uniform = [r for r in ok if r["mix_name"] == "uniform"]
    for d in DIMS:
        want = np.mean([r["retention"][d] for r in uniform])
        assert part.loc["uniform mix", f"retention.{d}"] == pytest.approx(want, abs=1e-12)
    assert part.loc["uniform mix", "n_trials"] == 3
    # Each value's range over the seeds stands beside its mean.
    for column in ("total_retention", "worst_retention", "retention.code"):
        values = [r[column] if "." not in column else r["retention"]["code"] for r in uniform]
        spread = part.loc["uniform mix", f"seed_range:{column}"]
        assert spread == pytest.approx(max(values) - min(values), abs=1e-12) and spread > 0
    c4 = [r["total_retention"] for r in ok if r["mix"] == {"c4": 1.0} and r["phase"] == "grid"]
    assert part.loc["reference (c4)", "seed_range:total_retention"] == pytest.approx(
        max(c4) - min(c4), abs=1e-12
    )
    means = seed_means(raw_records(GOLDEN))[("wanda", "unstructured", 0.7)]
    best_total = max(means, key=lambda s: means[s]["total"])
    assert part.loc["best single (total)", "mix_name"] == best_total
    assert part.loc["best single (total)", "total_retention"] == pytest.approx(
        means[best_total]["total"], abs=1e-12
    )
    worst = {
        s: np.mean(
            [r["worst_retention"] for r in ok if r["mix"] == {s: 1.0} and r["phase"] == "grid"]
        )
        for s in means
    }
    assert part.loc["best single (worst)", "mix_name"] == max(worst, key=worst.get)
    assert part.loc["reference (c4)", "total_retention"] == pytest.approx(
        means["c4"]["total"], abs=1e-12
    )
    confirm = [r for r in ok if r["phase"] == "confirm"]
    assert part.loc["searched best", "phase"] == "confirm"
    assert part.loc["searched best", "n_trials"] == 2
    assert part.loc["searched best", "worst_retention"] == pytest.approx(
        np.mean([r["worst_retention"] for r in confirm]), abs=1e-12
    )
    assert (
        part.loc["searched best", "mix"]
        == "arc_corpus 0.40, codeparrot 0.30, metamath 0.20, c4 0.10"
    )
    # at 50 % there is no search: no searched row, and the reference can be turned off
    half = compare_mixes(golden, reference=None)
    half = half[(half["method"] == "wanda") & (half["sparsity"] == 0.5)]
    assert "searched best" not in set(half["entry"]) and "reference (c4)" not in set(half["entry"])


def test_searched_best_falls_back_to_the_best_search_trial(golden):
    trials = golden.ok[golden.ok["phase"] != "confirm"]
    table = compare_mixes(trials)
    row = table[table["entry"] == "searched best"].iloc[0]
    search = [r for r in _ok(GOLDEN) if r["phase"] == "search"]
    best = max(search, key=lambda r: r["worst_retention"])
    assert (row["phase"], row["mix_name"], row["n_trials"]) == ("search", best["mix_name"], 1)
    assert row["worst_retention"] == best["worst_retention"]
    assert np.isnan(row["seed_range:worst_retention"])  # one trial: no range


def _table(rhos: dict[str, dict[str, float]]) -> pd.DataFrame:
    rows = [
        {"metric": m, "dimension": d, "rho": r, "q_value": 0.01}
        for m, per in rhos.items()
        for d, r in per.items()
    ]
    return pd.DataFrame(rows)


def test_headline_names_the_strongest_opposite_sign_pair():
    table = _table(
        {
            "perplexity": {
                "general": 0.71,
                "commonsense": 0.2,
                "code": -0.59,
                "math": -0.53,
                "total": -0.9,
            },
            "ngram4": {"general": 0.95, "code": -0.1, "math": 0.3},  # weak negative side
            "entropy": {"general": 0.4, "code": 0.2},  # no opposite sign
        }
    )
    pair = strongest_opposite_pair(table)
    assert pair.sentence() == "perplexity: +0.71 with General, -0.59 with Code"
    assert pair.strength == pytest.approx(0.59)
    assert headline(table) == "perplexity: +0.71 with General, -0.59 with Code (q = 0.01 and 0.01)."
    same_sign = _table({"entropy": {"general": 0.4, "code": 0.2}})
    assert (
        headline(same_sign)
        == "no calibration metric correlates with opposite signs across dimensions."
    )
    empty = _table({"entropy": {"general": np.nan}})
    assert headline(empty) == "no correlation could be computed (see the notes)."


def test_study_numbers_are_set_beside_the_run():
    records = load_records(STUDY)
    corr = correlations(records, n_resamples=0).table
    mixes = compare_mixes(records)
    table = study_comparison(corr, mixes, source_means(records.ok))
    assert table["published"].tolist() == [p.value for p in PUBLISHED]
    assert table["published"].tolist() == [0.71, -0.53, -0.59, 0.588, 0.5, 0.4]
    ok = _ok(STUDY)
    for name, quantity in (("uniform", 3), ("metamath", 4), ("c4", 5)):
        want = np.mean([r["total_retention"] for r in ok if r["mix_name"] == name])
        assert table.loc[quantity, "run"] == pytest.approx(want, abs=1e-12)
    rho = corr.set_index("dimension").loc[["general", "math", "code"], "rho"].tolist()
    assert table.loc[:2, "run"].tolist() == pytest.approx(rho, abs=1e-12)
    assert table["run_match"].tolist()[:4] == ["metric perplexity"] * 3 + ["uniform mix"]
