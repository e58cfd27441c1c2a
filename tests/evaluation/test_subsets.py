"""Seeded random item subsets, and when the item selection is part of an evaluation's identity."""

from __future__ import annotations

import pytest

from raysweep.evaluation import get_suite
from raysweep.evaluation.subsets import cut_tasks, random_subset, selection_key


def test_a_subset_is_a_fixed_function_of_task_size_limit_and_seed() -> None:
    subset = random_subset("toy_math_word", 400, 8, 0)
    # Golden: the same items on every machine and Python version (SHA-256 ranks, no RNG).
    assert subset == [19, 48, 152, 163, 172, 240, 295, 383]
    assert random_subset("toy_math_word", 400, 8, 0) == subset
    assert subset == sorted(set(subset)) and all(0 <= i < 400 for i in subset)
    assert subset != list(range(8))  # not lm-eval's first items
    others = [
        random_subset("toy_math_word", 400, 8, 1),
        random_subset("toy_general_facts", 400, 8, 0),
        random_subset("toy_math_word", 401, 8, 0),
    ]
    assert all(o != subset and len(o) == 8 for o in others)


def test_a_smaller_limit_draws_inside_a_larger_one() -> None:
    small, large = random_subset("t", 1000, 60, 3), random_subset("t", 1000, 400, 3)
    assert len(small) == 60 and len(large) == 400 and set(small) < set(large)


@pytest.mark.parametrize("limit", [40, 41, 1000])
def test_a_limit_at_or_above_the_size_keeps_every_item(limit: int) -> None:
    assert random_subset("t", 40, limit, 0) == list(range(40))


def test_the_items_are_spread_over_the_task() -> None:
    # A sorted dataset's first 100 items are one corner of it; a random 100 covers every tenth.
    subset = random_subset("t", 1000, 100, 0)
    assert {i // 100 for i in subset} == set(range(10))


def test_nonsense_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="must be"):
        random_subset("t", 10, 0, 0)


def test_a_limit_cuts_a_task_below_its_declared_size_or_of_unknown_size() -> None:
    # The toy tasks declare their 400 items; the fast suite's tasks declare none.
    toy = get_suite("toy")
    assert cut_tasks(toy, None) == ()
    assert cut_tasks(toy, 400) == cut_tasks(toy, 1000) == ()
    assert cut_tasks(toy, 399) == toy.task_names
    fast = get_suite("fast")
    assert cut_tasks(fast, None) == tuple(t.name for t in fast.tasks if t.limit is not None)
    assert cut_tasks(fast, 1_000_000) == fast.task_names


def test_the_selection_is_in_the_key_only_where_random_items_are_drawn() -> None:
    assert selection_key("toy", 40, "random", 3) == {"item_selection": "random", "item_seed": 3}
    assert selection_key("toy", 40, "first", 3) == {}
    assert selection_key("toy", 400, "random", 3) == {}
    assert selection_key("toy", None, "random", 3) == {}
