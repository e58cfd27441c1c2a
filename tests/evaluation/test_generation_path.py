"""``generate_until`` through raysweep's harness: the stock CLI's scores on the same items, the
task's own filters, per-item values and what generation produced (length, truncation)."""

from __future__ import annotations

import shutil

import pytest

from raysweep.evaluation import evaluate_capabilities
from tests.lm_eval_cli import stock_cli_results

GENERATIVE = ("toy_math_gen", "toy_code_gen", "toy_code_output_gen")
LIMIT, MAX_LENGTH = 24, 512


def _suite(root, math_metric="exact_match,strict-match", tasks=GENERATIVE):
    specs = {
        "toy_math_gen": {"dimension": "math", "metric": math_metric, "num_fewshot": 1},
        "toy_code_gen": {"dimension": "code", "metric": "pass@1,create_test", "unsafe_code": True},
        "toy_code_output_gen": {"dimension": "code", "metric": "exact_match,strip"},
    }
    return {"name": "gen", "include_path": str(root),
            "tasks": [{"name": n, "chance": 0.0, **specs[n]} for n in tasks]}  # fmt: skip


@pytest.fixture(scope="module")
def tasks_root(tmp_path_factory):
    from raysweep.toyworld.gentasks import ensure_generative_tasks

    return ensure_generative_tasks(tmp_path_factory.mktemp("gentasks"))


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """The toy model magnitude-pruned to 50 %, in memory and saved (for the stock CLI): it
    fails some items, and its strict and flexible math scores differ."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raysweep.pruning import prune_model
    from raysweep.toyworld import ensure_toy_model

    model = AutoModelForCausalLM.from_pretrained(ensure_toy_model()).eval()
    tokenizer = AutoTokenizer.from_pretrained(ensure_toy_model())
    prune_model(model, None, "magnitude", 0.5)
    saved = tmp_path_factory.mktemp("pruned")
    model.save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    return model, tokenizer, saved


@pytest.mark.slow
def test_generated_scores_equal_the_stock_cli_and_items_add_up(pruned, tasks_root, tmp_path):
    model, tokenizer, saved = pruned
    cli = stock_cli_results(saved, GENERATIVE, tasks_root, tmp_path, limit=LIMIT,
                            max_length=MAX_LENGTH, seed=0, batch_size=8,
                            unsafe_code=True)["results"]  # fmt: skip
    ours = evaluate_capabilities(model, tokenizer, _suite(tasks_root), limit=LIMIT, items=True,
                                 max_length=MAX_LENGTH, allow_code_execution=True)  # fmt: skip
    flexible = evaluate_capabilities(
        model, tokenizer, _suite(tasks_root, "exact_match,flexible-extract", ("toy_math_gen",)),
        limit=LIMIT, max_length=MAX_LENGTH,
    )  # fmt: skip
    assert ours.task_scores == {
        "toy_math_gen": cli["toy_math_gen"]["exact_match,strict-match"],
        "toy_code_gen": cli["toy_code_gen"]["pass@1,create_test"],
        "toy_code_output_gen": cli["toy_code_output_gen"]["exact_match,strip"],
    }
    assert (
        flexible.task_scores["toy_math_gen"] == cli["toy_math_gen"]["exact_match,flexible-extract"]
    )
    # Golden: the pruned model's answers; "The answer is" missing where only the last number
    # is right makes the strict filter score below the flexible one.
    assert ours.task_scores == {"toy_math_gen": 9 / 24, "toy_code_gen": 22 / 24,
                                "toy_code_output_gen": 19 / 24}  # fmt: skip
    assert flexible.task_scores["toy_math_gen"] == 10 / 24
    for task in GENERATIVE:
        items = ours.items[task]
        assert items.doc_ids == tuple(range(LIMIT))
        assert set(items.values) <= {0.0, 1.0} and items.mean() == ours.task_scores[task]


def test_generation_length_and_truncation_are_measured(pruned, tasks_root, tmp_path):
    from transformers import AutoModelForCausalLM

    from raysweep.toyworld import ensure_toy_model

    _, tokenizer, _ = pruned
    dense = AutoModelForCausalLM.from_pretrained(ensure_toy_model()).eval()
    suite = _suite(tasks_root, tasks=("toy_math_gen",))
    full = evaluate_capabilities(dense, tokenizer, suite, limit=8, max_length=MAX_LENGTH)
    stats = full.generation["toy_math_gen"]
    # Every worked answer ends with a blank line well within the budget of 40 tokens.
    assert stats.count == 8 and stats.truncated_share == 0.0 and 10 < stats.mean_tokens < 40
    # lm-eval's own HFLM scoring (shared_context=False) notes the same generations.
    stock = evaluate_capabilities(dense, tokenizer, suite, limit=8, max_length=MAX_LENGTH,
                                  shared_context=False)  # fmt: skip
    assert stock.generation == full.generation
    # The same task with a budget of 6 tokens: every answer is cut, at exactly 6 tokens.
    short = tmp_path / "short"
    shutil.copytree(tasks_root, short)
    yaml_file = short / "toy_math_gen.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("max_gen_toks: 40", "max_gen_toks: 6"))
    cut = evaluate_capabilities(dense, tokenizer, _suite(short, tasks=("toy_math_gen",)),
                                limit=8, max_length=MAX_LENGTH)  # fmt: skip
    assert cut.generation["toy_math_gen"].to_dict() == {
        "count": 8, "mean_tokens": 6.0, "truncated_share": 1.0
    }  # fmt: skip
    assert cut.task_scores["toy_math_gen"] == 0.0
    # The suite's max_gen_toks does what the task's own budget does.
    budget = _suite(tasks_root, tasks=("toy_math_gen",))
    budget["tasks"][0]["max_gen_toks"] = 6
    assert evaluate_capabilities(dense, tokenizer, budget, limit=8, max_length=MAX_LENGTH) == cut
    assert full.to_dict()["generation"]["toy_math_gen"]["count"] == 8


def test_generation_stats_survive_the_dense_cache_round_trip():
    from raysweep.evaluation import CapabilityScores, GenerationStats

    stats = GenerationStats.of([(10, False), (40, True), (25, False), (40, True)])
    assert stats == GenerationStats(count=4, mean_tokens=28.75, truncated_share=0.5)
    scores = CapabilityScores({"t": 0.5}, {"math": 0.5}, generation={"t": stats})
    assert CapabilityScores.from_dict(scores.to_dict()) == scores
    # Scores of log-likelihood suites, and entries cached before generation, have no key.
    plain = CapabilityScores({"t": 0.5}, {"math": 0.5})
    assert "generation" not in plain.to_dict()
    assert CapabilityScores.from_dict(plain.to_dict()).generation == {}


def test_a_budget_on_a_task_that_does_not_generate_is_refused(tasks_root):
    from raysweep.evaluation import validate_suite

    mc = {"name": "mc", "include_path": str(tasks_root),
          "tasks": [{"name": "toy_math_word", "dimension": "math", "chance": 0.25,
                     "max_gen_toks": 8}]}  # fmt: skip
    with pytest.raises(ValueError, match="'toy_math_word' sets max_gen_toks but does not generate"):
        validate_suite(mc)


def test_an_unset_budget_keeps_the_fingerprint_and_a_set_one_changes_it():
    from dataclasses import replace

    from raysweep.evaluation import get_suite

    study = get_suite("study")
    assert study.fingerprint() == "2c5bdb69e83f8d43"  # as before budgets existed
    tasks = tuple(replace(t, max_gen_toks=256) if t.name == "gsm8k" else t for t in study.tasks)
    assert replace(study, tasks=tasks).fingerprint() != study.fingerprint()
