"""Evaluation in rungs: chunks of a seeded item order add up to the one-shot evaluation."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from raysweep.evaluation import evaluate_capabilities, get_suite, score_retention
from raysweep.evaluation.harness import evaluate_chunk
from raysweep.evaluation.rungs import merge, rung_scores
from tests.evaluation.tiny_world import TinyWorld, tiny_suite

SEED, ITEM_SEED, MAX_LENGTH, BATCH = 1234, 3, 128, 4
RUNGS = (4, 9, 16)  # the last is the full set: limit 16


def _zero_shot(world: TinyWorld):
    suite = tiny_suite(world.tasks_dir)
    for task in suite["tasks"]:
        task["num_fewshot"] = 0
    return get_suite(suite)


def _direct(model, world: TinyWorld, suite, limit: int):  # noqa: ANN001, ANN202
    return evaluate_capabilities(model, world.tokenizer, suite, limit=limit, seed=SEED,
                                 max_length=MAX_LENGTH, batch_size=BATCH, items=True,
                                 item_selection="random", item_seed=ITEM_SEED)  # fmt: skip


def _chunk(model, world: TinyWorld, suite, start: int, stop: int):  # noqa: ANN001, ANN202
    return evaluate_chunk(model, world.tokenizer, suite, start=start, stop=stop, limit=RUNGS[-1],
                          item_seed=ITEM_SEED, seed=SEED, max_length=MAX_LENGTH,
                          batch_size=BATCH)  # fmt: skip


def _pruned(world: TinyWorld) -> torch.nn.Module:
    model = copy.deepcopy(world.model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embed" not in name and "lm_head" not in name:
                p.mul_(p.abs() > p.abs().flatten().median())
    return model


def test_each_rung_scores_as_a_direct_evaluation_of_its_first_items(world: TinyWorld) -> None:
    suite = _zero_shot(world)
    pruned = _pruned(world)
    dense_full = _direct(world.model, world, suite, RUNGS[-1])
    scored: dict = {}
    start = 0
    for k in RUNGS:
        scored = merge(scored, _chunk(pruned, world, suite, start, k))
        start = k
        assert len(scored["rs_tiny_facts"].values) == k  # of 40
        assert len(scored["rs_tiny_code"].values) == 2 * k  # a group: k of each member
        direct = _direct(pruned, world, suite, k)
        # The same items (the group's members numbered alike), the same per-item values.
        assert {t: (i.doc_ids, i.values) for t, i in scored.items()} == {
            t: (i.doc_ids, i.values) for t, i in direct.items.items()
        }
        rung, dense = rung_scores(scored, dense_full, suite)
        for task, score in direct.task_scores.items():
            assert math.isclose(rung.task_scores[task], score, abs_tol=1e-12), task
        # Retention against the dense model's own scores on the same first k items.
        expected = score_retention(direct, _direct(world.model, world, suite, k), suite)
        got = score_retention(rung, dense, suite)
        assert got.worst_retention == pytest.approx(expected.worst_retention, abs=1e-12)
        assert got.total_retention == pytest.approx(expected.total_retention, abs=1e-12)
    # The last rung is the full evaluation, and no item was scored twice (merge would refuse).
    full = _direct(pruned, world, suite, RUNGS[-1])
    assert rung.dimension_scores == pytest.approx(full.dimension_scores, abs=1e-12)
    assert sum(len(i.values) for i in scored.values()) == sum(
        len(i.values) for i in full.items.values()
    )


def test_a_chunk_past_every_task_is_empty_and_few_shot_is_refused(world: TinyWorld) -> None:
    suite = _zero_shot(world)
    assert _chunk(world.model, world, suite, RUNGS[-1], RUNGS[-1] + 5) == {}
    with pytest.raises(ValueError, match="few-shot"):
        evaluate_chunk(world.model, world.tokenizer, tiny_suite(world.tasks_dir), start=0,
                       stop=4, limit=16)  # fmt: skip
