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
    write_baseline,
)
from raysweep.evaluation import CapabilityScores, TaskItems, evaluate_capabilities, get_suite
from raysweep.items import read_items
from tests.evaluation.tiny_world import TinyWorld, build_model, tiny_suite


def _suite(world: TinyWorld) -> dict:
    suite = tiny_suite(world.tasks_dir)
    for task in suite["tasks"]:
        task["num_fewshot"] = None  # one lm-eval call
    return suite


def _settings(world: TinyWorld, limit: int) -> tuple[ModelConfig, EvaluationConfig]:
    spec = ModelConfig(path="tiny/llama", revision="r1")
    ev = EvaluationConfig(suite=_suite(world), limit=limit, seed=5, max_length=128,
                          perplexity=False)  # fmt: skip
    return spec, ev


def test_dense_scores_are_computed_once_and_reused(
    world: TinyWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec, ev = _settings(world, 20)
    node = tmp_path / "node"

    with caplog.at_level(logging.INFO, logger="raysweep.dense"):
        first = score_dense(world.model, world.tokenizer, spec, ev, cache_dir=node)
    assert "evaluated in" in caplog.text
    # Evaluated with the per-item values, so that the entry serves a sweep as well.
    assert first.scores.items is not None
    # The schema's default: 20 of each task's 40 items at random (the tiny tasks declare no size).
    assert first.scores.without_items() == evaluate_capabilities(
        world.model, world.tokenizer, ev.suite, limit=20, seed=5, max_length=128,
        item_selection="random", item_seed=0,
    )  # fmt: skip
    assert first.key == dense_key(spec, ev)
    assert first.key.startswith("tiny_llama_r1_float32@r1--tiny--limit20-random0--seed5--")
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
    assert evaluate_capabilities(other, world.tokenizer, ev.suite, limit=20, seed=5,
                                 max_length=128, item_selection="random") != first.scores  # fmt: skip
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
    # The default is lm-eval's first items, the key every baseline had before there was a
    # choice; random subsets, per seed, are other baselines.
    assert dense_cache_key("m", "r", suite, 20, 0, item_selection="first", item_seed=3) == base
    randoms = {dense_cache_key("m", "r", suite, 20, 0, item_selection="random", item_seed=s)
               for s in (0, 1)}  # fmt: skip
    assert len(randoms) == 2 and base not in randoms
    assert dense_cache_key("m", "r", suite, 20, 0, item_selection="random").startswith(
        "m@r--tiny--limit20-random0--seed0--")  # fmt: skip
    # Without a limit, nothing is cut and the selection is no part of the key.
    assert dense_cache_key("m", "r", suite, None, 0, item_selection="random") == variants[3]


def test_a_limit_at_or_above_every_declared_size_leaves_the_key_as_it_was(world: TinyWorld) -> None:
    sized = _suite(world)
    for task in sized["tasks"]:
        task["size"] = 40  # each tiny task (and member of the group) has 40 test items
    spec = ModelConfig(path="tiny/llama", revision="r1")

    def key(limit: int, selection: str) -> str:
        return dense_key(spec, EvaluationConfig(suite=sized, limit=limit, item_selection=selection))

    assert key(40, "random") == key(40, "first")
    assert key(39, "random") != key(39, "first")
    assert "random" not in key(40, "random") and "-random0--" in key(39, "random")


def test_unreadable_cache_entry_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "k.json").write_text("{not json")
    assert read_baseline("k", tmp_path) is None
    (tmp_path / "k.json").write_text('["a list"]')
    assert read_baseline("k", tmp_path) is None


_SCORES = CapabilityScores(
    {"toy_general_facts": 0.5},
    {"general": 0.9, "commonsense": 0.8, "code": 0.7, "math": 0.6},
    {"toy": 12.0},
    items={"toy_general_facts": TaskItems((0, 1), (1.0, 0.0))},
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
    # Trials are handed the scores without the per-item values; the copy keeps them.
    assert calls == [point] and first == DenseBaseline(key, _SCORES.without_items())
    stored = json.loads((tmp_path / "dense" / f"{key}.json").read_text())
    assert stored == DenseBaseline(key, _SCORES).to_dict() and "items" in stored["scores"]
    side = read_items(tmp_path / "items" / f"dense-{key}.json")
    assert side == {"format": 1, "dense_key": key, "tasks": {"toy_general_facts": {
        "dimension": "general", "chance": 0.25, "metric": "acc", "doc_ids": [0, 1],
        "values": [1, 0]}}}  # fmt: skip
    (tmp_path / "items" / f"dense-{key}.json").unlink()  # a lost side file is written again
    assert sweep_baseline(point, tmp_path, _refuse) == first
    assert f"reused {key}.json" in capsys.readouterr().out
    assert read_items(tmp_path / "items" / f"dense-{key}.json") == side


def test_sweep_copy_of_the_older_flat_layout_still_loads(tmp_path: Path) -> None:
    point = TrialConfig(mix={"toy_web": 1.0}, mix_name="toy_web")
    key = dense_key(point.model, point.evaluation)
    old = _SCORES.without_items()
    # As a driver wrote it before the sweep's copy shared the cache's layout.
    flat = {"task_scores": old.task_scores, "dimension_scores": old.dimension_scores,
            "cache_key": key, "perplexity": old.perplexity}  # fmt: skip
    (tmp_path / "dense").mkdir()
    (tmp_path / "dense" / f"{key}.json").write_text(json.dumps(flat, indent=1))
    assert read_baseline(key, tmp_path / "dense") == DenseBaseline(key, old)
    assert DenseBaseline.from_dict(DenseBaseline(key, _SCORES).to_dict()) == DenseBaseline(
        key, _SCORES
    )


def test_a_sweep_copy_without_items_is_scored_again(tmp_path: Path, capsys) -> None:
    """A run from before per-item values were kept: its copy has scores only. The dense model
    is evaluated again for them; a score that changed on the way is named."""
    point = TrialConfig(mix={"toy_web": 1.0}, mix_name="toy_web")
    key = dense_key(point.model, point.evaluation)
    older = CapabilityScores({"toy_general_facts": 0.75}, _SCORES.dimension_scores)
    write_baseline(tmp_path / "dense", DenseBaseline(key, older))
    calls: list[TrialConfig] = []

    def compute(p: TrialConfig) -> DenseBaseline:
        calls.append(p)
        return DenseBaseline(key, _SCORES)

    assert sweep_baseline(point, tmp_path, compute) == DenseBaseline(key, _SCORES.without_items())
    out = capsys.readouterr()
    assert (
        calls == [point] and "has no per-item scores; evaluating the dense model again" in out.out
    )
    assert "toy_general_facts (0.7500 -> 0.5000)" in out.err
    assert read_baseline(key, tmp_path / "dense", items=True) == DenseBaseline(key, _SCORES)
    assert (tmp_path / "items" / f"dense-{key}.json").is_file()
    # A compute that brings no per-item values is refused: the side file would be missing.
    (tmp_path / "dense" / f"{key}.json").unlink()
    with pytest.raises(ValueError, match="computed without per-item values"):
        sweep_baseline(point, tmp_path, lambda p: DenseBaseline(key, older))


def test_a_cache_entry_without_items_is_reused_only_where_they_are_not_needed(
    world: TinyWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec, ev = _settings(world, 8)
    node = tmp_path / "node"
    key = dense_key(spec, ev)
    # Written by an older raysweep: scores only, and not these model's (to tell them apart).
    stale = CapabilityScores(dict.fromkeys(get_suite(ev.suite).task_names, 0.0),
                             dict.fromkeys(("general", "commonsense", "code", "math"), 0.0))  # fmt: skip
    write_baseline(node, DenseBaseline(key, stale))
    # The evaluation command needs no items: the entry is reused as it is.
    assert score_dense(world.model, world.tokenizer, spec, ev, cache_dir=node).scores == stale
    with caplog.at_level(logging.INFO, logger="raysweep.dense"):
        fresh = score_dense(world.model, world.tokenizer, spec, ev, cache_dir=node, items=True)
    assert (
        "has no per-item values: scoring it again" in caplog.text and "evaluated in" in caplog.text
    )
    assert fresh.scores.items is not None and set(fresh.scores.items) == set(
        fresh.scores.task_scores
    )
    for task, items in fresh.scores.items.items():
        assert items.mean() == pytest.approx(fresh.scores.task_scores[task], abs=1e-12)
    assert read_baseline(key, node, items=True) == fresh  # the entry now holds them
