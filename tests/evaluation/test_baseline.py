from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from raysweep.evaluation import (
    dense_baseline,
    dense_cache_key,
    evaluate_capabilities,
    get_suite,
    load_dense_baseline,
)
from tests.evaluation.tiny_world import TinyWorld, build_model, tiny_suite


def _suite(world: TinyWorld) -> dict:
    suite = tiny_suite(world.tasks_dir)
    for task in suite["tasks"]:
        task["num_fewshot"] = None  # one lm-eval call
    return suite


def test_dense_baseline_is_computed_once_and_reused(
    world: TinyWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    suite = _suite(world)
    common = dict(model_id="tiny/llama", revision="r1", limit=20, seed=5)
    where = dict(cache_dir=tmp_path / "node", mirror_dirs=[tmp_path / "shared"], max_length=128)

    with caplog.at_level(logging.INFO, logger="raysweep.evaluation.baseline"):
        first, key = dense_baseline(world.model, world.tokenizer, suite, **common, **where)
    assert "evaluated in" in caplog.text
    assert first == evaluate_capabilities(
        world.model, world.tokenizer, suite, limit=20, seed=5, max_length=128
    )
    assert key.startswith("tiny_llama@r1--tiny--limit20--seed5--")
    for directory in ("node", "shared"):
        entry = json.loads((tmp_path / directory / f"{key}.json").read_text())
        assert entry["scores"] == first.to_dict() and entry["key"] == key
    assert not list((tmp_path / "node").glob(f".{key}.json.*"))  # no temporary file left

    # A different model under the same id: a cache hit returns the stored dense scores without
    # evaluating (evaluating it would give different scores).
    other = build_model(len(world.tokenizer), seed=1)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="raysweep.evaluation.baseline"):
        second, key2 = dense_baseline(other, world.tokenizer, suite, **common, **where)
        third, key3 = dense_baseline(
            other, world.tokenizer, suite, **common, cache_dir=tmp_path / "fresh",
            mirror_dirs=[tmp_path / "shared"], max_length=128,
        )  # fmt: skip
    assert (second, key2) == (first, key) and (third, key3) == (first, key)
    assert "evaluated in" not in caplog.text
    assert caplog.text.count("reused from") == 2
    assert (
        evaluate_capabilities(other, world.tokenizer, suite, limit=20, seed=5, max_length=128)
        != first
    )
    assert load_dense_baseline(key, tmp_path / "node") == first
    assert load_dense_baseline("missing", tmp_path / "node") is None


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
    ]
    assert len({base, *variants}) == 7


def test_unreadable_cache_entry_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "k.json").write_text("{not json")
    assert load_dense_baseline("k", tmp_path) is None
