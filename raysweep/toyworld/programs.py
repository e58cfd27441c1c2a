"""Code: small grammar-generated Python programs, each with the one line it prints.

Outputs are obtained by running the generated program (only text this module produced itself).
Wrong answers for the task come from running near-miss mutants of the same program (a literal
off by one, an operator or comparison flipped), so the model has to trace the program exactly.
Programs whose text hashes into the held-out split never appear in a training-style text.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import random
import re
from collections.abc import Callable, Iterator

from raysweep.toyworld._common import McItem, is_held_out, rng_for

_NAMES = ("a", "b", "c", "x", "y", "z", "n", "m", "k", "total", "count", "value", "size", "step")
_WORDS = ("cat", "dog", "sun", "map", "box", "tree", "red", "blue", "cup", "star", "fish", "hat")
_OPS = ("+", "-", "*")


def _copy(rng: random.Random) -> str:
    names = rng.sample(_NAMES, rng.randint(2, 4))
    lines = [f"{n} = {rng.randint(0, 9)}" for n in names]
    return "\n".join([*lines, f"print({rng.choice(names)})"])


def _arith(rng: random.Random) -> str:
    a, b, c = rng.sample(_NAMES, 3)
    lines = [f"{a} = {rng.randint(1, 9)}", f"{b} = {rng.randint(1, 9)}"]
    rng.shuffle(lines)
    right = b if rng.random() < 0.5 else str(rng.randint(1, 5))
    lines.append(f"{c} = {a} {rng.choice(_OPS)} {right}")
    return "\n".join([*lines, f"print({c})"])


def _lists(rng: random.Random) -> str:
    name = rng.choice(("xs", "nums", "items", "vals"))
    values = rng.sample(range(10), rng.randint(3, 5))
    head = f"{name} = {values}"
    kind = rng.randrange(3)
    if kind == 0:
        return f"{head}\nprint({name}[{rng.randrange(len(values))}])"
    if kind == 1:
        return f"{head}\nprint(len({name}))"
    return f"{head}\nprint({rng.choice(('max', 'min'))}({name}))"


def _strings(rng: random.Random) -> str:
    name = rng.choice(("s", "word", "text", "name"))
    word = rng.choice(_WORDS)
    kind = rng.randrange(4)
    head = f'{name} = "{word}"'
    if kind == 0:
        return f"{head}\nprint({name}.upper())"
    if kind == 1:
        return f'{head}\nprint({name} + "{rng.choice(_WORDS)}")'
    if kind == 2:
        return f"{head}\nprint(len({name}))"
    return f"{head}\nprint({name}[{rng.randrange(len(word))}])"


_FUNCTIONS = (
    ("double", "returns twice its argument", "return n * 2"),
    ("square", "returns its argument squared", "return n * n"),
    ("add_three", "adds three to its argument", "return n + 3"),
    ("minus_one", "subtracts one from its argument", "return n - 1"),
    ("triple", "returns three times its argument", "return n * 3"),
    (
        "half_up",
        "returns its argument plus one, halved with integer division",
        "return (n + 1) // 2",
    ),
)


def _function(rng: random.Random) -> str:
    fname, _, body = rng.choice(_FUNCTIONS)
    arg = rng.randint(1, 9)
    return f"def {fname}(n):\n    {body}\n\nprint({fname}({arg}))"


_FAMILIES: tuple[Callable[[random.Random], str], ...] = (_copy, _arith, _lists, _strings, _function)


def run_program(program: str) -> str | None:
    """What ``program`` prints (last line), or ``None`` if it fails; only for generated programs."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            exec(
                compile(program, "<toy>", "exec"),
                {
                    "__builtins__": {
                        "print": print,
                        "len": len,
                        "sum": sum,
                        "max": max,
                        "min": min,
                        "range": range,
                    }
                },
            )
    except Exception:
        return None
    lines = buffer.getvalue().strip().splitlines()
    return lines[-1] if lines else None


def random_program(rng: random.Random) -> str:
    return rng.choice(_FAMILIES)(rng)


def _training_program(
    rng: random.Random, weights: dict[Callable[[random.Random], str], float] | None = None
) -> tuple[str, str]:
    while True:
        if weights is None:
            program = random_program(rng)
        else:
            program = rng.choices(list(weights), list(weights.values()))[0](rng)
        output = run_program(program)
        # No line-suffix may be held out either: a held-out program must not appear inside a longer one.
        lines = program.split("\n")
        suffixes = ("\n".join(lines[i:]) for i in range(len(lines)))
        if output is not None and not any(is_held_out(f"code:{s}") for s in suffixes):
            return program, output


def _with_outputs(
    rng: random.Random, weights: dict[Callable[[random.Random], str], float] | None = None
) -> Iterator[str]:
    """Documents of 2-4 programs, each followed by its output as a comment."""
    while True:
        parts = [
            f"{p}\n# Output: {o}"
            for p, o in (_training_program(rng, weights) for _ in range(rng.randint(2, 4)))
        ]
        yield "\n\n".join(parts)


def programs(seed: int) -> Iterator[str]:
    """Several programs per document, each followed by its output as a comment."""
    return _with_outputs(rng_for(seed, "code-programs"))


# Pre-training only (never a calibration source): programs weighted towards the kinds that need
# tracing a binding (which variable is printed, which list element, which function body) rather
# than reading one string method, each followed by its output.
_DRILL_FAMILY_WEIGHTS = {_copy: 0.3, _arith: 0.25, _lists: 0.25, _function: 0.15, _strings: 0.05}


def drills(seed: int) -> Iterator[str]:
    """Training-only programs with outputs, weighted towards variable binding and indexing."""
    return _with_outputs(rng_for(seed, "code-drills"), _DRILL_FAMILY_WEIGHTS)


def source(seed: int) -> Iterator[str]:
    """Plain source code: programs and function definitions, no outputs."""
    rng = rng_for(seed, "code-source")
    while True:
        parts = []
        for _ in range(rng.randint(3, 5)):
            if rng.random() < 0.3:
                fname, doc, body = rng.choice(_FUNCTIONS)
                parts.append(f'def {fname}(n):\n    """{doc.capitalize()}."""\n    {body}')
            else:
                parts.append(_training_program(rng)[0])
        yield "\n\n\n".join(parts)


def qa(seed: int) -> Iterator[str]:
    """Question/answer pairs: what does this program print?"""
    rng = rng_for(seed, "code-qa")
    while True:
        parts = []
        for _ in range(rng.randint(2, 3)):
            program, output = _training_program(rng)
            parts.append(f"Question: What does this program print?\n{program}\nAnswer: {output}")
        yield "\n\n".join(parts)


def instruct(seed: int) -> Iterator[str]:
    """Instruction/response pairs: write a function, or run a program."""
    rng = rng_for(seed, "code-instruct")
    while True:
        if rng.random() < 0.4:
            fname, doc, body = rng.choice(_FUNCTIONS)
            yield f"### Instruction:\nWrite a Python function named {fname} that {doc}.\n\n### Response:\ndef {fname}(n):\n    {body}"
        else:
            program, output = _training_program(rng)
            yield f"### Instruction:\nRun this Python program and give its output.\n{program}\n\n### Response:\n{output}"


_LITERAL = re.compile(r"(?<![\w.])\d+(?![\w.])")
_SWAPS = {
    "+": "-",
    "-": "+",
    "*": "+",
    ">": "<",
    "<": ">",
    "==": "!=",
    ">=": "<",
    "upper": "lower",
    "max": "min",
    "min": "max",
    "len": "max",
}


def _mutants(rng: random.Random, program: str) -> Iterator[str]:
    """Near-miss variants of ``program``: one literal nudged, or one operator swapped."""
    literals = list(_LITERAL.finditer(program))
    ops = list(re.finditer(r"(?<=\s)(==|>=|[+\-*<>])(?=\s)|\b(upper|max|min|len)\b", program))
    while True:
        if literals and (not ops or rng.random() < 0.6):
            m = rng.choice(literals)
            value = max(0, int(m.group()) + rng.choice((-2, -1, 1, 2)))
            yield program[: m.start()] + str(value) + program[m.end() :]
        elif ops:
            m = rng.choice(ops)
            yield program[: m.start()] + _SWAPS[m.group()] + program[m.end() :]
        else:
            return


def _confusions(program: str) -> Iterator[str]:
    """The program printing another of its variables instead (a binding mistake)."""
    body, last = program.rsplit("\n", 1)
    if not last.startswith("print("):
        return
    for name in dict.fromkeys(re.findall(r"^\s*(\w+) = ", program, flags=re.M)):
        yield f"{body}\nprint({name})"


def _distractors(rng: random.Random, program: str, output: str) -> list[str] | None:
    wrong: list[str] = []
    if output.isalpha():
        # String results: slips in case or order of the same length (shorter strings would win on
        # total log-likelihood for reasons unrelated to the program).
        half = len(output) // 2
        slips = (
            output.lower(),
            output.upper(),
            output.capitalize(),
            output[::-1],
            output[half:] + output[:half],
        )
        wrong = [c for c in dict.fromkeys(slips) if c != output][:3]
        return wrong if len(wrong) == 3 else None
    candidates = itertools.chain(_confusions(program), itertools.islice(_mutants(rng, program), 60))
    for candidate in candidates:
        out = run_program(candidate)
        if out is not None and out != output and out not in wrong:
            wrong.append(out)
            if len(wrong) == 3:
                return wrong
    if output.lstrip("-").isdigit():
        for delta in rng.sample((-3, -2, -1, 1, 2, 3), 6):
            candidate = str(int(output) + delta)
            if candidate not in wrong:
                wrong.append(candidate)
            if len(wrong) == 3:
                return wrong
    return None


# The task's mix of program kinds, from easy (string methods) to hard (variable binding, arithmetic).
_TASK_FAMILY_WEIGHTS = {_strings: 0.35, _lists: 0.35, _copy: 0.1, _function: 0.1, _arith: 0.1}


def task_items(seed: int, count: int) -> list[McItem]:
    """Held-out programs: pick the printed line among outputs of near-miss programs (chance 0.25)."""
    rng = rng_for(seed, "code-task")
    families, weights = list(_TASK_FAMILY_WEIGHTS), list(_TASK_FAMILY_WEIGHTS.values())
    items: list[McItem] = []
    seen: set[str] = set()
    while len(items) < count:
        program = rng.choices(families, weights)[0](rng)
        output = run_program(program)
        if output is None or program in seen or not is_held_out(f"code:{program}"):
            continue
        wrong = _distractors(rng, program, output)
        if wrong is None:
            continue
        seen.add(program)
        choices = [output, *wrong]
        rng.shuffle(choices)
        items.append(McItem(f"{program}\n# Output:", tuple(choices), choices.index(output)))
    return items


# Function names never written with a ``def`` in training text: a completion must come from the
# docstring, which training pairs with the body (``source``, ``instruct``).
_UNSEEN_FUNCTION_NAMES = (
    "f", "g", "h", "fn", "op", "calc", "compute", "apply", "solve", "step_up", "transform",
    "value_of", "result_for", "answer", "make", "get_value", "process", "convert", "map_one",
    "next_value", "scale", "shift", "update", "combine", "reduce_one",
)  # fmt: skip


def completion_problems(seed: int, tests: int = 3) -> list[dict[str, str]]:
    """HumanEval-shaped problems over the functions training text defines, each under a name
    training never gave it: ``prompt`` (signature and docstring), ``canonical_solution`` (the
    body), ``test`` (``check(candidate)`` asserting ``tests`` values) and ``entry_point``."""
    rng = rng_for(seed, "code-completion-task")
    problems = []
    for name in _UNSEEN_FUNCTION_NAMES:
        for _, doc, body in _FUNCTIONS:
            args = rng.sample(range(1, 20), tests)
            # Expected values come from running the body (text this module wrote).
            values = [run_program(f"def f(n):\n    {body}\n\nprint(f({a}))") for a in args]
            asserts = [
                f"    assert candidate({a}) == {v}" for a, v in zip(args, values, strict=True)
            ]
            problems.append({
                "prompt": f'def {name}(n):\n    """{doc.capitalize()}."""',
                "canonical_solution": f"\n    {body}",
                "test": "def check(candidate):\n" + "\n".join(asserts),
                "entry_point": name,
            })  # fmt: skip
    rng.shuffle(problems)
    return problems
