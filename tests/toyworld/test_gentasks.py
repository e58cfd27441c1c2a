"""The generative toy tasks: their files, their items and the offline pass@k they are scored by."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from raysweep.toyworld import TOY_TASKS
from raysweep.toyworld.gentasks import (
    GEN_TASKS,
    ensure_generative_tasks,
    gen_task_rows,
)


class _Loader(yaml.SafeLoader):
    """Reads lm-eval's ``!function`` tags as plain strings."""


_Loader.add_constructor("!function", lambda loader, node: f"!function {node.value}")


def _config(root, name):
    return yaml.load((root / f"{name}.yaml").read_text(), Loader=_Loader)


def _utils(root):
    import importlib.util

    spec = importlib.util.spec_from_file_location("toy_gen_utils", root / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_files_are_reproducible_and_hold_every_toy_task(tmp_path):
    root = ensure_generative_tasks(tmp_path / "a")
    first = {p.name: p.read_bytes() for p in root.iterdir()}
    shutil.rmtree(root)
    again = ensure_generative_tasks(tmp_path / "a")
    assert {p.name: p.read_bytes() for p in again.iterdir()} == first
    names = {t.name for t in (*TOY_TASKS, *GEN_TASKS)}
    assert {n for n in first if n.endswith(".yaml")} == {f"{n}.yaml" for n in names}
    assert "utils.py" in first and "toy_math_gen.train.jsonl" in first


def test_math_task_has_gsm8k_shape(tmp_path):
    root = ensure_generative_tasks(tmp_path / "t")
    cfg = _config(root, "toy_math_gen")
    assert cfg["output_type"] == "generate_until" and cfg["num_fewshot"] == 1
    assert cfg["fewshot_split"] == "train"
    assert [f["name"] for f in cfg["filter_list"]] == ["strict-match", "flexible-extract"]
    assert cfg["generation_kwargs"]["until"] == ["Question:", "</s>", "\n\n"]
    rows = [json.loads(line) for line in (root / "toy_math_gen.jsonl").read_text().splitlines()]
    assert rows == gen_task_rows("toy_math_gen") and len(rows) == 200
    # A worked solution ending in the marker, as the training text writes it.
    assert rows[0]["answer"].endswith(".") and " The answer is " in rows[0]["answer"]
    shots = (root / "toy_math_gen.train.jsonl").read_text().splitlines()
    test_questions = {r["question"] for r in rows}
    assert not test_questions & {json.loads(line)["question"] for line in shots}


def test_code_task_has_humaneval_shape(tmp_path):
    root = ensure_generative_tasks(tmp_path / "t")
    cfg = _config(root, "toy_code_gen")
    assert cfg["unsafe_code"] is True and cfg["output_type"] == "generate_until"
    assert cfg["metric_list"][0]["metric"] == "!function utils.pass_at_k"
    assert cfg["filter_list"][0]["name"] == "create_test"
    rows = gen_task_rows("toy_code_gen")
    assert len(rows) == 150 and len({r["prompt"] for r in rows}) == 150
    assert rows[0]["prompt"].startswith(f'def {rows[0]["entry_point"]}(n):\n    """')


def test_pass_at_k_runs_tests_only_when_allowed(tmp_path, monkeypatch):
    utils = _utils(ensure_generative_tasks(tmp_path / "t"))
    row = gen_task_rows("toy_code_gen")[0]
    test = f"{row['test']}\ncheck({row['entry_point']})"
    right = row["prompt"] + row["canonical_solution"]
    wrong = row["prompt"] + "\n    return n"
    monkeypatch.delenv("HF_ALLOW_CODE_EVAL", raising=False)
    with pytest.raises(ValueError, match="set HF_ALLOW_CODE_EVAL=1"):
        utils.pass_at_k([test], [[right]], k=[1])
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    assert utils.pass_at_k([test], [[right]], k=[1]) == {"pass@1": 1.0}
    assert utils.pass_at_k([test], [[wrong]], k=[1]) == {"pass@1": 0.0}
    assert utils.pass_at_k([test], [[wrong, right]], k=[1, 2]) == {"pass@1": 0.5, "pass@2": 1.0}
    assert not utils.passes("while True:\n    pass", "", timeout=0.5)


def test_code_output_task_targets_the_printed_line(tmp_path):
    from raysweep.toyworld.programs import run_program

    root = ensure_generative_tasks(tmp_path / "t")
    assert _config(root, "toy_code_output_gen")["filter_list"][0]["name"] == "strip"
    rows = gen_task_rows("toy_code_output_gen")
    assert len(rows) == 200
    assert all(run_program(r["program"]) == r["output"] for r in rows[:50])
