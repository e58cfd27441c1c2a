"""``python -m raysweep.evaluation MODEL --suite ...``: scores a saved model, writes JSON, and goes
through the dense-baseline cache only for a dense model."""

from __future__ import annotations

import json

import pytest
import yaml

from raysweep.config import EvaluationConfig, TrialConfig
from raysweep.evaluation import evaluate_capabilities
from raysweep.evaluation.__main__ import EVAL_FILE, main, suite_spec
from raysweep.prune import prune_point, recipe_card, save_pruned

FLAGS = ["--suite", "toy", "--limit", "3", "--no-perplexity"]


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory):
    trial = TrialConfig(mix={"toy_code_programs": 1.0}, mix_name="code", n_samples=8, seqlen=64,
                        method="wanda", sparsity=0.6,
                        evaluation=EvaluationConfig(suite="toy", limit=3, perplexity=False))  # fmt: skip
    pruned = prune_point(trial, log=lambda line: None)
    directory = tmp_path_factory.mktemp("pruned")
    save_pruned(pruned, directory, recipe_card(trial, pruned, total_s=1.0))
    # The embedded default sweep's batch size and context length, and the schema's random
    # items, as the CLI uses them; and lm-eval's first items, which --item-selection first asks.
    model, tokenizer = pruned.loaded.model, pruned.loaded.tokenizer
    in_sweep = evaluate_capabilities(model, tokenizer, "toy", limit=3, batch_size=32,
                                     max_length=256, item_selection="random")  # fmt: skip
    first = evaluate_capabilities(model, tokenizer, "toy", limit=3, batch_size=32, max_length=256)
    return directory, in_sweep, first


def test_scores_a_saved_model_as_the_in_sweep_evaluation_does(pruned_dir, capsys):
    directory, in_sweep, first = pruned_dir
    assert main([str(directory), *FLAGS]) == 0
    printed = capsys.readouterr().out
    assert "toy_code_output" in printed and f"scores written to {directory / EVAL_FILE}" in printed
    assert "(limit 3, random items, seed 0)" in printed
    result = json.loads((directory / EVAL_FILE).read_text())
    assert result["pruned"] is True and result["suite"] == "toy"
    assert result["evaluation"]["item_selection"] == "random"
    assert result["task_scores"] == in_sweep.task_scores
    assert result["dimension_scores"] == in_sweep.dimension_scores
    assert [t["name"] for t in result["tasks"]] == list(in_sweep.task_scores)
    assert result["evaluation"]["limit"] == 3 and result["dense_model"] == "raysweep-toy"
    assert "dense_cache" not in result  # a pruned model's scores are never cached
    out = directory / "first.json"
    assert main([str(directory), *FLAGS, "--item-selection", "first", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["task_scores"] == first.task_scores != in_sweep.task_scores


def test_dense_model_goes_through_the_dense_baseline_cache(pruned_dir, tmp_path, capsys):
    out = tmp_path / "dense.json"
    assert main(["raysweep-toy", *FLAGS, "--seed", "7", "--json", str(out)]) == 0
    first = json.loads(out.read_text())
    assert first["pruned"] is False and first["dense_cache"]["reused"] is False
    assert "items" not in first  # the cache entry keeps per-item values; this file does not
    assert main(["raysweep-toy", *FLAGS, "--seed", "7", "--json", str(out)]) == 0
    again = json.loads(out.read_text())
    assert again["dense_cache"] == {**first["dense_cache"], "reused": True}
    assert again["task_scores"] == first["task_scores"]
    assert "dense-baseline cache: reused" in capsys.readouterr().out
    # With the dense baseline of these settings cached, a pruned model's retention is shown.
    directory = pruned_dir[0]
    assert main([str(directory), *FLAGS, "--seed", "7", "--json", str(tmp_path / "p.json")]) == 0
    pruned = json.loads((tmp_path / "p.json").read_text())
    assert set(pruned["retention"]) == {"general", "commonsense", "code", "math"}
    assert "retention" in capsys.readouterr().out


def test_suite_file_forms(tmp_path):
    suite = {"name": "mine", "include_path": "tasks",
             "tasks": [{"name": "t", "dimension": "math", "chance": 0.25}]}  # fmt: skip
    (tmp_path / "tasks").mkdir()
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({"evaluation": {"suite": suite}}))
    for name in ("suite.yaml", "sweep.yaml"):
        spec = suite_spec(str(tmp_path / name))
        assert spec["include_path"] == str((tmp_path / "tasks").resolve())
    assert suite_spec("fast") == "fast"
    with pytest.raises(ValueError, match="neither a built-in suite"):
        suite_spec(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["raysweep-toy", "--suite", "nosuch"], "--suite: 'nosuch' is neither a built-in suite"),
        (["raysweep-toy", "--suite", "toy", "--limit", "0"],
         "--limit (evaluation.limit): Input should be greater than 0"),
        (["/no/such/model", "--suite", "toy"], "MODEL (model.path): '/no/such/model' does not exist"),
        (["raysweep-toy", "--suite", "toy", "--item-selection", "last"],
         "--item-selection (evaluation.item_selection): Input should be 'random' or 'first' "
         "(got 'last')"),
    ],
)  # fmt: skip
def test_bad_input_exits_2(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err, err
