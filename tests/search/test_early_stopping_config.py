"""search.early_stopping and its rungs: bad input is a config error before any work."""

import copy
import subprocess
import sys

import pytest

from raysweep.config import ConfigError, apply_overrides, validate_config
from raysweep.evaluation.rungs import chunk_items, full_items, rung_sizes
from raysweep.evaluation.subsets import random_subset

BASE = {
    "calibration": {"sources": ["toy_math_word", "toy_code_programs"]},
    "evaluation": {"suite": "toy", "limit": 400, "item_selection": "random"},
}


def _validate(*overrides):
    return validate_config(apply_overrides(copy.deepcopy(BASE), list(overrides)))


def test_default_is_off_and_asha_validates():
    assert _validate("search={}").search.early_stopping == "none"
    s = _validate("search={early_stopping: asha, rungs: [40, 120]}").search
    assert (s.early_stopping, s.rungs, s.reduction_factor, s.grace_period) == (
        "asha", [40, 120], 3.0, 50
    )  # fmt: skip


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ("search={rungs: [50, 50]}", ["search.rungs", "strictly increasing", "(got [50, 50])"]),
        ("search={rungs: [0, 10]}", ["search.rungs", "positive", "(got [0, 10])"]),
        ("search={reduction_factor: 1}", ["search.reduction_factor", "greater than 1", "(got 1)"]),
        ("search={grace_period: 0}", ["search.grace_period", "greater than 0"]),
        ("search={early_stopping: fast}", ["search.early_stopping", "'asha' or 'hyperband'"]),
        (
            "search={early_stopping: asha, multi_objective: true}",
            ["search", "early_stopping 'asha' with multi_objective: true", "one objective"],
        ),
        (
            "search={early_stopping: asha, rungs: [50, 400]}",
            ["search.rungs", "[50, 400]", "below the full set's 400 items per task"],
        ),
        (
            "search={early_stopping: hyperband, limit: 100, item_selection: first}",
            ["search.item_selection", "'first'", "use item_selection: random"],
        ),
        (
            "search={early_stopping: asha, suite: fast}",
            ["search.suite", "'mmlu'", "few-shot", "zero-shot"],
        ),
        (
            "search={early_stopping: asha, suite: {tasks: [{name: t, dimension: math, "
            "metric: acc, num_fewshot: 0, chance: 0.2}]}}",
            [],  # valid: evaluation.limit bounds the undeclared task
        ),
    ],
)
def test_bad_early_stopping_names_field_value_and_allowed(override, needles):
    if not needles:
        _validate(override)
        return
    with pytest.raises(ConfigError) as info:
        _validate(override)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, msg


def test_unknown_full_set_asks_for_a_limit():
    tree = copy.deepcopy(BASE)
    tree["evaluation"]["limit"] = None
    suite = "{tasks: [{name: t, dimension: math, metric: acc, num_fewshot: 0, chance: 0.2}]}"
    with pytest.raises(ConfigError, match="search.limit: None with search.early_stopping"):
        validate_config(apply_overrides(tree, [f"search={{early_stopping: asha, suite: {suite}}}"]))


def test_cli_exits_2_before_any_work(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "raysweep.run", "--output", str(out),
         "search={early_stopping: asha, reduction_factor: 0.5}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "search.reduction_factor: Input should be greater than 1 (got 0.5)" in proc.stderr
    assert not out.exists()


def test_rung_sizes_follow_the_milestones_or_the_given_counts():
    assert rung_sizes(400, None, 50, 3.0) == (50, 150, 400)
    assert rung_sizes(450, None, 50, 3.0) == (50, 150, 450)
    assert rung_sizes(400, [20, 100], 50, 3.0) == (20, 100, 400)
    assert full_items("toy", 400) == 400
    assert full_items("toy", 10_000) == max(t.size for t in _toy_tasks())


def _toy_tasks():
    from raysweep.evaluation import get_suite

    return get_suite("toy").tasks


def test_chunks_partition_the_seeded_order_and_rebuild_each_prefix():
    chunks = [chunk_items("t", 97, a, b, 5) for a, b in [(0, 10), (10, 40), (40, 200)]]
    seen = [i for chunk in chunks for i in chunk]
    assert len(seen) == len(set(seen)) == 97  # every item once
    assert sorted(chunks[0] + chunks[1]) == random_subset("t", 97, 40, 5)
    assert chunk_items("t", 97, 97, 120, 5) == []


def test_the_plan_names_the_rungs():
    from raysweep.planning import search_plan

    cfg = _validate(
        "search={early_stopping: hyperband, sources: [toy_math_word, toy_code_programs]}"
    )
    assert search_plan(cfg).endswith(
        "; early stopping (hyperband): rungs at 50, 150, 400 items per task"
    )
    assert "early stopping" not in search_plan(
        _validate("search={sources: [toy_math_word, toy_code_programs]}")
    )
