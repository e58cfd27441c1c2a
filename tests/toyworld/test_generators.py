"""The toy-world generators are deterministic under a seed and keep evaluation items held out."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter

import pytest

from raysweep.toyworld import (
    TOY_SOURCES,
    TOY_TASKS,
    arithmetic,
    commonsense,
    general,
    programs,
    task_items,
)
from raysweep.toyworld.sources import shuffle_words, shuffled_words, training_texts, web


def _take(source, seed, n=4):
    return list(itertools.islice(source.texts(seed), n))


@pytest.mark.parametrize("source", TOY_SOURCES, ids=lambda s: s.name)
def test_source_same_seed_same_text_other_seed_other_text(source):
    first = _take(source, 3)
    assert first == _take(source, 3)
    assert first != _take(source, 4)
    assert all(isinstance(doc, str) and len(doc) > 20 for doc in first)


def test_source_table_shape():
    names = [s.name for s in TOY_SOURCES]
    assert len(names) >= 15 and len(set(names)) == len(names)
    assert all(n.startswith("toy_") for n in names)
    dims = {s.dimension for s in TOY_SOURCES}
    assert dims == {"general", "commonsense", "code", "math", None}
    controls = {s.name for s in TOY_SOURCES if s.dimension is None}
    assert {"toy_web", "toy_repetitive", "toy_shuffled_words", "toy_random_tokens"} <= controls


def test_shuffled_control_is_the_web_pages_with_only_word_order_changed():
    pages = list(itertools.islice(web(5), 30))
    shuffled = list(itertools.islice(shuffled_words(5), 30))
    for page, control in zip(pages, shuffled, strict=True):
        assert Counter(control.split()) == Counter(page.split())
        # Line breaks and indentation stay where they were.
        assert re.findall(r"\s+", control) == re.findall(r"\s+", page)
    assert sum(c != p for c, p in zip(shuffled, pages, strict=True)) >= 29
    # Leading and trailing whitespace: no empty "word" is shuffled into the middle.
    text = shuffle_words("  a b\n\n  c  ", random.Random(0))
    assert text.split() != ["a", "b", "c"]
    assert re.findall(r"\s+", text) == ["  ", " ", "\n\n  ", "  "]


def test_task_items_deterministic_and_well_formed():
    assert {t.dimension for t in TOY_TASKS} == {"general", "commonsense", "code", "math"}
    for task in TOY_TASKS:
        items = task_items(task.name)
        assert items == task_items(task.name)
        assert len(items) == 400  # per dimension: a standard error of at most 2.5 points
        assert len({i.context for i in items}) == len(items), task.name
        for item in items:
            assert len(item.choices) == round(1 / task.chance)
            assert len(set(item.choices)) == len(item.choices)
            assert 0 <= item.label < len(item.choices)
    # A different seed gives different items.
    assert general.fact_items(1, 50) != general.fact_items(0, 50)
    assert arithmetic.word_items(1, 50) != arithmetic.word_items(0, 50)
    assert programs.task_items(1, 50) != programs.task_items(0, 50)


def test_gold_answers_are_correct():
    for item in task_items("toy_code_output"):
        program = item.context.removesuffix("\n# Output:")
        assert programs.run_program(program) == item.choices[item.label]
    for item in task_items("toy_math_word"):
        expr = item.context.rsplit(": ", 1)[1].rsplit(". ", 1)[-1].removesuffix(" =")
        assert str(eval(expr)) == item.choices[item.label]  # noqa: S307
    countries = {c.name: c for c in general.world()}
    for item in task_items("toy_general_facts"):
        answer = item.choices[item.label]
        name = item.context.split("?")[0].split()[-1]
        assert answer in {countries[name].value(a) for a in general.ATTRIBUTES}


def test_keys_of_task_items_are_in_the_held_out_split():
    for item in task_items("toy_commonsense_materials"):
        (obj, action), *more = [
            (o, a)
            for o, m in commonsense.MATERIAL_OF.items()
            for a in commonsense.ACTIONS
            for phrase in (o, f"{m} {o}")
            if item.context.endswith(f" {a.format(o=phrase)}, and it")
        ]
        assert not more and not commonsense.told_in_training(obj, action)
    for item in task_items("toy_math_word"):
        question = item.context.removeprefix("Question: ").split("\nAnswer:")[0]
        assert arithmetic.is_held_out(f"math:{question}")
    for item in task_items("toy_code_output"):
        assert programs.is_held_out(f"code:{item.context.removesuffix(chr(10) + '# Output:')}")
    for item in task_items("toy_general_facts"):
        name = item.context.split("?")[0].split()[-1]
        country = next(c for c in general.world() if c.name == name)
        attribute = next(
            a for a, q in general.QUESTIONS.items() if q.format(c=name) in item.context
        )
        assert not general.asked_in_training(country, attribute)


def test_no_task_item_appears_in_the_training_text():
    # The first 20k documents of the exact stream the model was trained on.
    corpus = "\x00".join(itertools.islice(training_texts(1234), 20_000))
    for task in TOY_TASKS:
        for item in task_items(task.name):
            assert f"{item.context} {item.choices[item.label]}" not in corpus, (
                task.name,
                item.context,
            )
