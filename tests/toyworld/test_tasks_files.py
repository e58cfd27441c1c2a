"""ensure_toy_tasks writes byte-identical lm-eval task files, and lm-eval scores them offline."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from raysweep.toyworld import TOY_TASKS, ensure_toy_model, ensure_toy_tasks, task_items
from tests.lm_eval_cli import stock_cli_results


def _snapshot(root):
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def test_building_twice_gives_identical_files(tmp_path):
    first = _snapshot(ensure_toy_tasks(tmp_path / "tasks"))
    shutil.rmtree(tmp_path / "tasks")
    second = _snapshot(ensure_toy_tasks(tmp_path / "tasks"))
    assert first == second
    assert set(first) == {f"{t.name}.{ext}" for t in TOY_TASKS for ext in ("yaml", "jsonl")}
    other = _snapshot(ensure_toy_tasks(tmp_path / "elsewhere"))
    assert {k: v for k, v in other.items() if k.endswith(".jsonl")} == {
        k: v for k, v in first.items() if k.endswith(".jsonl")
    }


def test_yaml_points_at_absolute_jsonl_with_the_items(tmp_path):
    root = ensure_toy_tasks(tmp_path / "t")
    for task in TOY_TASKS:
        config = yaml.safe_load((root / f"{task.name}.yaml").read_text())
        assert config["task"] == task.name
        assert config["output_type"] == "multiple_choice"
        assert config["dataset_path"] == "json"
        data_file = config["dataset_kwargs"]["data_files"]["test"]
        assert data_file == str(root / f"{task.name}.jsonl") and data_file.startswith("/")
        rows = [json.loads(line) for line in (root / f"{task.name}.jsonl").read_text().splitlines()]
        assert [(r["context"], tuple(r["choices"]), r["label"]) for r in rows] == [
            (i.context, i.choices, i.label) for i in task_items(task.name)
        ]


def test_default_root_is_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("RAYSWEEP_CACHE_DIR", str(tmp_path))
    root = ensure_toy_tasks()
    assert root.parent == tmp_path / "toyworld" and root.name.startswith("tasks-")
    stamp = (root / "toy_code_output.jsonl").stat().st_mtime_ns
    assert ensure_toy_tasks() == root
    assert (root / "toy_code_output.jsonl").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_lm_eval_python_api_matches_the_in_process_scorer(tmp_path):
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raysweep.toyworld.mcscore import accuracy

    torch.set_num_threads(1)
    model_dir = ensure_toy_model()
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    root = ensure_toy_tasks(tmp_path / "tasks")
    limit = 24
    results = simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=32, max_length=256),
        tasks=[t.name for t in TOY_TASKS],
        task_manager=TaskManager(include_path=str(root), include_defaults=False),
        limit=limit,
        log_samples=False,
    )
    for task in TOY_TASKS:
        ours = accuracy(model, tokenizer, task_items(task.name)[:limit])
        assert results["results"][task.name]["acc,none"] == pytest.approx(ours, abs=1e-9), task.name


@pytest.mark.slow
def test_lm_eval_cli_matches_evaluate_capabilities(tmp_path):
    # The stock command line on the saved toy model vs the in-memory (shared-context) path.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raysweep.evaluation import evaluate_capabilities, get_suite
    from raysweep.evaluation.dimensions import ensure_task_files
    from raysweep.toyworld.tasks import TOY_TASK_TAG

    torch.set_num_threads(1)
    model_dir = ensure_toy_model()
    suite = get_suite("toy")
    ensure_task_files(suite)  # the CLI reads the files; nothing earlier in this process wrote them
    limit, max_length = 100, 512
    cli = stock_cli_results(model_dir, [TOY_TASK_TAG], suite.include_path, tmp_path,
                            limit=limit, max_length=max_length, seed=0, batch_size=8)["results"]  # fmt: skip

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ours = evaluate_capabilities(model, tokenizer, suite, limit=limit, max_length=max_length)
    assert set(ours.task_scores) == {t.name for t in TOY_TASKS}
    for task in TOY_TASKS:
        assert ours.task_scores[task.name] == pytest.approx(cli[task.name]["acc,none"], abs=1e-9)
