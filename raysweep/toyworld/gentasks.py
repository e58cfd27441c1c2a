"""Generative lm-eval tasks of the toy world, in the shapes of the study's Math and Code tasks.

- ``toy_math_gen`` is GSM8K's shape: few-shot worked solutions (``fewshot_split: train``), the
  answer after a marker (``The answer is N.``), greedy ``generate_until`` and ``exact_match``
  read through a ``strict-match`` filter (the marker) and a ``flexible-extract`` one (the last
  number), with gsm8k.yaml's patterns, filters and ignore rules.
- ``toy_code_gen`` is HumanEval's shape: a signature and docstring, a generated body, unit tests
  run by ``pass_at_k`` (:mod:`raysweep.toyworld.code_eval_utils`, written as ``utils.py``) only
  where code execution is allowed (``unsafe_code: true``), ``pass@1`` after ``create_test``.
- ``toy_code_output_gen`` asks for the line a held-out program prints, scored by exact match.

The files are plain lm-eval YAML + jsonl, written beside the multiple-choice toy tasks into one
directory (``--include_path``), so the stock ``lm_eval`` command line runs them as raysweep does.
Items are shaped so the committed toy model solves most of them: it was trained on word problems
with worked solutions, on these function bodies after their docstrings, and on program outputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from raysweep.atomic import write_text_atomic
from raysweep.toyworld import arithmetic, programs
from raysweep.toyworld.tasks import TOY_TASKS, ensure_toy_tasks, tasks_digest

if TYPE_CHECKING:
    from raysweep.evaluation.dimensions import Suite

GEN_TASKS_VERSION = 1
# A seed no multiple-choice task uses: generative items are drawn independently of those.
GEN_TASK_SEED = 1
MATH_ITEMS = 200
CODE_OUTPUT_ITEMS = 200
MATH_SHOTS = 50
GEN_TASK_TAG = "toy_world_generative"
UTILS_SOURCE = Path(__file__).with_name("code_eval_utils.py")


@dataclass(frozen=True)
class GenTask:
    """One generative toy task: its lm-eval result key (``metric``), default shots, whether it
    runs model-written code, and its generation budget (``max_gen_toks``)."""

    name: str
    dimension: str
    metric: str
    num_fewshot: int
    max_gen_toks: int
    unsafe_code: bool = False
    chance: float = 0.0


GEN_TASKS: tuple[GenTask, ...] = (
    # One shot: the toy model was trained on 128-token windows, and two worked examples plus the
    # question run past them (measured: 2 shots solve 60 % where 0 or 1 solve all).
    GenTask("toy_math_gen", "math", "exact_match,strict-match", 1, max_gen_toks=40),
    GenTask("toy_code_gen", "code", "pass@1,create_test", 0, max_gen_toks=24, unsafe_code=True),
    GenTask("toy_code_output_gen", "code", "exact_match,strip", 0, max_gen_toks=12),
)


def _rows(name: str) -> dict[str, list[dict[str, str]]]:
    """Split name -> rows of one generative task."""
    if name == "toy_math_gen":
        test = arithmetic.solved_problems(GEN_TASK_SEED, MATH_ITEMS, held_out=True)
        shots = arithmetic.solved_problems(GEN_TASK_SEED, MATH_SHOTS, held_out=False)
        return {
            "test": [{"question": q, "answer": a} for q, a in test],
            "train": [{"question": q, "answer": a} for q, a in shots],
        }
    if name == "toy_code_gen":
        return {"test": programs.completion_problems(GEN_TASK_SEED)}
    if name == "toy_code_output_gen":
        items = programs.task_items(GEN_TASK_SEED, CODE_OUTPUT_ITEMS)
        # The context ends "\n# Output:"; the program is what comes before it.
        return {
            "test": [
                {"program": i.context.removesuffix("\n# Output:"), "output": i.choices[i.label]}
                for i in items
            ]
        }
    known = ", ".join(t.name for t in GEN_TASKS)
    raise ValueError(f"unknown generative toy task {name!r}; known: {known}")


def gen_task_rows(name: str) -> list[dict[str, str]]:
    """The evaluated items of one generative toy task, exactly as written to its jsonl file."""
    return _rows(name)["test"]


def _jsonl(rows: list[dict[str, str]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


def _q(text: str) -> str:
    # JSON string literals are valid YAML scalars: safe quoting for any text or path.
    return json.dumps(text)


def _head(task: GenTask, files: dict[str, Path]) -> str:
    lines = [
        f"task: {task.name}",
        f"tag:\n  - {GEN_TASK_TAG}",
        "dataset_path: json",
        "dataset_kwargs:\n  data_files:",
        *(f"    {split}: {_q(str(path))}" for split, path in sorted(files.items())),
        "test_split: test",
        "output_type: generate_until",
    ]
    return "\n".join(lines) + "\n"


def _generation(task: GenTask, until: list[str]) -> str:
    stops = "".join(f"    - {_q(s)}\n" for s in until)
    return (
        f"generation_kwargs:\n  until:\n{stops}  max_gen_toks: {task.max_gen_toks}\n"
        "  do_sample: false\n  temperature: 0.0\n"
        f"repeats: 1\nnum_fewshot: {task.num_fewshot}\n"
    )


_MATH_BODY = r"""training_split: train
fewshot_split: train
doc_to_text: "Question: {{question}}\nAnswer:"
doc_to_target: "{{answer}}"
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: false
    regexes_to_ignore:
      - ","
      - "\\$"
      - "(?s).*The answer is "
      - "\\.$"
filter_list:
  - name: "strict-match"
    filter:
      - function: "regex"
        regex_pattern: "The answer is (\\-?[0-9\\.\\,]+)"
      - function: "take_first"
  - name: "flexible-extract"
    filter:
      - function: "regex"
        group_select: -1
        regex_pattern: "(-?[$0-9.,]{2,})|(-?[0-9]+)"
      - function: "take_first"
"""

_CODE_BODY = """unsafe_code: true
doc_to_text: "{{prompt}}"
doc_to_target: "{{test}}\\ncheck({{entry_point}})"
metric_list:
  - metric: !function utils.pass_at_k
    aggregation: mean
    higher_is_better: true
    k: [1]
filter_list:
  - name: "create_test"
    filter:
      - function: "custom"
        filter_fn: !function utils.build_predictions
"""

_OUTPUT_BODY = r"""doc_to_text: "{{program}}\n# Output:"
doc_to_target: "{{output}}"
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
filter_list:
  - name: "strip"
    filter:
      - function: "remove_whitespace"
      - function: "take_first"
"""

# Stop strings: gsm8k's for math (plus the blank line ending a worked answer); humaneval's for
# code; the end of the printed line for program outputs.
_SHAPES: dict[str, tuple[str, list[str]]] = {
    "toy_math_gen": (_MATH_BODY, ["Question:", "</s>", "\n\n"]),
    "toy_code_gen": (_CODE_BODY, ["\nclass", "\ndef", "\n#", "\nif", "\nprint", "\n\n"]),
    "toy_code_output_gen": (_OUTPUT_BODY, ["\n", "</s>"]),
}


def _yaml(task: GenTask, files: dict[str, Path]) -> str:
    body, until = _SHAPES[task.name]
    return (
        _head(task, files)
        + body
        + _generation(task, until)
        + f"metadata:\n  version: {GEN_TASKS_VERSION}.0\n"
    )


@cache
def _rendered() -> dict[str, str]:
    """File name -> text of every generative task file but the YAMLs (which name their root)."""
    out = {"utils.py": UTILS_SOURCE.read_text()}
    for task in GEN_TASKS:
        for split, rows in _rows(task.name).items():
            out[_data_name(task.name, split)] = _jsonl(rows)
    return out


def _data_name(task: str, split: str) -> str:
    return f"{task}.jsonl" if split == "test" else f"{task}.{split}.jsonl"


def gen_tasks_digest() -> str:
    """Content hash of the multiple-choice and generative files: changes with any generator."""
    digest = hashlib.sha256(f"{tasks_digest()}\0{GEN_TASKS_VERSION}\0".encode())
    for name, text in sorted(_rendered().items()):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:12]


def _complete(root: Path) -> bool:
    names = [f"{t.name}.yaml" for t in (*TOY_TASKS, *GEN_TASKS)] + list(_rendered())
    return all((root / n).is_file() for n in names)


def ensure_generative_tasks(root: Path | None = None) -> Path:
    """Directory holding every toy task, multiple-choice and generative (``--include_path``),
    written once, file by file atomically; default ``<cache>/toyworld/gentasks-<content hash>``.
    """
    if root is None:
        from raysweep.paths import cache_dir

        root = cache_dir() / "toyworld" / f"gentasks-{gen_tasks_digest()}"
    root = Path(root).resolve()
    if _complete(root):
        return root
    ensure_toy_tasks(root)
    # Data and utils first, YAMLs last: an index never sees a YAML whose files are missing.
    for name, text in _rendered().items():
        write_text_atomic(root / name, text)
    for task in GEN_TASKS:
        files = {split: root / _data_name(task.name, split) for split in _rows(task.name)}
        write_text_atomic(root / f"{task.name}.yaml", _yaml(task, files))
    return root


def toy_generative_suite() -> Suite:
    """The ``toy_generative`` suite: the four multiple-choice toy tasks and the three generative
    ones, so that Math and Code are scored both ways, as the study suite scores them by
    generation. Its files are written where it names them on first use by lm-eval."""
    from raysweep.evaluation.dimensions import Suite, TaskSpec
    from raysweep.paths import cache_dir
    from raysweep.toyworld.tasks import ITEMS_PER_TASK

    # ensure_generative_tasks' own default root, planned without creating it.
    root = (cache_dir(create=False) / "toyworld" / f"gentasks-{gen_tasks_digest()}").resolve()
    choice = tuple(TaskSpec(t.name, t.dimension, t.metric, 0, t.chance, size=ITEMS_PER_TASK)
                   for t in TOY_TASKS)  # fmt: skip
    generated = tuple(
        TaskSpec(t.name, t.dimension, t.metric, t.num_fewshot, t.chance,
                 unsafe_code=t.unsafe_code, size=len(gen_task_rows(t.name)))
        for t in GEN_TASKS
    )  # fmt: skip
    return Suite(name="toy_generative", tasks=choice + generated, include_path=str(root),
                 perplexity_corpus="toy", write_tasks=ensure_generative_tasks)  # fmt: skip
