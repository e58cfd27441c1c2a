"""raysweep.dense: the key, the node-local cache, and the sweep's copy (both on-disk layouts)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from raysweep.config import EvaluationConfig, ModelConfig, TrialConfig
from raysweep.dense import (
    DenseBaseline,
    dense_cache_key,
    dense_key,
    read_baseline,
    score_dense,
    sweep_baseline,
)
from raysweep.evaluation import CapabilityScores, evaluate_capabilities, get_suite
from tests.evaluation.tiny_world import TinyWorld, build_model, tiny_suite


def _suite(world: TinyWorld) -> dict:
    suite = tiny_suite(world.tasks_dir)
    for task in suite["tasks"]:
        task["num_fewshot"] = None  # one lm-eval call
    return suite


def test_dense_scores_are_computed_once_and_reused(
    world: TinyWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = ModelConfig(path="tiny/llama", revision="r1")
    ev = EvaluationConfig(suite=_suite(world), limit=20, seed=5, max_length=128, perplexity=False)
    node = tmp_path / "node"

    with caplog.at_level(logging.INFO, logger="raysweep.dense"):
        first = score_dense(world.model, world.tokenizer, spec, ev, cache_dir=node)
    assert "evaluated in" in caplog.text
    assert first.scores == evaluate_capabilities(
        world.model, world.tokenizer, ev.suite, limit=20, seed=5, max_length=128
    )
    assert first.key == dense_key(spec, ev)
    assert first.key.startswith("tiny_llama_r1_float32@r1--tiny--limit20--seed5--")
    entry = json.loads((node / f"{first.key}.json").read_text())
    assert entry["scores"] == first.scores.to_dict() and entry["key"] == first.key
    assert entry["suite"] == "tiny" and entry["eval_s"] > 0
    assert not list(node.glob(f".{first.key}.json.*"))  # no temporary file left

    # A different model under the same spec: a cache hit returns the stored dense scores without
    # evaluating (evaluating it would give different scores).
    other = build_model(len(world.tokenizer), seed=1)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="raysweep.dense"):
        second = score_dense(other, world.tokenizer, spec, ev, cache_dir=node)
    assert second == first
    assert "evaluated in" not in caplog.text and "reused from" in caplog.text
    assert (
        evaluate_capabilities(other, world.tokenizer, ev.suite, limit=20, seed=5, max_length=128)
        != first.scores
    )
    assert read_baseline(first.key, node) == first
    assert read_baseline("missing", node) is None


def test_cache_key_depends_on_every_field(world: TinyWorld) -> None:
    suite = get_suite(_suite(world))
    base = dense_cache_key("m", "r", suite, 20, 0)
    assert base == dense_cache_key("m", "r", suite, 20, 0)
    changed_suite = get_suite({**_suite(world), "tasks": _suite(world)["tasks"][:2]})
    variants = [
        dense_cache_key("m2", "r", suite, 20, 0),
        dense_cache_key("m", "r2", suite, 20, 0),
        dense_cache_key("m", "r", changed_suite, 20, 0),
        dense_cache_key("m", "r", suite, None, 0),
        dense_cache_key("m", "r", suite, 20, 1),
        dense_cache_key("m", "r", suite, 20, 0, max_length=64),
        dense_cache_key("m", "r", suite, 20, 0, perplexity=True),
    ]
    assert len({base, *variants}) == 8


def test_unreadable_cache_entry_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "k.json").write_text("{not json")
    assert read_baseline("k", tmp_path) is None
    (tmp_path / "k.json").write_text('["a list"]')
    assert read_baseline("k", tmp_path) is None


_SCORES = CapabilityScores(
    {"t": 0.5}, {"general": 0.9, "commonsense": 0.8, "code": 0.7, "math": 0.6}, {"toy": 12.0}
)


def _refuse(point: TrialConfig) -> DenseBaseline:
    raise AssertionError("the sweep's copy should have been read")


def test_sweep_copy_is_computed_once_then_read(tmp_path: Path, capsys) -> None:
    point = TrialConfig(mix={"toy_web": 1.0}, mix_name="toy_web")
    key = dense_key(point.model, point.evaluation)
    calls: list[TrialConfig] = []

    def compute(p: TrialConfig) -> DenseBaseline:
        calls.append(p)
        return DenseBaseline(key, _SCORES)

    first = sweep_baseline(point, tmp_path, compute)
    assert calls == [point] and first == DenseBaseline(key, _SCORES)
    assert json.loads((tmp_path / "dense" / f"{key}.json").read_text()) == first.to_dict()
    assert sweep_baseline(point, tmp_path, _refuse) == first
    assert f"reused {key}.json" in capsys.readouterr().out


def test_sweep_copy_of_the_older_flat_layout_still_loads(tmp_path: Path) -> None:
    point = TrialConfig(mix={"toy_web": 1.0}, mix_name="toy_web")
    key = dense_key(point.model, point.evaluation)
    # As a driver wrote it before the sweep's copy shared the cache's layout.
    flat = {"task_scores": _SCORES.task_scores, "dimension_scores": _SCORES.dimension_scores,
            "cache_key": key, "perplexity": _SCORES.perplexity}  # fmt: skip
    (tmp_path / "dense").mkdir()
    (tmp_path / "dense" / f"{key}.json").write_text(json.dumps(flat, indent=1))
    assert sweep_baseline(point, tmp_path, _refuse) == DenseBaseline(key, _SCORES)
    assert DenseBaseline.from_dict(DenseBaseline(key, _SCORES).to_dict()) == DenseBaseline(
        key, _SCORES
    )
