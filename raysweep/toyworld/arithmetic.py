"""Math: small-number arithmetic and one- or two-step word problems with worked solutions.

Arithmetic facts (single digits, two digits plus or minus one digit, times tables) appear freely
in training text, as basic arithmetic does in any pre-training corpus; what is held out is whole
word problems: a quarter of all problem texts never appear in a training-style text, and the
math task asks for the last step of those.
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


def _random_exercise(rng: random.Random) -> tuple[int, str, int]:
    op = rng.choice("++--*")
    if op == "*":
        return rng.randint(2, 9), op, rng.randint(2, 9)
    a, b = (
        (rng.randint(1, 9), rng.randint(1, 9))
        if rng.random() < 0.5
        else (rng.randint(10, 49), rng.randint(1, 9))
    )
    if op == "-" and b > a:
        a, b = b, a
    return a, op, b


def equations(seed: int) -> Iterator[str]:
    """Lines of solved exercises, ``347 + 285 = 632``."""
    rng = rng_for(seed, "math-equations")
    while True:
        lines = []
        for _ in range(rng.randint(6, 10)):
            a, op, b = _random_exercise(rng)
            lines.append(f"{a} {op} {b} = {_value(a, op, b)}")
        yield "\n".join(lines)


def _word_problem(rng: random.Random, held_out: bool) -> tuple[str, list[str], int]:
    """A one- or two-step problem: (question, worked steps, answer), from the requested split."""
    while True:
        name, thing = rng.choice(FIRST_NAMES), rng.choice(_THINGS)
        value = rng.randint(2, 30)
        question = f"{name} has {value} {thing}."
        steps = []
        for _ in range(rng.randint(1, 2)):
            op = rng.choice("+-") if value > 2 else "+"
            n = rng.randint(1, min(9, value - 1)) if op == "-" else rng.randint(1, 9)
            verb = rng.choice(_GAIN if op == "+" else _LOSS).format(n=n)
            question += f" {name} {verb}."
            steps.append(f"{value} {op} {n} = {_value(value, op, n)}.")
            value = _value(value, op, n)
        question += f" How many {thing} does {name} have now?"
        if is_held_out(f"math:{question}") == held_out:
            return question, steps, value


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
            a, op, b = _random_exercise(rng)
            parts.append(f"Question: What is {a} {op} {b}?\nAnswer: {_value(a, op, b)}")
        yield "\n\n".join(parts)


def instruct(seed: int) -> Iterator[str]:
    """Instruction/response pairs: compute an expression, or solve a word problem step by step."""
    rng = rng_for(seed, "math-instruct")
    while True:
        if rng.random() < 0.5:
            a, op, b = _random_exercise(rng)
            yield f"### Instruction:\nCompute {a} {op} {b}.\n\n### Response:\n{a} {op} {b} = {_value(a, op, b)}"
        else:
            question, steps, answer = _word_problem(rng, held_out=False)
            yield f"### Instruction:\nSolve step by step: {question}\n\n### Response:\n{' '.join(steps)} The answer is {answer}."


def _near_misses(rng: random.Random, answer: int) -> list[str]:
    """One close miss (off by 1 or 2), one further (off by 3 to 5), one off by ten."""
    out: list[str] = []
    for deltas in ((1, -1, 2, -2), (3, -3, 4, -4, 5, -5), (10, -10)):
        options = [answer + d for d in deltas if answer + d >= 0 and str(answer + d) not in out]
        out.append(str(rng.choice(options)))
    return out


def _mc(rng: random.Random, context: str, answer: int) -> McItem:
    choices = [str(answer), *_near_misses(rng, answer)]
    rng.shuffle(choices)
    return McItem(context, tuple(choices), choices.index(str(answer)))


def word_items(seed: int, count: int) -> list[McItem]:
    """Held-out word problems; earlier steps are worked, the model completes the last one."""
    rng = rng_for(seed, "math-word-task")
    items, seen = [], set()
    while len(items) < count:
        question, steps, answer = _word_problem(rng, held_out=True)
        if question in seen:
            continue
        seen.add(question)
        last = steps[-1].rsplit("=", 1)[0].rstrip()
        worked = " ".join([*steps[:-1], last])
        items.append(_mc(rng, f"Question: {question}\nAnswer: {worked} =", answer))
    return items


def solved_problems(
    seed: int, count: int, *, held_out: bool, stream: str = "math-solved"
) -> list[tuple[str, str]]:
    """``count`` distinct word problems of one split, each with its whole worked solution as the
    training text writes it: ``(question, "2 + 6 = 8. 8 - 3 = 5. The answer is 5.")``."""
    rng = rng_for(seed, stream)
    out: dict[str, str] = {}
    while len(out) < count:
        question, steps, answer = _word_problem(rng, held_out=held_out)
        out.setdefault(question, f"{' '.join(steps)} The answer is {answer}.")
    return list(out.items())
