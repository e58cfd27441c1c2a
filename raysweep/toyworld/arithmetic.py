"""Math: multi-digit arithmetic and word problems with worked solutions.

An exercise is identified by its operands and operator; a quarter of all exercises are held out
and never appear in a training-style text (neither bare nor as a step of a word problem).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from raysweep.toyworld._common import FIRST_NAMES, McItem, is_held_out, rng_for

_THINGS = (
    "apples",
    "marbles",
    "stamps",
    "books",
    "coins",
    "shells",
    "pencils",
    "cards",
    "eggs",
    "stickers",
)
_GAIN = ("buys {n} more", "finds {n} more", "is given {n} more", "collects {n} more")
_LOSS = ("gives {n} away", "loses {n}", "sells {n}", "uses {n}")


def _value(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def exercise_key(a: int, op: str, b: int) -> str:
    return f"math:{a}{op}{b}"


def _random_exercise(rng: random.Random) -> tuple[int, str, int]:
    op = rng.choice("++--*")
    if op == "*":
        return rng.randint(11, 99), op, rng.randint(2, 9)
    a, b = rng.randint(10, 999), rng.randint(10, 999) if rng.random() < 0.5 else rng.randint(10, 99)
    if op == "-" and b > a:
        a, b = b, a
    return a, op, b


def _training_exercise(rng: random.Random) -> tuple[int, str, int]:
    while True:
        a, op, b = _random_exercise(rng)
        if not is_held_out(exercise_key(a, op, b)):
            return a, op, b


def equations(seed: int) -> Iterator[str]:
    """Lines of solved exercises, ``347 + 285 = 632``."""
    rng = rng_for(seed, "math-equations")
    while True:
        lines = []
        for _ in range(rng.randint(6, 10)):
            a, op, b = _training_exercise(rng)
            lines.append(f"{a} {op} {b} = {_value(a, op, b)}")
        yield "\n".join(lines)


def _word_problem(rng: random.Random, held_out: bool) -> tuple[str, list[str], int]:
    """A two-step problem: (question, worked steps, answer); its steps are all in one split."""
    while True:
        name, thing = rng.choice(FIRST_NAMES), rng.choice(_THINGS)
        start = rng.randint(12, 99)
        first_op, second_op = rng.choice("+-"), rng.choice("+-")
        n1 = rng.randint(5, start - 5) if first_op == "-" else rng.randint(5, 99)
        mid = _value(start, first_op, n1)
        n2 = rng.randint(2, mid - 1) if second_op == "-" else rng.randint(5, 99)
        end = _value(mid, second_op, n2)
        keys = [exercise_key(start, first_op, n1), exercise_key(mid, second_op, n2)]
        # Training problems use only training exercises; a held-out problem ends in a held-out one.
        if (is_held_out(keys[1]) if held_out else any(is_held_out(k) for k in keys)) != held_out:
            continue
        step1 = rng.choice(_GAIN if first_op == "+" else _LOSS).format(n=n1)
        step2 = rng.choice(_GAIN if second_op == "+" else _LOSS).format(n=n2)
        question = f"{name} has {start} {thing}. {name} {step1}, then {step2}. How many {thing} does {name} have now?"
        steps = [f"{start} {first_op} {n1} = {mid}.", f"{mid} {second_op} {n2} = {end}."]
        return question, steps, end


def word_problems(seed: int) -> Iterator[str]:
    """GSM8K-style problems with worked solutions ending in ``The answer is N.``"""
    rng = rng_for(seed, "math-word")
    while True:
        parts = []
        for _ in range(rng.randint(2, 3)):
            question, steps, answer = _word_problem(rng, held_out=False)
            parts.append(f"Question: {question}\nAnswer: {' '.join(steps)} The answer is {answer}.")
        yield "\n\n".join(parts)


def qa(seed: int) -> Iterator[str]:
    """Short question/answer drills, ``Question: What is 347 + 285?`` / ``Answer: 632``."""
    rng = rng_for(seed, "math-qa")
    while True:
        parts = []
        for _ in range(rng.randint(3, 6)):
            a, op, b = _training_exercise(rng)
            parts.append(f"Question: What is {a} {op} {b}?\nAnswer: {_value(a, op, b)}")
        yield "\n\n".join(parts)


def instruct(seed: int) -> Iterator[str]:
    """Instruction/response pairs: compute an expression, or solve a word problem step by step."""
    rng = rng_for(seed, "math-instruct")
    while True:
        if rng.random() < 0.5:
            a, op, b = _training_exercise(rng)
            yield f"### Instruction:\nCompute {a} {op} {b}.\n\n### Response:\n{a} {op} {b} = {_value(a, op, b)}"
        else:
            question, steps, answer = _word_problem(rng, held_out=False)
            yield f"### Instruction:\nSolve step by step: {question}\n\n### Response:\n{' '.join(steps)} The answer is {answer}."


def _near_misses(rng: random.Random, answer: int) -> list[str]:
    deltas = [1, -1, 10, -10, 2, -2] + ([100, -100] if answer >= 100 else [])
    rng.shuffle(deltas)
    out: list[str] = []
    for d in deltas:
        if answer + d >= 0 and str(answer + d) not in out:
            out.append(str(answer + d))
        if len(out) == 3:
            break
    return out


def _mc(rng: random.Random, context: str, answer: int) -> McItem:
    choices = [str(answer), *_near_misses(rng, answer)]
    rng.shuffle(choices)
    return McItem(context, tuple(choices), choices.index(str(answer)))


def arithmetic_items(seed: int, count: int) -> list[McItem]:
    """Held-out exercises asked directly; distractors are off by 1, 2, 10 or 100 (chance 0.25)."""
    rng = rng_for(seed, "math-arith-task")
    items, seen = [], set()
    while len(items) < count:
        a, op, b = _random_exercise(rng)
        if not is_held_out(exercise_key(a, op, b)) or (a, op, b) in seen:
            continue
        seen.add((a, op, b))
        items.append(_mc(rng, f"Question: What is {a} {op} {b}?\nAnswer:", _value(a, op, b)))
    return items


def word_items(seed: int, count: int) -> list[McItem]:
    """Held-out word problems; the first step is worked, the model completes the second."""
    rng = rng_for(seed, "math-word-task")
    items = []
    while len(items) < count:
        question, steps, answer = _word_problem(rng, held_out=True)
        last = steps[1].rsplit("=", 1)[0].rstrip()
        items.append(_mc(rng, f"Question: {question}\nAnswer: {steps[0]} {last} =", answer))
    return items
