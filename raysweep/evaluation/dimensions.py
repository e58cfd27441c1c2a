"""Capability dimensions and the lm-eval tasks that measure them.

A :class:`Suite` is a declarative table: each :class:`TaskSpec` names an lm-eval task (or group), the
metric read from its results, the number of few-shot examples, the score a random guesser gets
(``chance``), an optional item limit and whether the task runs model-written code. Three suites are
built in (``study``, ``fast``, ``toy``); users describe their own with a mapping (YAML) of the same
fields, see :func:`suite_from_mapping`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from raysweep.names import DIMENSIONS
from raysweep.specs import suite_spec


@dataclass(frozen=True)
class TaskSpec:
    """One lm-eval task (or group) scored for one capability dimension.

    ``metric`` is lm-eval's metric name, optionally with its filter after a comma
    (``"acc"`` means ``"acc,none"``; ``"exact_match,strict-match"``). ``num_fewshot=None`` keeps the
    task's own default. ``limit`` caps the items per task (per subtask for groups). ``size``,
    when known without reading the dataset, is the number of items lm-eval evaluates (a group's:
    its largest member's); a limit at or above it cuts nothing, so the item selection does not
    matter there (:mod:`raysweep.evaluation.subsets`). The harness checks it against the task.
    ``max_gen_toks`` replaces a ``generate_until`` task's generation budget (None keeps the
    task's own: gsm8k's and mbpp's YAMLs set none, so lm-eval's HF default of 256 applies;
    humaneval's sets 1024).
    """

    name: str
    dimension: str
    metric: str
    num_fewshot: int | None
    chance: float
    limit: int | None = None
    unsafe_code: bool = False
    size: int | None = None
    max_gen_toks: int | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"task name must be a non-empty string, got {self.name!r}")
        if self.dimension not in DIMENSIONS:
            raise ValueError(
                f"task {self.name!r}: unknown dimension {self.dimension!r}; "
                f"expected one of {', '.join(DIMENSIONS)}"
            )
        if not self.metric or self.metric.startswith(","):
            raise ValueError(f"task {self.name!r}: metric must name an lm-eval metric")
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise ValueError(f"task {self.name!r}: num_fewshot must be >= 0")
        if not 0.0 <= float(self.chance) < 1.0:
            raise ValueError(f"task {self.name!r}: chance must lie in [0, 1), got {self.chance}")
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"task {self.name!r}: limit must be a positive integer or None")
        if self.size is not None and self.size <= 0:
            raise ValueError(f"task {self.name!r}: size must be a positive integer or None")
        if self.max_gen_toks is not None and self.max_gen_toks <= 0:
            raise ValueError(f"task {self.name!r}: max_gen_toks must be a positive integer or None")

    @property
    def metric_key(self) -> str:
        """lm-eval's result key for this metric, e.g. ``"acc,none"``."""
        return self.metric if "," in self.metric else f"{self.metric},none"


@dataclass(frozen=True)
class Suite:
    """A named set of tasks; ``include_path`` is a directory of extra lm-eval task YAMLs.

    ``write_tasks``, when given, writes the suite's task files into a directory and returns it:
    a generated suite names its ``include_path`` without writing it, and the files are written
    only when lm-eval first needs them (:func:`ensure_task_files`), so validation writes nothing.
    """

    name: str
    tasks: tuple[TaskSpec, ...]
    include_path: str | None = None
    # Held-out text for the optional perplexity metric: "wikitext2", "toy" or "file:<path>".
    perplexity_corpus: str = "wikitext2"
    write_tasks: Callable[[Path], object] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError(f"suite {self.name!r} has no tasks")
        names = [t.name for t in self.tasks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"suite {self.name!r} lists tasks twice: {', '.join(duplicates)}")
        if self.include_path is not None and not Path(self.include_path).is_absolute():
            # Ray Tune runs trials inside their own folders, so relative paths would break.
            raise ValueError(
                f"suite {self.name!r}: include_path must be absolute, got {self.include_path!r}"
            )

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Dimensions this suite measures, in :data:`DIMENSIONS` order."""
        present = {t.dimension for t in self.tasks}
        return tuple(d for d in DIMENSIONS if d in present)

    @property
    def unsafe_tasks(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks if t.unsafe_code)

    def tasks_of(self, dimension: str) -> tuple[TaskSpec, ...]:
        return tuple(t for t in self.tasks if t.dimension == dimension)

    def chance(self, dimension: str) -> float:
        """Chance level of a dimension score (the mean of its tasks' chance levels)."""
        tasks = self.tasks_of(dimension)
        if not tasks:
            raise KeyError(f"suite {self.name!r} has no task for dimension {dimension!r}")
        return sum(t.chance for t in tasks) / len(tasks)

    def fingerprint(self) -> str:
        """Stable hash of everything that changes what the suite measures. A task's ``size`` is
        a fact about its dataset, not a setting (the harness checks it), and is left out; an
        unset ``max_gen_toks`` too, so suites that set none keep their fingerprints."""
        payload = {
            "name": self.name,
            "tasks": [_fingerprinted(t) for t in self.tasks],
            "include_path": self.include_path,
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fingerprinted(task: TaskSpec) -> dict[str, Any]:
    fields = asdict(task)
    del fields["size"]
    if fields["max_gen_toks"] is None:
        del fields["max_gen_toks"]
    return fields


def _mc(name: str, dimension: str, chance: float, metric: str = "acc", **kw: Any) -> TaskSpec:
    return TaskSpec(name, dimension, metric, kw.pop("num_fewshot", 0), chance, **kw)


# Commonsense: acc_norm where the field customarily reports it (HellaSwag, ARC-Challenge, OBQA),
# plain acc elsewhere.
_COMMONSENSE = (
    ("boolq", "acc", 0.5),
    ("rte", "acc", 0.5),
    ("hellaswag", "acc_norm", 0.25),
    ("winogrande", "acc", 0.5),
    ("arc_easy", "acc", 0.25),
    ("arc_challenge", "acc_norm", 0.25),
    ("openbookqa", "acc_norm", 0.25),
    ("piqa", "acc", 0.5),
)

_STUDY = Suite(
    name="study",
    tasks=(
        _mc("mmlu", "general", 0.25, num_fewshot=5),
        *(_mc(n, "commonsense", c, m) for n, m, c in _COMMONSENSE),
        TaskSpec("gsm8k", "math", "exact_match,strict-match", 5, 0.0),
        TaskSpec("humaneval", "code", "pass@1,create_test", 0, 0.0, unsafe_code=True),
        TaskSpec("mbpp", "code", "pass_at_1", 3, 0.0, unsafe_code=True),
    ),
)

# Log-likelihood only, with per-task item limits: cheap enough for search trials. Code is proxied by
# the two MMLU computer-science subjects (multiple choice over code-related questions); math by MathQA.
_FAST = Suite(
    name="fast",
    tasks=(
        _mc("mmlu", "general", 0.25, num_fewshot=5, limit=20),
        *(_mc(n, "commonsense", c, m, limit=200) for n, m, c in _COMMONSENSE),
        _mc("mathqa", "math", 0.2, "acc_norm", limit=500),
        _mc("mmlu_college_computer_science", "code", 0.25, num_fewshot=5),
        _mc("mmlu_high_school_computer_science", "code", 0.25, num_fewshot=5),
    ),
)


def ensure_task_files(suite: Suite) -> None:
    """Write a generated suite's task files to its ``include_path`` unless they are there."""
    if suite.write_tasks is None or suite.include_path is None:
        return
    suite.write_tasks(Path(suite.include_path))


class _SuiteTable(Mapping[str, Suite]):
    """Read-only name -> Suite table: the built-in suites, then those of the plug-in worlds
    (:mod:`raysweep.worlds`, e.g. the toy world's ``toy``), each built when asked for."""

    _own: dict[str, Callable[[], Suite]] = {"study": lambda: _STUDY, "fast": lambda: _FAST}

    @property
    def _builders(self) -> dict[str, Callable[[], Suite]]:
        from raysweep.worlds import registry

        worlds = registry().suite_builders()
        return {**self._own, **{n: b for n, b in worlds.items() if n not in self._own}}

    def __getitem__(self, name: str) -> Suite:
        return self._builders[name]()

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)

    def __contains__(self, name: object) -> bool:
        return name in self._builders


SUITES: Mapping[str, Suite] = _SuiteTable()


def _close(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=5, cutoff=0.5)
    return ", ".join(close) if close else "none"


def suite_from_mapping(spec: Mapping[str, Any], base_dir: str | Path | None = None) -> Suite:
    """Build a user suite from a mapping such as a YAML block::

        name: mine
        include_path: /abs/dir/of/task/yamls      # optional
        tasks:
          - {name: arc_easy, dimension: commonsense, metric: acc, chance: 0.25}
          - {name: gsm8k, dimension: math, metric: "exact_match,strict-match", num_fewshot: 5, chance: 0}

    ``metric`` defaults to ``acc`` and ``num_fewshot`` to 0; ``chance`` is required. A relative
    ``include_path`` is resolved against ``base_dir`` (default: the current directory).
    """
    typed = suite_spec(spec)
    name = typed.name
    tasks = [TaskSpec(**entry.model_dump()) for entry in typed.tasks]
    include = typed.include_path
    if include is not None:
        path = Path(include).expanduser()
        if not path.is_absolute():
            path = Path(base_dir or Path.cwd()) / path
        if not path.is_dir():
            raise ValueError(f"suite {name!r}: include_path {str(path)!r} is not a directory")
        include = str(path.resolve())
    return Suite(
        name=name,
        tasks=tuple(tasks),
        include_path=include,
        perplexity_corpus=typed.perplexity_corpus,
    )


def get_suite(name_or_spec: str | Mapping[str, Any] | Suite) -> Suite:
    """Resolve a suite name (``"study"``, ``"fast"``, ``"toy"``), a mapping or a Suite."""
    if isinstance(name_or_spec, Suite):
        return name_or_spec
    if isinstance(name_or_spec, str):
        if name_or_spec not in SUITES:
            from raysweep.worlds import registry

            failed = f"; {registry().error}" if registry().error else ""
            raise ValueError(
                f"unknown suite {name_or_spec!r}; built-in suites: {', '.join(SUITES)}; "
                f"close names: {_close(name_or_spec, tuple(SUITES))}{failed}"
            )
        return SUITES[name_or_spec]
    if isinstance(name_or_spec, Mapping):
        return suite_from_mapping(name_or_spec)
    raise TypeError(f"a suite is a name, a mapping or a Suite, got {type(name_or_spec).__name__}")
