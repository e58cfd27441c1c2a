from __future__ import annotations

from pathlib import Path

import pytest

from raysweep.evaluation import DIMENSIONS, SUITES, Suite, TaskSpec, get_suite, suite_from_mapping


def test_builtin_suites_cover_every_dimension() -> None:
    assert set(SUITES) == {"study", "fast", "toy", "toy_generative"}
    for name in ("study", "fast"):
        suite = get_suite(name)
        assert suite.dimensions == DIMENSIONS
        assert suite.include_path is None


def test_study_suite_table() -> None:
    study = get_suite("study")
    by_name = {t.name: t for t in study.tasks}
    assert [t.name for t in study.tasks_of("commonsense")] == [
        "boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa", "piqa",
    ]  # fmt: skip
    assert (by_name["mmlu"].num_fewshot, by_name["mmlu"].metric_key) == (5, "acc,none")
    assert (by_name["gsm8k"].num_fewshot, by_name["gsm8k"].metric_key) == (
        5,
        "exact_match,strict-match",
    )
    assert by_name["humaneval"].metric_key == "pass@1,create_test"
    assert by_name["mbpp"].metric_key == "pass_at_1,none"
    assert study.unsafe_tasks == ("humaneval", "mbpp")
    assert study.chance("math") == 0.0
    assert study.chance("commonsense") == pytest.approx((0.5 * 4 + 0.25 * 4) / 8)


def test_fast_suite_is_loglikelihood_only_with_limits() -> None:
    fast = get_suite("fast")
    assert fast.unsafe_tasks == ()
    assert {t.name for t in fast.tasks} & {"gsm8k", "humaneval", "mbpp"} == set()
    limits = {t.name: t.limit for t in fast.tasks}
    assert limits["mmlu"] == 20 and limits["hellaswag"] == 200 and limits["mathqa"] == 500


def test_unknown_suite_lists_close_names() -> None:
    with pytest.raises(ValueError, match=r"unknown suite 'studdy'.*close names: study"):
        get_suite("studdy")


def test_user_suite_from_mapping(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    suite = suite_from_mapping(
        {
            "name": "mine",
            "include_path": "tasks",
            "tasks": [
                {"name": "arc_easy", "dimension": "Commonsense", "chance": 0.25},
                {"name": "gsm8k", "dimension": "math", "metric": "exact_match,strict-match",
                 "num_fewshot": 5, "chance": 0, "limit": 50},
            ],
        },
        base_dir=tmp_path,
    )  # fmt: skip
    assert suite.include_path == str((tmp_path / "tasks").resolve())
    assert suite.tasks == (
        TaskSpec("arc_easy", "commonsense", "acc", 0, 0.25),
        TaskSpec("gsm8k", "math", "exact_match,strict-match", 5, 0.0, limit=50),
    )
    assert suite.dimensions == ("commonsense", "math")
    assert get_suite(suite) is suite


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"tasks": []}, "tasks: List should have at least 1 item"),
        ({"tasks": [{"name": "x", "dimension": "math", "chance": 0}], "extra": 1}, "unknown key 'extra'; allowed: name, tasks, include_path"),
        ({"tasks": [{"name": "x", "dimension": "math", "chance": 0, "shots": 2}]}, r"unknown key 'tasks.0.shots'; allowed: name, dimension, metric"),
        ({"tasks": [{"name": "x", "dimension": "maths", "chance": 0}]}, "unknown dimension 'maths'"),
        ({"tasks": [{"name": "x", "dimension": "math"}]}, "tasks.0.chance is required"),
        ({"tasks": [{"name": "x", "dimension": "math", "chance": 1.0}]}, "tasks.0.chance: Input should be less than 1"),
        ({"tasks": [{"name": "x", "dimension": "math", "chance": 0}] * 2}, "lists tasks twice: x"),
        ({"include_path": "/no/such/dir", "tasks": [{"name": "x", "dimension": "math", "chance": 0}]},
         "is not a directory"),
    ],
)  # fmt: skip
def test_user_suite_errors(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        suite_from_mapping(spec)


def test_suite_requires_absolute_include_path() -> None:
    with pytest.raises(ValueError, match="include_path must be absolute"):
        Suite("s", (TaskSpec("x", "math", "acc", 0, 0.0),), include_path="rel/dir")


def test_fingerprint_tracks_the_task_table() -> None:
    a = Suite("s", (TaskSpec("x", "math", "acc", 0, 0.0),))
    b = Suite("s", (TaskSpec("x", "math", "acc", 0, 0.0, limit=10),))
    assert a.fingerprint() == Suite("s", (TaskSpec("x", "math", "acc", 0, 0.0),)).fingerprint()
    assert a.fingerprint() != b.fingerprint()


def test_dimensions_agree_with_the_config_schema() -> None:
    from raysweep.config import DIMENSIONS as CONFIG_DIMENSIONS

    assert DIMENSIONS == CONFIG_DIMENSIONS == ("general", "commonsense", "code", "math")
