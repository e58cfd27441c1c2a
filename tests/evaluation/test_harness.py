from __future__ import annotations

import ast
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from raysweep.evaluation import evaluate_capabilities, get_suite, validate_suite
from raysweep.evaluation.subsets import random_subset
from tests.evaluation.tiny_world import TinyWorld, tiny_suite
from tests.lm_eval_cli import stock_cli_results

REPO = Path(__file__).resolve().parents[2]
LIMIT, SEED, MAX_LENGTH, BATCH = 20, 1234, 128, 4


def _one_call_suite(world: TinyWorld) -> dict:
    """The tiny suite with every task at its YAML's shots: one lm-eval call per evaluation."""
    suite = tiny_suite(world.tasks_dir)
    for task in suite["tasks"]:
        task["num_fewshot"] = None
    return suite


def _evaluate(world: TinyWorld, model=None, suite=None):
    return evaluate_capabilities(
        model if model is not None else world.model,
        world.tokenizer,
        suite if suite is not None else _one_call_suite(world),
        limit=LIMIT,
        seed=SEED,
        max_length=MAX_LENGTH,
        batch_size=BATCH,
    )


@pytest.mark.slow
def test_in_process_matches_stock_cli(world: TinyWorld, tmp_path: Path) -> None:
    # Two lm-eval calls in-process (0-shot tasks, then the task at its YAML's 2 shots), one CLI run.
    suite = get_suite(tiny_suite(world.tasks_dir))
    ours = _evaluate(world, suite=suite)

    out = tmp_path / "cli"
    report = stock_cli_results(world.model_dir, suite.task_names, world.tasks_dir, out,
                               limit=LIMIT, max_length=MAX_LENGTH, seed=SEED, batch_size=BATCH,
                               timeout=300)  # fmt: skip
    cli = report["results"]

    assert set(ours.task_scores) == set(suite.task_names)
    for spec in suite.tasks:
        assert ours.task_scores[spec.name] == pytest.approx(
            cli[spec.name][spec.metric_key], abs=1e-6
        )
    # The shots really differ per task, as the YAMLs say.
    assert report["n-shot"]["rs_tiny_sums"] == 2


def _random(world: TinyWorld, suite, *, limit=LIMIT, item_seed=0, items=True):  # noqa: ANN001, ANN202
    return evaluate_capabilities(world.model, world.tokenizer, suite, limit=limit, seed=SEED,
                                 max_length=MAX_LENGTH, batch_size=BATCH, items=items,
                                 item_selection="random", item_seed=item_seed)  # fmt: skip


@pytest.mark.slow
def test_random_items_match_stock_cli_given_the_same_samples(
    world: TinyWorld, tmp_path: Path
) -> None:
    # lm-eval's own --samples, on the subsets raysweep draws: the same scores, few-shot included.
    suite = get_suite(tiny_suite(world.tasks_dir))
    ours = _random(world, suite, items=False)
    leaves = ["rs_tiny_facts", "rs_tiny_common", "rs_tiny_sums", "rs_tiny_code_add",
              "rs_tiny_code_mul"]  # fmt: skip
    samples = {name: random_subset(name, 40, LIMIT, 0) for name in leaves}
    report = stock_cli_results(world.model_dir, suite.task_names, world.tasks_dir, tmp_path,
                               samples=samples, max_length=MAX_LENGTH, seed=SEED,
                               batch_size=BATCH, timeout=300)  # fmt: skip
    for spec in suite.tasks:
        assert ours.task_scores[spec.name] == pytest.approx(
            report["results"][spec.name][spec.metric_key], abs=1e-6
        )
    first = _evaluate(world, suite=suite)
    assert ours.task_scores != first.task_scores  # other items, other scores


def test_random_items_are_a_seeded_subset_named_by_their_own_doc_ids(world: TinyWorld) -> None:
    suite = get_suite(tiny_suite(world.tasks_dir))  # two lm-eval calls: 0-shot, then 2-shot
    drawn = _random(world, suite)
    assert _random(world, suite) == drawn  # the same items and scores in every call
    first = evaluate_capabilities(world.model, world.tokenizer, suite, limit=LIMIT, seed=SEED,
                                  max_length=MAX_LENGTH, batch_size=BATCH, items=True)  # fmt: skip
    for name in ("rs_tiny_facts", "rs_tiny_common", "rs_tiny_sums"):
        assert drawn.items[name].doc_ids == tuple(random_subset(name, 40, LIMIT, 0))
        assert drawn.items[name].doc_ids != first.items[name].doc_ids == tuple(range(LIMIT))
    # A group draws per member, each member's doc_ids offset as for lm-eval's first items.
    add, mul = (random_subset(f"rs_tiny_code_{m}", 40, LIMIT, 0) for m in ("add", "mul"))
    assert drawn.items["rs_tiny_code"].doc_ids == (*add, *(1_000_000 + i for i in mul))
    # Each doc_id is the item's own index: its value is that item's value when every item is
    # scored (0-shot tasks: a few-shot context depends on the order items are drawn in).
    every = evaluate_capabilities(world.model, world.tokenizer, suite, seed=SEED,
                                  max_length=MAX_LENGTH, batch_size=BATCH, items=True)  # fmt: skip
    for name in ("rs_tiny_facts", "rs_tiny_common", "rs_tiny_code"):
        value_of = dict(zip(every.items[name].doc_ids, every.items[name].values, strict=True))
        assert drawn.items[name].values == tuple(value_of[i] for i in drawn.items[name].doc_ids)
    assert 0 < drawn.task_scores["rs_tiny_facts"] < 1  # values that could be wrong
    other = _random(world, suite, item_seed=1)
    assert other.items["rs_tiny_facts"].doc_ids != drawn.items["rs_tiny_facts"].doc_ids


@pytest.mark.parametrize("limit", [40, 100])
def test_random_items_where_the_limit_cuts_nothing_are_every_item(
    world: TinyWorld, limit: int
) -> None:
    suite = _one_call_suite(world)
    every = evaluate_capabilities(world.model, world.tokenizer, suite, limit=limit, seed=SEED,
                                  max_length=MAX_LENGTH, batch_size=BATCH, items=True)  # fmt: skip
    assert _random(world, suite, limit=limit) == every
    assert every.items["rs_tiny_facts"].doc_ids == tuple(range(40))


def test_a_declared_size_that_is_not_the_tasks_is_refused(world: TinyWorld) -> None:
    suite = _one_call_suite(world)
    suite["tasks"][0]["size"] = 41
    with pytest.raises(ValueError, match=r"task 'rs_tiny_facts' declares size 41 in the suite "
                       r"table but lm-eval evaluates 40 of its items"):  # fmt: skip
        _random(world, suite, limit=10)
    with pytest.raises(ValueError, match="item_selection must be 'random' or 'first'"):
        evaluate_capabilities(world.model, world.tokenizer, suite, item_selection="last")


def test_repeated_evaluation_is_deterministic_and_keeps_caller_rng(world: TinyWorld) -> None:
    random.seed(7)
    expected_next = random.random()
    random.seed(7)
    first = _evaluate(world)
    assert random.random() == expected_next  # lm-eval's seeding did not touch our stream
    second = _evaluate(world)
    assert first == second
    assert first.dimension_scores == {
        d: sum(first.task_scores[t.name] for t in ts) / len(ts)
        for d in ("general", "commonsense", "code", "math")
        for ts in [get_suite(_one_call_suite(world)).tasks_of(d)]
    }
    assert world.model.training is False


@pytest.mark.parametrize("shared_context", [True, False])
def test_items_average_to_each_task_score_group_included(
    world: TinyWorld, shared_context: bool
) -> None:
    suite = get_suite(tiny_suite(world.tasks_dir))  # two lm-eval calls: 0-shot, then 2-shot

    def run(items: bool, spec=suite):  # noqa: ANN001, ANN202
        return evaluate_capabilities(world.model, world.tokenizer, spec, limit=LIMIT, seed=SEED,
                                     max_length=MAX_LENGTH, batch_size=BATCH, items=items,
                                     shared_context=shared_context)  # fmt: skip

    plain, scored = run(False), run(True)
    assert plain.items is None and "items" not in plain.to_dict()
    assert scored.task_scores == plain.task_scores  # logging the samples changes no score
    assert set(scored.items) == set(suite.task_names)
    for name, items in scored.items.items():
        assert items.mean() == pytest.approx(scored.task_scores[name], abs=1e-12)
        assert set(items.values) <= {0.0, 1.0}, name
    assert 0 < scored.task_scores["rs_tiny_code"] < 1  # a mean that could be wrong
    for name in ("rs_tiny_facts", "rs_tiny_common", "rs_tiny_sums"):
        assert scored.items[name].doc_ids == tuple(range(LIMIT))
    # The group rs_tiny_code (weighted by size): its members' items, the second member's
    # doc_ids offset by the stride, each member's values its own.
    group = scored.items["rs_tiny_code"]
    assert group.doc_ids == tuple(range(LIMIT)) + tuple(1_000_000 + i for i in range(LIMIT))
    members = {"name": "m", "include_path": str(world.tasks_dir), "tasks": [
        {"name": n, "dimension": "code", "chance": 1 / 3}
        for n in ("rs_tiny_code_add", "rs_tiny_code_mul")]}  # fmt: skip
    alone = run(True, get_suite(members)).items
    assert group.values == alone["rs_tiny_code_add"].values + alone["rs_tiny_code_mul"].values
    assert alone["rs_tiny_code_add"].values != alone["rs_tiny_code_mul"].values


def test_a_group_not_weighted_by_size_has_no_items(
    world: TinyWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its score is the mean of its members' scores, which no mean of per-item values is when
    the members differ in size: left out of ``items``, with a warning."""
    import logging
    import shutil

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name in ("rs_tiny_code_add", "rs_tiny_facts"):
        shutil.copy(world.tasks_dir / f"{name}.yaml", tasks)
    rows = (world.tasks_dir / "rs_tiny_code_mul.test.jsonl").read_text().splitlines()[:7]
    (tasks / "small.jsonl").write_text("\n".join(rows) + "\n")
    mul = (world.tasks_dir / "rs_tiny_code_mul.yaml").read_text()
    mul = mul.replace(
        str(world.tasks_dir / "rs_tiny_code_mul.test.jsonl"), str(tasks / "small.jsonl")
    )
    (tasks / "rs_small_mul.yaml").write_text(
        mul.replace("task: rs_tiny_code_mul", "task: rs_small_mul")
    )
    (tasks / "rs_unweighted.yaml").write_text(
        "group: rs_unweighted\ntask:\n  - rs_tiny_code_add\n  - rs_small_mul\n"
        "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: false\n"
        "metadata:\n  version: 1.0\n"
    )
    suite = {"name": "u", "include_path": str(tasks), "tasks": [
        {"name": "rs_unweighted", "dimension": "code", "chance": 1 / 3},
        {"name": "rs_tiny_facts", "dimension": "general", "chance": 0.25}]}  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="raysweep.evaluation.harness"):
        scores = evaluate_capabilities(world.model, world.tokenizer, suite, limit=LIMIT,
                                       max_length=MAX_LENGTH, batch_size=BATCH, items=True)  # fmt: skip
    assert set(scores.items) == {"rs_tiny_facts"}
    assert "task 'rs_unweighted': no per-item values (27 items average" in caplog.text


def test_seed_changes_fewshot_examples(world: TinyWorld) -> None:
    """The few-shot sampler follows ``seed``: a sanity check that seeds reach lm-eval."""
    suite = tiny_suite(world.tasks_dir)
    suite["tasks"] = [t for t in suite["tasks"] if t["name"] == "rs_tiny_sums"]
    scores = {
        seed: evaluate_capabilities(
            world.model, world.tokenizer, suite, limit=40, seed=seed, max_length=MAX_LENGTH
        ).task_scores["rs_tiny_sums"]
        for seed in (0, 1)
    }
    assert scores[0] != scores[1], scores


def test_declared_code_execution_is_refused_before_any_work(world: TinyWorld) -> None:
    suite = tiny_suite(world.tasks_dir)
    suite["tasks"][0]["unsafe_code"] = True
    # model=None: the refusal must come before the model is touched.
    with pytest.raises(
        ValueError,
        match=r"contains tasks that execute model-written code \(rs_tiny_facts\).*"
        r"set `evaluation\.allow_code_execution: true` in the config",
    ):
        evaluate_capabilities(None, None, suite)
    with pytest.raises(ValueError, match="allow_code_execution: true"):
        evaluate_capabilities(None, None, "study")


def test_yaml_unsafe_task_is_detected_and_runs_only_when_allowed(world: TinyWorld) -> None:
    suite = {
        "name": "exec",
        "include_path": str(world.tasks_dir),
        "tasks": [{"name": "rs_tiny_exec", "dimension": "code", "chance": 0.25}],
    }
    with pytest.raises(ValueError, match=r"execute model-written code \(rs_tiny_exec\)"):
        evaluate_capabilities(world.model, world.tokenizer, suite, max_length=MAX_LENGTH)
    assert "HF_ALLOW_CODE_EVAL" not in os.environ
    # The task's process_docs raises unless HF_ALLOW_CODE_EVAL=1 while it loads.
    scores = evaluate_capabilities(
        world.model,
        world.tokenizer,
        suite,
        limit=8,
        max_length=MAX_LENGTH,
        allow_code_execution=True,
    )
    assert 0.0 <= scores.task_scores["rs_tiny_exec"] <= 1.0
    assert "HF_ALLOW_CODE_EVAL" not in os.environ  # set for that call only


def test_unknown_metric_is_a_clear_error(world: TinyWorld) -> None:
    suite = tiny_suite(world.tasks_dir)
    suite["tasks"][0]["metric"] = "f1"
    with pytest.raises(
        ValueError, match="task 'rs_tiny_facts' reports metrics acc, acc_norm, not 'f1'"
    ):
        validate_suite(suite)


@pytest.mark.slow
def test_unknown_task_lists_close_names_and_builtin_suites_resolve() -> None:
    typo = {"name": "t", "tasks": [{"name": "arc_esy", "dimension": "commonsense", "chance": 0.25}]}
    with pytest.raises(
        ValueError, match=r"unknown lm-eval task 'arc_esy' in suite 't'.*close names: arc_easy"
    ):
        validate_suite(typo)
    tag = {"name": "t", "tasks": [{"name": "ai2_arc", "dimension": "commonsense", "chance": 0.25}]}
    with pytest.raises(
        ValueError, match="'ai2_arc' is an lm-eval tag, which has no aggregate score"
    ):
        validate_suite(tag)
    # Every task and metric of the built-in suites exists in the installed lm-eval.
    assert validate_suite("study", allow_code_execution=True).name == "study"
    assert validate_suite("fast").name == "fast"


def test_only_harness_imports_lm_eval() -> None:
    offenders = []
    for path in (REPO / "raysweep").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "lm_eval" or n.startswith("lm_eval.") for n in names):
                offenders.append(str(path.relative_to(REPO)))
    assert sorted(set(offenders)) == ["raysweep/evaluation/harness.py"]
    # Config validation imports this package: keep it free of lm_eval and torch at import time.
    code = (
        "import sys, raysweep.evaluation; print('lm_eval' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_max_length_is_explicit_and_capped(world: TinyWorld) -> None:
    from transformers import LlamaConfig

    from raysweep.evaluation.harness import DEFAULT_MAX_LENGTH_CAP, resolve_max_length

    class _Model:
        config = LlamaConfig(max_position_embeddings=131072)

    assert resolve_max_length(_Model(), world.tokenizer, None) == DEFAULT_MAX_LENGTH_CAP == 4096
    assert resolve_max_length(world.model, world.tokenizer, None) == 256
    assert resolve_max_length(world.model, world.tokenizer, 64) == 64
    with pytest.raises(ValueError, match="max_length must be positive"):
        resolve_max_length(world.model, world.tokenizer, 0)


def test_tasks_are_grouped_by_effective_limit_and_shots() -> None:
    from dataclasses import replace

    from raysweep.evaluation.harness import _batches

    batches = _batches(get_suite("fast"), limit=100)
    names = {key: [t.name for t in specs] for key, specs in batches.items()}
    assert names[(20, 5, None)] == ["mmlu"]
    assert names[(100, 0, None)][:2] == ["boolq", "rte"] and "mathqa" in names[(100, 0, None)]
    assert names[(100, 5, None)] == [
        "mmlu_college_computer_science", "mmlu_high_school_computer_science"
    ]  # fmt: skip
    assert set(_batches(get_suite("fast"), limit=None)) == {
        (20, 5, None), (200, 0, None), (500, 0, None), (None, 5, None)
    }  # fmt: skip
    # A generation budget is set per lm-eval call, so tasks with another one go apart.
    study = get_suite("study")
    tasks = tuple(replace(t, max_gen_toks=512) if t.name == "humaneval" else t for t in study.tasks)
    keys = set(_batches(replace(study, tasks=tasks), limit=None))
    assert (None, 0, 512) in keys and (None, 0, None) in keys
