"""The ``toy_generative`` suite: its table, and the code-execution gate over its code task."""

from __future__ import annotations

import os

import pytest

from raysweep.evaluation import evaluate_capabilities, get_suite, validate_suite
from raysweep.toyworld import TOY_TASKS

GENERATIVE = ("toy_math_gen", "toy_code_gen", "toy_code_output_gen")


@pytest.fixture(scope="module")
def toy():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raysweep.toyworld import ensure_toy_model

    path = ensure_toy_model()
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_suite_scores_math_and_code_both_ways_and_leaves_toy_alone():
    suite = get_suite("toy_generative")
    assert suite.task_names == (*(t.name for t in TOY_TASKS), *GENERATIVE)
    assert [t.name for t in suite.tasks_of("math")] == ["toy_math_word", "toy_math_gen"]
    assert [t.name for t in suite.tasks_of("code")] == [
        "toy_code_output", "toy_code_gen", "toy_code_output_gen"
    ]  # fmt: skip
    assert suite.unsafe_tasks == ("toy_code_gen",)
    metrics = {t.name: t.metric_key for t in suite.tasks}
    assert metrics["toy_math_gen"] == "exact_match,strict-match"
    assert metrics["toy_code_gen"] == "pass@1,create_test"
    assert metrics["toy_code_output_gen"] == "exact_match,strip"
    assert get_suite("toy").task_names == tuple(t.name for t in TOY_TASKS)


def test_sweep_is_refused_before_any_work_when_code_execution_is_off(tmp_path, capsys):
    from raysweep.run import main

    out = tmp_path / "run"
    assert main(["--output", str(out), "evaluation.suite=toy_generative"]) == 2
    err = capsys.readouterr().err.splitlines()
    named = [line for line in err if "toy_code_gen" in line]
    assert len(named) == 1 and "evaluation.allow_code_execution: true" in named[0]
    assert not out.exists()


def test_a_user_suite_naming_the_code_task_is_refused_from_its_yaml(tmp_path):
    from raysweep.toyworld.gentasks import ensure_generative_tasks

    root = ensure_generative_tasks(tmp_path / "tasks")
    # unsafe_code is not set here: the task's YAML declares it.
    mine = {"name": "mine", "include_path": str(root),
            "tasks": [{"name": "toy_code_gen", "dimension": "code", "chance": 0.0,
                       "metric": "pass@1,create_test"}]}  # fmt: skip
    with pytest.raises(ValueError, match=r"execute model-written code \(toy_code_gen\)"):
        validate_suite(mine, allow_code_execution=False)
    assert validate_suite(mine, allow_code_execution=True).name == "mine"


def test_code_task_runs_its_tests_only_when_allowed(toy, tmp_path):
    from raysweep.toyworld.gentasks import ensure_generative_tasks

    model, tokenizer = toy
    # model=None: the refusal comes before the model is touched.
    with pytest.raises(ValueError, match=r"execute model-written code \(toy_code_gen\)"):
        evaluate_capabilities(None, None, "toy_generative")
    assert "HF_ALLOW_CODE_EVAL" not in os.environ
    only_code = {"name": "code", "include_path": str(ensure_generative_tasks(tmp_path / "t")),
                 "tasks": [{"name": "toy_code_gen", "dimension": "code", "chance": 0.0,
                            "metric": "pass@1,create_test", "unsafe_code": True}]}  # fmt: skip
    scores = evaluate_capabilities(model, tokenizer, only_code, limit=12, max_length=512,
                                   allow_code_execution=True)  # fmt: skip
    assert scores.task_scores == {"toy_code_gen": 1.0}
    assert "HF_ALLOW_CODE_EVAL" not in os.environ  # set for that call only
