"""Held-out lm-eval tasks of the toy world: plain multiple-choice YAML over local jsonl files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from raysweep.atomic import write_text_atomic
from raysweep.toyworld import arithmetic, commonsense, general, programs
from raysweep.toyworld._common import McItem

TASKS_VERSION = 2
TASK_SEED = 0
ITEMS_PER_TASK = 400
TOY_TASK_TAG = "toy_world"


@dataclass(frozen=True)
class ToyTask:
    name: str
    dimension: str
    chance: float
    metric: str = "acc"


TOY_TASKS: tuple[ToyTask, ...] = (
    ToyTask("toy_general_facts", "general", 0.25),
    ToyTask("toy_commonsense_materials", "commonsense", 0.25),
    ToyTask("toy_code_output", "code", 0.25),
    ToyTask("toy_math_word", "math", 0.25),
)

_ITEMS: dict[str, Callable[[int, int], list[McItem]]] = {
    "toy_general_facts": general.fact_items,
    "toy_commonsense_materials": commonsense.task_items,
    "toy_code_output": programs.task_items,
    "toy_math_word": arithmetic.word_items,
}


def task_items(name: str) -> list[McItem]:
    """The items of one toy task, exactly as written to its jsonl file."""
    if name not in _ITEMS:
        raise ValueError(f"unknown toy task {name!r}; known: {', '.join(_ITEMS)}")
    return _ITEMS[name](TASK_SEED, ITEMS_PER_TASK)


def _jsonl(items: list[McItem]) -> str:
    rows = ({"context": i.context, "choices": list(i.choices), "label": i.label} for i in items)
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


def _yaml(task: ToyTask, data_file: Path) -> str:
    # JSON string literals are valid YAML scalars: safe quoting for any path.
    return (
        f"task: {task.name}\n"
        f"tag:\n  - {TOY_TASK_TAG}\n"
        "dataset_path: json\n"
        "dataset_kwargs:\n"
        "  data_files:\n"
        f"    test: {json.dumps(str(data_file))}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_text: context\n"
        "doc_to_choice: choices\n"
        "doc_to_target: label\n"
        'target_delimiter: " "\n'
        "metric_list:\n"
        f"  - metric: {task.metric}\n"
        "    aggregation: mean\n"
        "    higher_is_better: true\n"
        "metadata:\n"
        f"  version: {TASKS_VERSION}.0\n"
    )


@cache
def _rendered_items() -> dict[str, str]:
    return {task.name: _jsonl(task_items(task.name)) for task in TOY_TASKS}


def tasks_digest() -> str:
    """Content hash of every task's items: changes whenever a generator changes its output."""
    digest = hashlib.sha256()
    for name, text in _rendered_items().items():
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:12]


def _complete(root: Path) -> bool:
    return all(
        (root / f"{t.name}.yaml").is_file() and (root / f"{t.name}.jsonl").is_file()
        for t in TOY_TASKS
    )


def ensure_toy_tasks(root: Path | None = None) -> Path:
    """Directory of the toy lm-eval tasks (``--include_path``), written once, file by file atomically.

    The default root is ``<cache dir>/toyworld/tasks-<content hash>``, so a changed generator
    never reuses stale files. The YAMLs point at their jsonl
    files by absolute path, so lm-eval finds them from any working directory.
    """
    if root is None:
        from raysweep.paths import cache_dir

        root = cache_dir() / "toyworld" / f"tasks-{tasks_digest()}"
    root = Path(root).resolve()
    if _complete(root):
        return root
    root.mkdir(parents=True, exist_ok=True)
    for task in TOY_TASKS:
        # Concurrent writers (parallel trials) produce identical bytes.
        write_text_atomic(root / f"{task.name}.jsonl", _rendered_items()[task.name])
        write_text_atomic(root / f"{task.name}.yaml", _yaml(task, root / f"{task.name}.jsonl"))
    return root
