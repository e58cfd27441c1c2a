"""The lm-eval adapter: the only raysweep module that imports ``lm_eval``.

``lm_eval`` is imported inside functions, so importing :mod:`raysweep.evaluation` stays cheap and
keeps lm-eval out of processes that never evaluate. lm-eval's metric keys (``"acc,none"``) stop
here: callers get :class:`~raysweep.evaluation.scoring.CapabilityScores` with plain task names.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import random
import re
import weakref
from array import array
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raysweep.evaluation.dimensions import Suite, TaskSpec, ensure_task_files, get_suite
from raysweep.evaluation.perplexity import heldout_perplexity, heldout_texts
from raysweep.evaluation.scoring import (
    GROUP_DOC_STRIDE,
    ITEM_MEAN_TOLERANCE,
    CapabilityScores,
    GenerationStats,
    TaskItems,
    make_scores,
)
from raysweep.evaluation.subsets import ItemSelection, effective_limit, random_subset

if TYPE_CHECKING:
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

log = logging.getLogger(__name__)

# Without an explicit max_length lm-eval takes the model's positional limit, 131072 on Llama-3.
# Contexts of the built-in suites (5-shot MMLU, 5-shot GSM8K) fit well within this cap.
DEFAULT_MAX_LENGTH_CAP = 4096

# One TaskManager per process and index configuration: building the stock index parses ~15k YAMLs.
_METRIC_NAME = re.compile(r"[A-Za-z_][\w@-]*")

_TASK_MANAGERS: dict[tuple[str | None, bool], TaskManager] = {}


def _task_manager(include_path: str | None, include_defaults: bool) -> TaskManager:
    key = (include_path, include_defaults)
    if key not in _TASK_MANAGERS:
        from lm_eval.tasks import TaskManager

        log.info("building lm-eval task index (include_path=%s, defaults=%s)", *key)
        _TASK_MANAGERS[key] = TaskManager(
            include_path=include_path, include_defaults=include_defaults
        )
    return _TASK_MANAGERS[key]


def _env_report_once() -> None:
    """Compute lm-eval's environment report once per process instead of once per evaluation.

    ``simple_evaluate`` always attaches it, and it shells out to ``pip list`` (~1.5 s, a third
    of a toy-suite trial). It cannot change within a process, so later calls reuse the first.
    """
    import copy

    import lm_eval.evaluator as evaluator

    original = evaluator.add_env_info
    if getattr(original, "_computed_once", False):
        return
    report: dict[str, Any] = {}

    def add_env_info(storage: dict[str, Any]) -> None:
        if not report:
            original(report)
        storage.update(copy.deepcopy(report))

    add_env_info._computed_once = True  # type: ignore[attr-defined]
    evaluator.add_env_info = add_env_info


def _manager_for(suite: Suite) -> TaskManager:
    """The smallest index that knows every task of ``suite`` (stock tasks only when needed);
    a generated suite's task files are written first."""
    ensure_task_files(suite)
    return _index_for(suite)


def _index_for(suite: Suite) -> TaskManager:
    if suite.include_path is not None:
        local = _task_manager(suite.include_path, False)
        if all(name in local.task_index for name in suite.task_names):
            return local
    return _task_manager(suite.include_path, True)


def _declared_unsafe(manager: TaskManager, name: str, seen: set[str] | None = None) -> bool:
    """Whether a task, or any member of a group, has ``unsafe_code: true`` in its YAML."""
    seen = set() if seen is None else seen
    if name in seen:
        return False
    seen.add(name)
    entry = manager.task_index.get(name)
    cfg = (entry.cfg if entry is not None else None) or {}
    if cfg.get("unsafe_code"):
        return True
    members = cfg.get("task")
    if isinstance(members, list):
        children = [m if isinstance(m, str) else m.get("task") for m in members]
        return any(isinstance(c, str) and _declared_unsafe(manager, c, seen) for c in children)
    return False


def _generates(manager: TaskManager, name: str) -> bool:
    """Whether a task, or any member of a group, is a ``generate_until`` task (as its YAML
    says; a task whose YAML includes another is taken to generate: it cannot be read here)."""
    entry = manager.task_index.get(name)
    cfg = (entry.cfg if entry is not None else None) or {}
    members = cfg.get("task")
    if isinstance(members, list):
        children = [m if isinstance(m, str) else m.get("task") for m in members]
        return any(isinstance(c, str) and _generates(manager, c) for c in children)
    return cfg.get("output_type", "generate_until") == "generate_until"


def _declared_metrics(manager: TaskManager, name: str) -> list[str] | None:
    """Metric names a task's YAML lists, or None when they cannot be read statically."""
    entry = manager.task_index.get(name)
    cfg = (entry.cfg if entry is not None else None) or {}
    items = cfg.get("aggregate_metric_list") if "group" in cfg else cfg.get("metric_list")
    if not isinstance(items, list):
        return None
    metrics = [i.get("metric") if isinstance(i, Mapping) else None for i in items]
    # Metrics given as functions (humaneval's `!function utils.pass_at_k`, indexed as a file path)
    # are named only when they run.
    if all(isinstance(m, str) and _METRIC_NAME.fullmatch(m) for m in metrics):
        return metrics
    return None


def code_execution_refusal(suite_name: str, tasks: tuple[str, ...] | list[str]) -> str:
    return (
        f"suite {suite_name!r} contains tasks that execute model-written code "
        f"({', '.join(tasks)}), and code execution is disabled. These tasks run untrusted, "
        "model-generated programs on this machine. To run them (preferably in a sandbox), set "
        "`evaluation.allow_code_execution: true` in the config (allow_code_execution=True in "
        "Python), or use a suite without them (e.g. 'fast')."
    )


def validate_suite(
    suite: str | Mapping[str, Any] | Suite, *, allow_code_execution: bool = True
) -> Suite:
    """Check every task name (and statically readable metric) against lm-eval's task index.

    Raises ValueError for unknown task names, listing close names, for metrics the task does not
    report, and (unless ``allow_code_execution``) for tasks that execute model-written code.
    """
    suite = get_suite(suite)
    if not allow_code_execution and suite.unsafe_tasks:
        raise ValueError(code_execution_refusal(suite.name, suite.unsafe_tasks))
    with _indexable(suite) as manager:
        _check_tasks(suite, manager, allow_code_execution)
    return suite


@contextlib.contextmanager
def _indexable(suite: Suite) -> Iterator[TaskManager]:
    """An index of ``suite``'s tasks that writes nothing where the suite lives: a generated
    suite not written yet is written to a temporary directory, removed afterwards."""
    if suite.write_tasks is None or suite.include_path is None or os.path.isdir(suite.include_path):
        yield _index_for(suite)
        return
    import dataclasses
    import tempfile

    with tempfile.TemporaryDirectory(prefix="raysweep-validate-") as tmp:
        suite.write_tasks(Path(tmp))
        yield _index_for(dataclasses.replace(suite, include_path=tmp, write_tasks=None))


def _check_tasks(suite: Suite, manager: TaskManager, allow_code_execution: bool) -> None:
    problems = []
    for spec in suite.tasks:
        if spec.name not in manager.task_index:
            close = difflib.get_close_matches(spec.name, manager.all_tasks, n=5, cutoff=0.6)
            where = f" or in {suite.include_path}" if suite.include_path else ""
            problems.append(
                f"unknown lm-eval task {spec.name!r} in suite {suite.name!r} (not among "
                f"lm-eval's tasks{where}); close names: {', '.join(close) if close else 'none'}"
            )
            continue
        if manager.task_index[spec.name].kind.name == "TAG":
            # A tag only lists tasks; lm-eval reports no score for the tag itself.
            problems.append(
                f"{spec.name!r} is an lm-eval tag, which has no aggregate score; list its tasks "
                "individually or use a group"
            )
            continue
        if spec.max_gen_toks is not None and not _generates(manager, spec.name):
            problems.append(
                f"task {spec.name!r} sets max_gen_toks but does not generate (its output_type "
                "is not generate_until): the budget would change nothing"
            )
        metrics = _declared_metrics(manager, spec.name)
        metric_name = spec.metric_key.split(",")[0]
        if metrics is not None and metric_name not in metrics:
            problems.append(
                f"task {spec.name!r} reports metrics {', '.join(metrics)}, not {metric_name!r}"
            )
    if problems:
        raise ValueError("; ".join(problems))
    undeclared = [
        s.name for s in suite.tasks if not s.unsafe_code and _declared_unsafe(manager, s.name)
    ]
    if undeclared and not allow_code_execution:
        raise ValueError(code_execution_refusal(suite.name, undeclared))


def resolve_max_length(model: Any, tokenizer: Any, max_length: int | None) -> int:
    """An explicit context length for lm-eval: ``max_length``, else the model's, capped."""
    if max_length is not None:
        if max_length <= 0:
            raise ValueError(f"max_length must be positive, got {max_length}")
        return int(max_length)
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if value:
            return min(int(value), DEFAULT_MAX_LENGTH_CAP)
    tok_max = getattr(tokenizer, "model_max_length", None)
    if tok_max and tok_max < 10**7:
        return min(int(tok_max), DEFAULT_MAX_LENGTH_CAP)
    return 2048


class _PairEncodings:
    """Token ids of (context, continuation) pairs for one tokenizer and one HFLM encoding setup.

    Contexts are stored once (an item's choices share them) as compact arrays; continuations are
    short. Entries depend on the strings and the tokenizer only, never on model weights.
    """

    MAX_PAIRS = 1_000_000  # beyond this the store starts over (memory stays bounded)

    def __init__(self) -> None:
        self.contexts: dict[str, array] = {}
        self.pairs: dict[tuple[str, str], tuple[array, tuple[int, ...]]] = {}

    def clear(self) -> None:
        self.contexts.clear()
        self.pairs.clear()


# Per tokenizer object (held weakly) and the HFLM settings that change tok_encode's output.
_ENCODINGS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], _PairEncodings]] = (
    weakref.WeakKeyDictionary()
)


def _pair_encodings(lm: HFLM) -> _PairEncodings:
    tokenizer = lm.tokenizer
    key = (lm.add_bos_token, lm.prefix_token_id, len(tokenizer))
    per_setup = _ENCODINGS.setdefault(tokenizer, {})
    if key not in per_setup:
        per_setup[key] = _PairEncodings()
    return per_setup[key]


def _encode_requests(
    lm: HFLM, pairs: Sequence[tuple[str, str]]
) -> list[tuple[list[int], list[int]]]:
    """lm-eval's ``TemplateLM.loglikelihood`` tokenization of each pair, reusing earlier results.

    Same rules as lm-eval (causal backend): an empty context becomes the prefix token; trailing
    context whitespace moves to the continuation; the continuation is what encoding the whole
    string adds after the context's tokens.
    """
    store = _pair_encodings(lm)
    if len(store.pairs) > store.MAX_PAIRS:
        store.clear()
    out = []
    for pair in pairs:
        hit = store.pairs.get(pair)
        if hit is None:
            context, continuation = pair
            if context == "":
                cont = lm.tok_encode(continuation, add_special_tokens=False)
                if lm.prefix_token_id != cont[0]:
                    ctx, cont = [lm.prefix_token_id], cont
                else:
                    ctx, cont = cont[:1], cont[1:]
                ctx_ids = array("q", ctx)
            else:
                n_spaces = len(context) - len(context.rstrip())
                if n_spaces > 0:
                    continuation = context[-n_spaces:] + continuation
                    context = context[:-n_spaces]
                if context not in store.contexts:
                    store.contexts[context] = array("q", lm.tok_encode(context))
                ctx_ids = store.contexts[context]
                cont = lm.tok_encode(context + continuation)[len(ctx_ids) :]
            hit = store.pairs[pair] = (ctx_ids, tuple(cont))
        out.append((hit[0].tolist(), list(hit[1])))
    return out


_GENERATION_LM: type | None = None


def _row_key(ids: Any, mask: Any) -> tuple[int, ...]:
    """A context's token ids without the left padding of its batch."""
    return tuple((ids if mask is None else ids[mask.bool()]).tolist())


def _generation_lm_class() -> type:
    """``GenerationLM``: lm-eval's HFLM that also notes, per task, what ``generate_until``
    generated: for each request its length in tokens (up to the step that stopped it; padding
    after a finished row excluded) and whether ``max_gen_toks`` cut it before an end-of-text
    token or a stop string appeared. Results are the stock HFLM's.

    HFLM batches and sorts requests; a generated row is matched back to its request by the
    context's token ids, encoded as HFLM encodes them (``tok_batch_encode``, left-truncated to
    leave room for ``max_gen_toks``).
    """
    global _GENERATION_LM
    if _GENERATION_LM is not None:
        return _GENERATION_LM
    from lm_eval.models.huggingface import HFLM
    from lm_eval.models.utils import normalize_gen_kwargs

    class GenerationLM(HFLM):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # task name -> (tokens generated, cut by the cap), one pair per request.
            self.generation_log: dict[str, list[tuple[int, bool]]] = {}
            self._rows: dict[tuple[int, ...], tuple[int, bool]] = {}

        def _model_generate(self, context, max_length, stop, **generation_kwargs):
            out = super()._model_generate(context, max_length, stop, **generation_kwargs)
            mask = generation_kwargs.get("attention_mask")
            budget = max_length - context.shape[1]
            for row in range(out.shape[0]):
                key = _row_key(context[row], None if mask is None else mask[row])
                self._rows[key] = self._generated(out[row, context.shape[1] :], budget, stop)
            return out

        def _generated(self, new, budget: int, stop: list[str]) -> tuple[int, bool]:
            tokens = new.tolist()
            pad = self.tokenizer.pad_token_id
            while tokens and tokens[-1] == pad:
                tokens.pop()
            text = self.tok_decode(tokens)
            stopped = self.eot_token_id in tokens or any(s and s in text for s in stop)
            return len(tokens), len(tokens) >= budget and not stopped

        def _request_key(self, context: str, gen_kwargs: dict) -> tuple[int, ...]:
            budget = normalize_gen_kwargs(dict(gen_kwargs), self.max_gen_toks)["max_gen_toks"]
            ids, mask = self.tok_batch_encode(
                [context], left_truncate_len=self.max_length - budget, truncation=self.truncation
            )
            return _row_key(ids[0], mask[0])

        def generate_until(self, requests, disable_tqdm: bool = False):
            self._rows = {}
            texts = super().generate_until(requests, disable_tqdm=disable_tqdm)
            for req in requests:
                row = self._rows.get(self._request_key(*req.args))
                if row is None:
                    log.debug("no generated row matched a request of %s", req.task_name)
                    continue
                self.generation_log.setdefault(req.task_name, []).append(row)
            self._rows = {}
            return texts

    _GENERATION_LM = GenerationLM
    return GenerationLM


_SHARED_CONTEXT_LM: type | None = None


def _shared_context_lm_class() -> type:
    """``SharedContextHFLM``: lm-eval's HFLM scoring each context once for all its continuations.

    Only ``loglikelihood`` differs from the stock HFLM. Requests are tokenized as lm-eval does
    (cached per tokenizer, see :func:`_encode_requests`); those that lm-eval would score without
    truncation are grouped by context token ids and packed one group per row
    (:mod:`raysweep.evaluation.shared_context`); the others, and every request of a model or
    setup packing does not support (non-causal, flash attention, mixed precision, automatic
    batch size, a model whose packed scores disagree with plain ones on a probe), take the stock
    path. Results are the stock ``(log-prob sum, is_greedy)`` in request order.
    ``loglikelihood_rolling`` and ``generate_until`` are lm-eval's (the latter noted as
    ``GenerationLM`` notes it).
    """
    global _SHARED_CONTEXT_LM
    if _SHARED_CONTEXT_LM is not None:
        return _SHARED_CONTEXT_LM
    from raysweep.evaluation import shared_context as sc

    class SharedContextHFLM(_generation_lm_class()):  # type: ignore[misc]
        def _packing_enabled(self) -> bool:
            return (
                self.backend == "causal"
                and isinstance(self.batch_size, int)
                and self.mixed_precision_dtype is None
                and not getattr(self, "enable_thinking", None)
                and sc.supports_packing(self.model)
            )

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            if not self._packing_enabled():
                return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
            pairs = [tuple(req.args) for req in requests]
            encoded = _encode_requests(self, pairs)
            limit = self.max_length
            packed = [
                i
                for i, (ctx, cont) in enumerate(encoded)
                if ctx and cont and len(ctx) + len(cont) <= limit + 1
            ]
            chosen = set(packed)
            stock = [i for i in range(len(encoded)) if i not in chosen]
            token_requests = [encoded[i] for i in packed]
            probe = sc.probe_requests(token_requests)
            if not sc.packing_matches_plain(self.model, probe, self.softmax_dtype):
                log.warning(
                    "packed scoring disagrees with plain scoring on %s; using lm-eval's path",
                    type(self.model).__name__,
                )
                packed, stock = [], list(range(len(encoded)))
            results: list[Any] = [None] * len(encoded)
            if packed:
                scores = sc.shared_context_loglikelihoods(
                    self.model,
                    [encoded[i] for i in packed],
                    batch_size=self.batch_size,
                    max_row_tokens=limit,
                    softmax_dtype=self.softmax_dtype,
                )
                for i, answer in zip(packed, scores, strict=True):
                    results[i] = answer
                    self.cache_hook.add_partial("loglikelihood", pairs[i], answer)
            if stock:
                stock_scores = self._loglikelihood_tokens(
                    [(pairs[i], *encoded[i]) for i in stock], disable_tqdm=disable_tqdm
                )
                for i, answer in zip(stock, stock_scores, strict=True):
                    results[i] = answer
            return results

    _SHARED_CONTEXT_LM = SharedContextHFLM
    return SharedContextHFLM


def _batches(
    suite: Suite, limit: int | None
) -> dict[tuple[int | None, int | None, int | None], list[TaskSpec]]:
    """Group tasks by (effective limit, num_fewshot, max_gen_toks): lm-eval takes one of each
    per call."""
    groups: dict[tuple[int | None, int | None, int | None], list[TaskSpec]] = {}
    for spec in suite.tasks:
        key = (effective_limit(spec, limit), spec.num_fewshot, spec.max_gen_toks)
        groups.setdefault(key, []).append(spec)
    return groups


def _random_items(
    manager: TaskManager, specs: list[TaskSpec], limit: int, seed: int
) -> tuple[list[Any], dict[str, list[int]] | None]:
    """The tasks of one lm-eval call, built, and the random subset of each leaf task that
    ``limit`` cuts (:func:`~raysweep.evaluation.subsets.random_subset`; None when it cuts none).

    Building a task reads its dataset, which is how its size is learnt; the built tasks are
    handed to ``simple_evaluate`` so that it does not read them again. A task's declared
    ``size`` (the suite table's) must be its true size (a group's: its largest member's):
    trial ids and dense keys were computed from it.
    """
    loaded = manager.load([s.name for s in specs])
    tasks, groups = loaded["tasks"], loaded["groups"]
    members = loaded.get("group_map") or {}
    sizes = {name: len(task.eval_docs) for name, task in tasks.items()}
    for spec in specs:
        if spec.size is None:
            continue
        leaves = _leaf_tasks(spec.name, members) if spec.name in groups else [spec.name]
        true = max(sizes[leaf] for leaf in leaves)
        if true != spec.size:
            raise ValueError(
                f"task {spec.name!r} declares size {spec.size} in the suite table but lm-eval "
                f"evaluates {true} of its items: correct the table (trial ids and dense-baseline "
                "keys depend on it)"
            )
    samples = {name: random_subset(name, n, limit, seed) for name, n in sizes.items() if n > limit}
    built = [groups[s.name] if s.name in groups else tasks[s.name] for s in specs]
    return built, samples or None


@contextlib.contextmanager
def _preserved_rng() -> Iterator[None]:
    """lm-eval seeds the global generators; give the caller's streams back afterwards."""
    import numpy as np
    import torch

    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


@contextlib.contextmanager
def _code_execution_env(enabled: bool) -> Iterator[None]:
    """Set HF_ALLOW_CODE_EVAL=1 for one evaluation only (it must be set before tasks load)."""
    if not enabled:
        yield
        return
    previous = os.environ.get("HF_ALLOW_CODE_EVAL")
    os.environ["HF_ALLOW_CODE_EVAL"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HF_ALLOW_CODE_EVAL", None)
        else:
            os.environ["HF_ALLOW_CODE_EVAL"] = previous


def _read_scores(results: Mapping[str, Any], specs: list[TaskSpec]) -> dict[str, float]:
    """Primary metric of each task from lm-eval's ``results`` block, as plain floats."""
    out = {}
    for spec in specs:
        row = results.get(spec.name)
        if row is None:
            raise ValueError(
                f"lm-eval returned no result for {spec.name!r} (a tag without an aggregate score? "
                f"use a task or a group name); got: {', '.join(sorted(results))}"
            )
        value = row.get(spec.metric_key)
        if not isinstance(value, int | float):
            keys = sorted(k for k in row if "," in k and "_stderr" not in k)
            raise ValueError(
                f"task {spec.name!r} did not report metric {spec.metric!r}; it reported: "
                f"{', '.join(k.replace(',none', '') for k in keys) or 'nothing'}"
            )
        out[spec.name] = float(value)
    return out


def _leaf_tasks(name: str, group_subtasks: Mapping[str, Sequence[str]]) -> list[str]:
    """The tasks lm-eval logged samples under for ``name``: itself, or a group's members
    (members of member groups included)."""
    if name not in group_subtasks:
        return [name]
    return [leaf for child in group_subtasks[name] for leaf in _leaf_tasks(child, group_subtasks)]


def _task_items(spec: TaskSpec, out: Mapping[str, Any], score: float) -> TaskItems | None:
    """``spec``'s per-item values of its primary metric from lm-eval's logged samples, or None
    (with a warning saying why) when they do not average to the task's score.

    A group's items are its members' (in name order), each ``doc_id`` offset by
    ``GROUP_DOC_STRIDE`` times the member's position: they average to the group's score when the
    group weights its members by size (as ``mmlu`` does).
    """
    metric, filter_key = spec.metric_key.split(",", 1)
    groups = out.get("group_subtasks") or {}
    leaves = sorted(set(_leaf_tasks(spec.name, groups)))
    grouped = spec.name in groups
    doc_ids: list[int] = []
    values: list[float] = []
    for position, leaf in enumerate(leaves):
        for sample in out["samples"].get(leaf, ()):
            if sample.get("filter") != filter_key:
                continue
            value, doc_id = sample.get(metric), sample.get("doc_id")
            if not isinstance(value, int | float) or not isinstance(doc_id, int):
                log.warning("task %r: no per-item values (%s of %s is %r, not a number)",
                            spec.name, metric, leaf, type(value).__name__)  # fmt: skip
                return None
            if grouped and not 0 <= doc_id < GROUP_DOC_STRIDE:
                log.warning("task %r: no per-item values (doc_id %d of %s is beyond %d)",
                            spec.name, doc_id, leaf, GROUP_DOC_STRIDE)  # fmt: skip
                return None
            doc_ids.append(position * GROUP_DOC_STRIDE + doc_id if grouped else doc_id)
            values.append(float(value))
    items = TaskItems(tuple(doc_ids), tuple(values))
    if not values or abs(items.mean() - score) > ITEM_MEAN_TOLERANCE:
        # A corpus-level metric (BLEU, F1 over the corpus) or a group that averages its members
        # without weighting them by size: the items exist but do not add up to the score.
        log.warning("task %r: no per-item values (%d items average %s, its score is %s)",
                    spec.name, len(values), items.mean(), score)  # fmt: skip
        return None
    return items


def _generation_stats(
    specs: list[TaskSpec], out: Mapping[str, Any], log_: Mapping[str, list[tuple[int, bool]]]
) -> dict[str, GenerationStats]:
    """:class:`GenerationStats` of each ``generate_until`` task of one lm-eval call (a group's:
    over its members' generations)."""
    groups = out.get("group_subtasks") or {}
    stats = {}
    for spec in specs:
        rows = [row for leaf in _leaf_tasks(spec.name, groups) for row in log_.get(leaf, ())]
        if rows:
            stats[spec.name] = GenerationStats.of(rows)
    return stats


def evaluate_capabilities(
    model: Any,
    tokenizer: Any,
    suite: str | Mapping[str, Any] | Suite,
    *,
    limit: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    max_length: int | None = None,
    allow_code_execution: bool = False,
    perplexity: bool = False,
    shared_context: bool = True,
    items: bool = False,
    item_selection: ItemSelection = "first",
    item_seed: int = 0,
) -> CapabilityScores:
    """Score an in-memory causal LM on every task of ``suite``.

    ``limit`` caps the items of every task (a task's own ``limit`` applies when smaller): with
    ``item_selection="first"`` (lm-eval's ``limit``) its first N, with ``"random"`` a random N
    drawn with ``item_seed`` (:func:`~raysweep.evaluation.subsets.random_subset`, passed to
    lm-eval as ``samples``; a task the limit does not cut is scored whole either way). ``seed``
    seeds Python, NumPy, torch and the few-shot sampler, so every call sees the same items and
    examples (paired comparison of pruned variants); the caller's global RNG state is restored.
    No request cache is used. With ``perplexity=True`` the held-out perplexity on
    ``suite.perplexity_corpus`` is recorded beside the task scores. As with the lm-eval CLI, a
    tokenizer without a pad token gets one assigned (its unk or eos token).

    With ``items=True`` lm-eval logs its samples and the result's ``items`` holds, per task, each
    item's ``doc_id`` and primary-metric value, whose mean is the task's score (a group's items
    are its members', see :class:`~raysweep.evaluation.scoring.TaskItems`). A task whose score is
    not the mean of per-item values (a corpus-level metric, a group not weighted by size) is left
    out of ``items``, with a warning. Without it no samples are logged and ``items`` is None.

    With ``shared_context`` (the default) multiple-choice requests are scored by
    ``SharedContextHFLM``: each context once for all its choices, tokenization reused across
    calls in a process; the scores are lm-eval's HFLM scores (to float rounding). False uses
    lm-eval's HFLM scoring itself.

    Generation (``generate_until``) is lm-eval's, greedy as each task configures it; the
    result's ``generation`` holds, per generative task, the mean generated length and the share
    of generations cut by ``max_gen_toks`` (:class:`~raysweep.evaluation.scoring.GenerationStats`).

    Raises ValueError before any work when the suite runs model-written code and
    ``allow_code_execution`` is False, or names a task lm-eval does not know.
    """
    if item_selection not in ("random", "first"):
        raise ValueError(f"item_selection must be 'random' or 'first', got {item_selection!r}")
    suite = validate_suite(suite, allow_code_execution=allow_code_execution)
    length = resolve_max_length(model, tokenizer, max_length)
    manager = _manager_for(suite)
    runs_code = bool(suite.unsafe_tasks) or any(
        _declared_unsafe(manager, n) for n in suite.task_names
    )

    from lm_eval import simple_evaluate

    lm_class = _shared_context_lm_class() if shared_context else _generation_lm_class()
    _env_report_once()
    was_training = getattr(model, "training", False)
    task_scores: dict[str, float] = {}
    task_items: dict[str, TaskItems] = {}
    generation: dict[str, GenerationStats] = {}
    try:
        with _preserved_rng(), _code_execution_env(allow_code_execution and runs_code):
            lm = lm_class(
                pretrained=model, tokenizer=tokenizer, max_length=length, batch_size=batch_size
            )
            for (task_limit, fewshot, budget), specs in _batches(suite, limit).items():
                tasks: list[Any] = [s.name for s in specs]
                samples = None
                if (
                    item_selection == "random"
                    and task_limit is not None
                    and any(s.size is None or task_limit < s.size for s in specs)
                ):
                    tasks, samples = _random_items(manager, specs, task_limit, item_seed)
                    task_limit = None  # lm-eval takes a limit or samples, not both
                out = simple_evaluate(
                    model=lm,
                    tasks=tasks,
                    num_fewshot=fewshot,
                    # lm-eval applies it to generate_until tasks only, as --gen_kwargs does.
                    gen_kwargs=None if budget is None else {"max_gen_toks": budget},
                    limit=task_limit,
                    samples=samples,
                    task_manager=manager,
                    use_cache=None,
                    cache_requests=False,
                    log_samples=items,
                    bootstrap_iters=0,
                    random_seed=seed,
                    numpy_random_seed=seed,
                    torch_random_seed=seed,
                    fewshot_random_seed=seed,
                    confirm_run_unsafe_code=allow_code_execution,
                )
                if out is None:  # non-zero rank of a distributed launch
                    raise RuntimeError("lm-eval returned no results on this rank")
                scores = _read_scores(out["results"], specs)
                task_scores.update(scores)
                if items:
                    for spec in specs:
                        found = _task_items(spec, out, scores[spec.name])
                        if found is not None:
                            task_items[spec.name] = found
                generation.update(_generation_stats(specs, out, lm.generation_log))
    finally:
        if hasattr(model, "train"):
            model.train(was_training)
    ppl = {}
    if perplexity:
        texts = heldout_texts(suite.perplexity_corpus)
        ppl[suite.perplexity_corpus] = heldout_perplexity(model, tokenizer, texts, seqlen=length)
    return make_scores(task_scores, suite, ppl, task_items if items else None, generation)


def evaluate_chunk(
    model: Any,
    tokenizer: Any,
    suite: str | Mapping[str, Any] | Suite,
    *,
    start: int,
    stop: int,
    limit: int | None = None,
    item_seed: int = 0,
    batch_size: int = 8,
    seed: int = 0,
    max_length: int | None = None,
    allow_code_execution: bool = False,
    shared_context: bool = True,
) -> dict[str, TaskItems]:
    """Per-item values of the items at positions ``[start, stop)`` of every task's seeded order
    (:mod:`raysweep.evaluation.rungs`), capped at the task's effective ``limit``: one chunk of an
    evaluation in rungs. A task (every member of a group) with no item there is absent.

    The chunks of ``0 < k1 < ... < full`` hold each item of the random-``limit`` evaluation
    (:func:`evaluate_capabilities` with ``item_selection="random"``) once, scored as it scores
    it when the suite is zero-shot: lm-eval draws few-shot examples from one stream in item
    order, so a few-shot task is refused (ValueError). A group is scored member by member, its
    items numbered as :class:`~raysweep.evaluation.scoring.TaskItems` says; a task whose score
    is not the mean of its per-item values cannot be scored in chunks (ValueError).
    """
    suite = validate_suite(suite, allow_code_execution=allow_code_execution)
    shots = [t.name for t in suite.tasks if t.num_fewshot != 0]
    if shots:
        raise ValueError(f"tasks {shots} are few-shot: they cannot be scored in chunks")
    length = resolve_max_length(model, tokenizer, max_length)
    manager = _manager_for(suite)
    runs_code = bool(suite.unsafe_tasks) or any(
        _declared_unsafe(manager, n) for n in suite.task_names
    )
    from lm_eval import simple_evaluate

    lm_class = _shared_context_lm_class() if shared_context else _generation_lm_class()
    _env_report_once()  # one call per rung: lm-eval's environment report would cost more
    was_training = getattr(model, "training", False)
    found: dict[str, TaskItems] = {}
    try:
        with _preserved_rng(), _code_execution_env(allow_code_execution and runs_code):
            lm = lm_class(
                pretrained=model, tokenizer=tokenizer, max_length=length, batch_size=batch_size
            )
            for budget, specs in _budgets(suite).items():
                members, samples, built = _chunk_samples(manager, specs, start, stop, limit,
                                                         item_seed)  # fmt: skip
                if not built:
                    continue
                out = simple_evaluate(
                    model=lm, tasks=built, num_fewshot=0, samples=samples,
                    gen_kwargs=None if budget is None else {"max_gen_toks": budget},
                    task_manager=manager, use_cache=None, cache_requests=False,
                    log_samples=True, bootstrap_iters=0, random_seed=seed,
                    numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed,
                    confirm_run_unsafe_code=allow_code_execution,
                )  # fmt: skip
                if out is None:  # non-zero rank of a distributed launch
                    raise RuntimeError("lm-eval returned no results on this rank")
                for spec in specs:
                    items = _chunk_items(spec, members[spec.name], out)
                    if items.values:
                        found[spec.name] = items
    finally:
        if hasattr(model, "train"):
            model.train(was_training)
    return found


def _budgets(suite: Suite) -> dict[int | None, list[TaskSpec]]:
    """Tasks by ``max_gen_toks``: lm-eval takes one per call (a zero-shot suite: no shots key)."""
    groups: dict[int | None, list[TaskSpec]] = {}
    for spec in suite.tasks:
        groups.setdefault(spec.max_gen_toks, []).append(spec)
    return groups


def _chunk_samples(
    manager: TaskManager, specs: list[TaskSpec], start: int, stop: int, limit: int | None,
    item_seed: int,
) -> tuple[dict[str, list[str]], dict[str, list[int]], list[Any]]:  # fmt: skip
    """Each task's leaves (a group's members in name order, as its items are numbered), the
    chunk's documents of each leaf that has any, and those leaves' built tasks."""
    from raysweep.evaluation.rungs import chunk_items

    loaded = manager.load([s.name for s in specs])
    tasks, groups = loaded["tasks"], loaded["groups"]
    links = loaded.get("group_map") or {}
    members, samples = {}, {}
    for spec in specs:
        leaves = sorted(set(_leaf_tasks(spec.name, links))) if spec.name in groups else [spec.name]
        members[spec.name] = leaves
        cap = effective_limit(spec, limit)
        end = stop if cap is None else min(stop, cap)
        for leaf in leaves:
            docs = chunk_items(leaf, len(tasks[leaf].eval_docs), start, end, item_seed)
            if docs:
                samples[leaf] = docs
    return members, samples, [tasks[leaf] for leaf in samples]


def _chunk_items(spec: TaskSpec, leaves: list[str], out: Mapping[str, Any]) -> TaskItems:
    """``spec``'s items of one chunk from lm-eval's logged samples, each leaf's checked to
    average to the leaf's score (a corpus-level metric does not: ValueError)."""
    metric, filter_key = spec.metric_key.split(",", 1)
    doc_ids: list[int] = []
    values: list[float] = []
    for position, leaf in enumerate(leaves):
        rows = [r for r in out["samples"].get(leaf, ()) if r.get("filter") == filter_key]
        if not rows:
            continue
        got = [(r.get("doc_id"), r.get(metric)) for r in rows]
        if not all(isinstance(i, int) and isinstance(v, int | float) for i, v in got):
            raise ValueError(f"task {spec.name!r}: {leaf} logs no per-item {metric} values")
        leaf_items = TaskItems(tuple(i for i, _ in got), tuple(float(v) for _, v in got))
        score = out["results"].get(leaf, {}).get(spec.metric_key)
        if (
            not isinstance(score, int | float)
            or abs(leaf_items.mean() - score) > ITEM_MEAN_TOLERANCE
        ):
            raise ValueError(f"task {spec.name!r}: the score of {leaf} is not the mean of its "
                             "per-item values, so it cannot be scored in chunks")  # fmt: skip
        offset = position * GROUP_DOC_STRIDE if len(leaves) > 1 or leaf != spec.name else 0
        doc_ids += [offset + i for i in leaf_items.doc_ids]
        values += leaf_items.values
    return TaskItems(tuple(doc_ids), tuple(values))


def prefetch_suite(
    suite: str | Mapping[str, Any] | Suite, *, perplexity: bool = False
) -> list[str]:
    """Download (into the Hugging Face cache) every dataset the suite's tasks read.

    Returns the names of the leaf tasks whose data is now cached. Run once per node while the Hub
    is reachable; trials then run with ``HF_HUB_OFFLINE=1``.
    """
    suite = validate_suite(suite, allow_code_execution=True)
    manager = _manager_for(suite)
    loaded: list[str] = []
    for name in suite.task_names:
        # Building a task object downloads its dataset; groups build every member.
        tasks = manager.load([name])["tasks"]
        loaded.extend(sorted(tasks))
    if perplexity:
        heldout_texts(suite.perplexity_corpus)
    return loaded


def lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


__all__ = [
    "code_execution_refusal",
    "evaluate_capabilities",
    "lm_eval_version",
    "prefetch_suite",
    "resolve_max_length",
    "validate_suite",
]
