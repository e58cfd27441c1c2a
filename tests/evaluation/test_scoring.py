from __future__ import annotations

import pytest

from raysweep.evaluation import CapabilityScores, Suite, TaskSpec, dimension_scores, score_retention

SUITE = Suite(
    "golden",
    (
        TaskSpec("g", "general", "acc", 5, 0.25),
        TaskSpec("c1", "commonsense", "acc", 0, 0.5),
        TaskSpec("c2", "commonsense", "acc_norm", 0, 0.25),
        TaskSpec("m", "math", "exact_match,strict-match", 5, 0.0),
        TaskSpec("k", "code", "pass@1,create_test", 0, 0.0, unsafe_code=True),
    ),
)


def scores(**tasks: float) -> CapabilityScores:
    return CapabilityScores(dict(tasks), dimension_scores(tasks, SUITE))


def test_dimension_score_is_unweighted_task_mean() -> None:
    s = scores(g=0.6, c1=0.8, c2=0.6, m=0.0, k=0.2)
    assert s.dimension_scores == pytest.approx(
        {"general": 0.6, "commonsense": 0.7, "math": 0.0, "code": 0.2}
    )
    assert list(s.dimension_scores) == ["general", "commonsense", "code", "math"]


def test_golden_retention_with_dense_at_chance() -> None:
    dense = scores(g=0.6, c1=0.8, c2=0.6, m=0.0, k=0.2)
    pruned = scores(g=0.45, c1=0.5, c2=0.4, m=0.0, k=0.05)
    r = score_retention(pruned, dense, SUITE)
    assert r.undefined == ("math",)
    assert r.retention["math"] is None and r.retention_above_chance["math"] is None
    assert r.retention["general"] == pytest.approx(0.75)
    assert r.retention["commonsense"] == pytest.approx(0.45 / 0.7)
    assert r.retention["code"] == pytest.approx(0.25)
    # chance: general 0.25, commonsense (0.5 + 0.25) / 2 = 0.375, code 0
    assert r.retention_above_chance["general"] == pytest.approx(0.2 / 0.35)
    assert r.retention_above_chance["commonsense"] == pytest.approx(0.075 / 0.325)
    assert r.retention_above_chance["code"] == pytest.approx(0.25)
    assert r.total_retention == pytest.approx((0.75 + 0.45 / 0.7 + 0.25) / 3)
    assert r.worst_retention == pytest.approx(0.25)


def test_dense_below_chance_is_undefined_not_a_blowup() -> None:
    dense = scores(g=0.2, c1=0.5, c2=0.2, m=0.1, k=0.3)  # general < 0.25, commonsense 0.35 < 0.375
    pruned = scores(g=0.3, c1=0.6, c2=0.3, m=0.2, k=0.3)
    r = score_retention(pruned, dense, SUITE)
    assert r.undefined == ("general", "commonsense")
    assert r.retention == pytest.approx(
        {"general": None, "commonsense": None, "code": 1.0, "math": 2.0}
    )
    assert r.total_retention == pytest.approx(1.5)
    assert r.worst_retention == pytest.approx(1.0)


def test_pruned_below_chance_gives_negative_retention_above_chance() -> None:
    dense = scores(g=0.75, c1=0.9, c2=0.8, m=0.5, k=0.5)
    pruned = scores(g=0.15, c1=0.9, c2=0.8, m=0.5, k=0.5)
    r = score_retention(pruned, dense, SUITE)
    assert r.retention["general"] == pytest.approx(0.2)
    assert r.retention_above_chance["general"] == pytest.approx(-0.2)
    assert r.worst_retention == pytest.approx(0.2)


def test_all_dimensions_undefined() -> None:
    zero = scores(g=0.0, c1=0.0, c2=0.0, m=0.0, k=0.0)
    r = score_retention(zero, zero, SUITE)
    assert r.undefined == ("general", "commonsense", "code", "math")
    assert (r.total_retention, r.worst_retention) == (None, None)


def test_missing_task_score_is_an_error() -> None:
    with pytest.raises(KeyError, match=r"no score for task\(s\) k of suite 'golden'"):
        dimension_scores({"g": 1, "c1": 1, "c2": 1, "m": 1}, SUITE)


def test_scores_round_trip() -> None:
    s = CapabilityScores({"g": 0.5}, {"general": 0.5}, {"toy": 12.5})
    assert CapabilityScores.from_dict(s.to_dict()) == s
