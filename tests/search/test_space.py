import math

import optuna
import pytest

from raysweep.search.space import baseline_points, define_by_run, param_name, weights_from_u


def test_weights_from_u_is_normalised_neg_log():
    w = weights_from_u({"a": math.exp(-1), "b": math.exp(-3)})
    assert w == pytest.approx({"a": 0.25, "b": 0.75})


def test_u_equal_one_gives_exact_zero_and_all_ones_is_uniform():
    assert weights_from_u({"a": 1.0, "b": 0.5, "c": 1.0}) == {"a": 0.0, "b": 1.0, "c": 0.0}
    assert weights_from_u({"a": 1.0, "b": 1.0}) == {"a": 0.5, "b": 0.5}


def test_small_weights_round_to_zero_and_renormalise():
    w = weights_from_u(
        {"a": math.exp(-10), "b": math.exp(-0.1), "c": math.exp(-10)}, min_weight=0.05
    )
    assert w == {"a": 0.5, "b": 0.0, "c": 0.5}
    w = weights_from_u(
        {"a": math.exp(-1), "b": math.exp(-1), "c": math.exp(-0.05)}, min_weight=0.05
    )
    assert w["c"] == 0.0 and w["a"] == pytest.approx(0.5)


def test_baselines_are_uniform_then_each_single_source():
    pts = baseline_points(["x", "y", "z"])
    ws = [weights_from_u({s: p[param_name(s)] for s in "xyz"}) for p in pts]
    assert ws[0] == pytest.approx({"x": 1 / 3, "y": 1 / 3, "z": 1 / 3})
    assert ws[1:] == [{"x": 1.0, "y": 0.0, "z": 0.0}, {"x": 0.0, "y": 1.0, "z": 0.0},
                      {"x": 0.0, "y": 0.0, "z": 1.0}]  # fmt: skip


def test_define_by_run_only_suggests_and_stays_on_simplex():
    space = define_by_run(["a", "b", "c", "d"], min_weight=0.02)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(200):
        t = study.ask()
        w = space(t)["weights"]
        assert set(t.params) == {param_name(s) for s in "abcd"}
        assert sum(w.values()) == pytest.approx(1.0, abs=1e-12)
        assert all(v == 0.0 or v >= 0.02 for v in w.values())
        study.tell(t, 0.0)
