"""The dense baseline: the unpruned model's scores on a suite, computed once and shared.

One entry per key (model weights, revision, suite and its task table, limit, seed, context
length, perplexity, lm-eval version, and the item selection where it picks items:
:func:`dense_key`), in one JSON layout
(``{"key": ..., "scores": {...}}`` plus provenance) wherever it is stored:

- the node-local cache, ``raysweep.paths.cache_dir() / "dense_baselines"``: filled by
  :func:`score_dense` under a per-key lock, so concurrent trials on a node evaluate the dense
  model once and the others wait for its result;
- the sweep's copy, ``<output_dir>/dense/<key>.json``: read or filled by the driver
  (:func:`sweep_baseline`) before any trial starts, and handed to every trial as a
  :class:`DenseBaseline`.

An entry evaluated since per-item values were kept holds them too (``scores.items``); the
driver writes them to the run's side file ``items/dense-<key>.json`` (:mod:`raysweep.items`) and
hands trials the baseline without them.

Plain Python: the driver passes in how to compute a missing baseline (a Ray task, see
``raysweep.trainables``); Ray stays out of this module. Sweep copies written in the older flat
layout (``task_scores``, ``dimension_scores``, ``perplexity``, ``cache_key``) still load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from raysweep.atomic import file_lock, write_json_atomic
from raysweep.config import EvaluationConfig, ModelConfig, TrialConfig
from raysweep.evaluation.dimensions import Suite, get_suite
from raysweep.evaluation.harness import evaluate_capabilities, lm_eval_version
from raysweep.evaluation.scoring import CapabilityScores
from raysweep.evaluation.subsets import selection_key

log = logging.getLogger(__name__)

SWEEP_DIR = "dense"  # the sweep's copy, under its output directory


def evaluate(
    model: Any, tokenizer: Any, suite: Suite | str, ev: EvaluationConfig, *, items: bool = False
) -> CapabilityScores:
    """Scores of ``model`` on ``suite`` with an :class:`EvaluationConfig`'s settings: the one
    evaluation that dense baselines, trials and the command-line tools share. ``items``: keep
    each task's per-item values too (``CapabilityScores.items``)."""
    return evaluate_capabilities(
        model,
        tokenizer,
        suite,
        limit=ev.limit,
        batch_size=ev.batch_size,
        seed=ev.seed,
        max_length=ev.max_length,
        allow_code_execution=ev.allow_code_execution,
        perplexity=ev.perplexity,
        items=items,
        item_selection=ev.item_selection,
        item_seed=ev.item_seed,
    )


def evaluate_between(
    model: Any,
    tokenizer: Any,
    suite: Suite | str | Mapping[str, Any],
    ev: EvaluationConfig,
    start: int,
    stop: int,
) -> dict[str, Any]:
    """Per-item values (``TaskItems`` per task) of the items at positions ``[start, stop)`` of
    each task's seeded order, with :func:`evaluate`'s settings: one chunk of an evaluation in
    rungs (:mod:`raysweep.evaluation.rungs`), its items those :func:`evaluate` scores."""
    from raysweep.evaluation.harness import evaluate_chunk

    return evaluate_chunk(model, tokenizer, suite, start=start, stop=stop, limit=ev.limit,
                          item_seed=ev.item_seed, batch_size=ev.batch_size, seed=ev.seed,
                          max_length=ev.max_length,
                          allow_code_execution=ev.allow_code_execution)  # fmt: skip


@dataclass(frozen=True)
class DenseBaseline:
    """The dense model's scores and the key they are cached under (recorded with every trial)."""

    key: str
    scores: CapabilityScores

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "scores": self.scores.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DenseBaseline:
        """An entry of either layout: ``{"key", "scores"}`` or the older flat one."""
        if "scores" in data:
            return cls(str(data["key"]), CapabilityScores.from_dict(data["scores"]))
        return cls(str(data["cache_key"]), CapabilityScores.from_dict(data))

    def without_items(self) -> DenseBaseline:
        """The baseline without per-item values: what trials are handed (they need the scores
        only, and Tune copies a trial's config into its state)."""
        return DenseBaseline(self.key, self.scores.without_items())


# --------------------------------------------------------------------------- the key


def dense_cache_key(
    model_id: str,
    revision: str | None,
    suite: str | Mapping[str, Any] | Suite,
    limit: int | None,
    seed: int,
    *,
    max_length: int | None = None,
    perplexity: bool = False,
    item_selection: str = "first",
    item_seed: int = 0,
) -> str:
    """A readable, filesystem-safe key; its hash also covers the suite's full task table.

    The item selection is part of it where it picks items (random subsets of the tasks a limit
    cuts, ``--limit40-random<seed>``); elsewhere the key is the one it always was."""
    suite = get_suite(suite)
    selection = selection_key(suite, limit, item_selection, item_seed)
    payload = {
        "model_id": model_id,
        "revision": revision,
        "suite": suite.fingerprint(),
        "limit": limit,
        "seed": seed,
        "max_length": max_length,
        "perplexity": perplexity,
        "lm_eval": lm_eval_version(),
        **selection,
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
    model_slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("_")[-60:] or "model"
    rev_slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(revision))[:40]
    items = f"-random{item_seed}" if selection else ""
    return f"{model_slug}@{rev_slug}--{suite.name}--limit{limit}{items}--seed{seed}--{digest}"


def dense_key(model: ModelConfig, evaluation: EvaluationConfig) -> str:
    """The key of ``model``'s dense baseline on ``evaluation``'s suite and settings."""
    from raysweep.models import model_spec_key

    ev = evaluation
    return dense_cache_key(model_spec_key(model), model.revision, ev.suite, ev.limit, ev.seed,
                           max_length=ev.max_length, perplexity=ev.perplexity,
                           item_selection=ev.item_selection, item_seed=ev.item_seed)  # fmt: skip


# --------------------------------------------------------------------------- stored entries


def default_cache_dir() -> Path:
    from raysweep.paths import cache_dir

    return cache_dir() / "dense_baselines"


def _entry_path(directory: Path, key: str) -> Path:
    return directory / f"{key}.json"


def read_baseline(
    key: str, directory: str | Path | None = None, *, items: bool = False
) -> DenseBaseline | None:
    """The entry under ``key`` in ``directory`` (default: the node-local cache), or None when it
    is absent or unreadable, or (with ``items``) when it holds no per-item values: an entry
    written before they were kept counts as missing there, and is scored again."""
    path = _entry_path(Path(directory) if directory else default_cache_dir(), key)
    if not path.is_file():
        return None
    try:
        baseline = DenseBaseline.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        log.warning("ignoring unreadable dense baseline %s (%s)", path, err)
        return None
    if items and baseline.scores.items is None:
        log.info("dense baseline %s has no per-item values: scoring it again", path)
        return None
    return baseline


def write_baseline(
    directory: Path, baseline: DenseBaseline, provenance: Mapping[str, Any] | None = None
) -> Path:
    """Store ``baseline`` (atomically: readers see the old file or the whole new one)."""
    path = _entry_path(directory, baseline.key)
    write_json_atomic(path, {**(provenance or {}), **baseline.to_dict()})
    return path


# --------------------------------------------------------------------------- scoring


def score_dense(
    model: Any,
    tokenizer: Any,
    spec: ModelConfig,
    evaluation: EvaluationConfig,
    *,
    cache_dir: str | Path | None = None,
    items: bool = False,
) -> DenseBaseline:
    """The loaded dense ``model``'s baseline: read from ``cache_dir`` (default: the node-local
    cache), else evaluated once under the key's lock and stored there. An evaluation keeps the
    per-item values, so the entry serves callers that need them (``items``: an entry without
    them is evaluated again and replaced)."""
    from raysweep.models import model_spec_key

    ev = evaluation
    key = dense_key(spec, ev)
    directory = Path(cache_dir) if cache_dir else default_cache_dir()
    cached = read_baseline(key, directory, items=items)
    if cached is not None:
        log.info("dense baseline %s: reused from %s", key, directory)
        return cached
    with file_lock(directory / f".{key}.lock"):
        # another trial may have finished it meanwhile
        cached = read_baseline(key, directory, items=items)
        if cached is not None:
            log.info("dense baseline %s: reused from %s", key, directory)
            return cached
        suite = get_suite(ev.suite)
        start = time.perf_counter()
        scores = evaluate(model, tokenizer, suite, ev, items=True)
        elapsed = time.perf_counter() - start
        baseline = DenseBaseline(key, scores)
        write_baseline(directory, baseline, {
            "model_id": model_spec_key(spec), "revision": spec.revision, "suite": suite.name,
            "suite_fingerprint": suite.fingerprint(), "limit": ev.limit, "seed": ev.seed,
            "max_length": ev.max_length,
            **selection_key(suite, ev.limit, ev.item_selection, ev.item_seed), "eval_s": elapsed,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        })  # fmt: skip
        log.info("dense baseline %s: evaluated in %.1f s", key, elapsed)
    return baseline


def dense_baseline(
    trial: TrialConfig,
    cache_dir: str | Path | None = None,
    *,
    keep_pristine: bool | None = None,
    items: bool = False,
) -> DenseBaseline:
    """The dense baseline of ``trial``'s model on its suite; the model is loaded only when the
    node-local cache misses (with ``items``: or holds no per-item values). ``keep_pristine`` is
    ``models.load_dense``'s (default: whether trials share a worker, ``models.reuses_actors``)."""
    import torch

    from raysweep.models import load_dense, reuses_actors, trial_device

    hit = read_baseline(dense_key(trial.model, trial.evaluation), cache_dir, items=items)
    if hit is not None:
        return hit
    torch.set_num_threads(trial.resources.torch_threads)
    if keep_pristine is None:
        keep_pristine = reuses_actors(trial.resources)
    loaded = load_dense(trial.model, trial_device(trial), keep_pristine=keep_pristine)
    return score_dense(loaded.model, loaded.tokenizer, trial.model, trial.evaluation,
                       cache_dir=cache_dir, items=items)  # fmt: skip


# --------------------------------------------------------------------------- the sweep's copy


def check_sweep_copy(out: Path, key: str) -> str | None:
    """Why the sweep's copy ``out/dense/<key>.json`` cannot be trusted, or None: it must exist,
    parse, be ``key``'s, hold per-item values, and each task's values must average to its score
    (:func:`raysweep.items.check_mean`, the side files' own check)."""
    from raysweep.items import check_mean, read_json_checked

    data, why = read_json_checked(_entry_path(out / SWEEP_DIR, key))
    if why is not None:
        return why
    try:
        baseline = DenseBaseline.from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"not a dense baseline ({type(exc).__name__}: {exc})"
    if baseline.key != key:
        return f"it is the dense baseline of {baseline.key!r}"
    if baseline.scores.items is None:
        return "it holds no per-item values"
    try:
        for task, items in baseline.scores.items.items():
            check_mean(task, items.values, baseline.scores.task_scores)
    except (ValueError, ZeroDivisionError) as exc:
        return str(exc) or "a task has no items"
    return None


def sweep_baseline(
    point: TrialConfig, out: Path, compute: Callable[[TrialConfig], DenseBaseline]
) -> DenseBaseline:
    """The sweep's dense baseline for ``point``: read from ``out/dense/<key>.json``, else
    ``compute(point)`` (the driver's Ray task, which must return per-item values) and stored
    there; its per-item values are written to ``out/items/dense-<key>.json`` (raysweep.items).

    The file is named by the node-local cache's own key, so the sweep's copy and the cache the
    task consults can never disagree about what they hold. A copy written before per-item values
    were kept is computed again (and a warning names any task whose score changed: the records
    written before kept the old ones), and so is a copy that fails :func:`check_sweep_copy`
    (unreadable, or values that do not average to the scores). Returns the baseline without its
    per-item values, as trials are handed it.
    """
    directory = out / SWEEP_DIR
    key = dense_key(point.model, point.evaluation)
    broken = check_sweep_copy(out, key)
    dense = None if broken else read_baseline(key, directory, items=True)
    if dense is not None:
        print(f"[raysweep] dense baseline: reused {key}.json", flush=True)
    else:
        older = read_baseline(key, directory)
        if broken == "missing":
            print("[raysweep] dense baseline: evaluating the dense model once", flush=True)
        elif older is not None and older.scores.items is None:
            print(f"[raysweep] dense baseline: {key}.json has no per-item scores; evaluating "
                  "the dense model again", flush=True)  # fmt: skip
        else:
            older = None  # its scores are not to be compared with anything
            print(f"[raysweep] dense baseline: {SWEEP_DIR}/{key}.json is broken ({broken}); "
                  "computing it again", flush=True)  # fmt: skip
        dense = compute(point)
        if dense.scores.items is None:
            raise ValueError(f"dense baseline {key}: computed without per-item values")
        if older is not None:
            _warn_changed(key, older.scores.task_scores, dense.scores.task_scores)
        write_baseline(directory, dense)
    _write_dense_items(out, dense, get_suite(point.evaluation.suite))
    warn_at_chance(point, dense.scores.dimension_scores)
    return dense.without_items()


def _write_dense_items(out: Path, dense: DenseBaseline, suite: Suite) -> None:
    """``items/dense-<key>.json``, unless the same bytes are there already."""
    from raysweep.items import dense_items_path, dense_payload, dumps, write_items

    payload = dense_payload(dense.key, dense.scores, suite)
    path = dense_items_path(out, dense.key)
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8") == dumps(payload):
            return
    write_items(out, payload)


def _warn_changed(key: str, old: Mapping[str, float], new: Mapping[str, float]) -> None:
    changed = sorted(t for t in new if t in old and abs(new[t] - old[t]) > 1e-9)
    if changed:
        print(f"[raysweep] WARNING: dense baseline {key} scored again differs on "
              f"{', '.join(f'{t} ({old[t]:.4f} -> {new[t]:.4f})' for t in changed)}; records "
              "written before keep the old dense scores", file=sys.stderr, flush=True)  # fmt: skip


def warn_at_chance(point: TrialConfig, dense_scores: Mapping[str, float]) -> None:
    """A dimension the dense model scores at chance has no retention: say so, loudly."""
    suite = get_suite(point.evaluation.suite)
    lost = [d for d in suite.dimensions if dense_scores.get(d, 0.0) <= suite.chance(d)]
    for dim in lost:
        print(f"[raysweep] WARNING: the dense model scores {dense_scores.get(dim, 0.0):.3f} on "
              f"{dim}, at or below chance ({suite.chance(dim):.3f}): {dim} retention is "
              "undefined in every trial, and total/worst retention cover only "
              f"{', '.join(d for d in suite.dimensions if d not in lost) or 'no dimension'} "
              "(raise evaluation.limit or use a model that can do the task)",
              file=sys.stderr, flush=True)  # fmt: skip
