"""The dense model's scores, computed once per (model, revision, suite, limit, seed) and reused.

Entries are JSON files named by their cache key. Writes are atomic (temporary file + rename) and a
per-key lock file serialises concurrent trials on one node, so only the first trial evaluates the
dense model and the others wait for its result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from raysweep.evaluation._files import atomic_write_json, file_lock
from raysweep.evaluation.dimensions import Suite, get_suite
from raysweep.evaluation.harness import evaluate_capabilities, lm_eval_version
from raysweep.evaluation.scoring import CapabilityScores

log = logging.getLogger(__name__)


def default_baseline_dir() -> Path:
    from raysweep.paths import cache_dir

    return cache_dir() / "dense_baselines"


def dense_cache_key(
    model_id: str,
    revision: str | None,
    suite: str | Mapping[str, Any] | Suite,
    limit: int | None,
    seed: int,
    *,
    max_length: int | None = None,
    perplexity: bool = False,
) -> str:
    """A readable, filesystem-safe key; its hash also covers the suite's full task table."""
    suite = get_suite(suite)
    payload = {
        "model_id": model_id,
        "revision": revision,
        "suite": suite.fingerprint(),
        "limit": limit,
        "seed": seed,
        "max_length": max_length,
        "perplexity": perplexity,
        "lm_eval": lm_eval_version(),
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
    model_slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("_")[-60:] or "model"
    rev_slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(revision))[:40]
    return f"{model_slug}@{rev_slug}--{suite.name}--limit{limit}--seed{seed}--{digest}"


def _entry_path(directory: Path, key: str) -> Path:
    return directory / f"{key}.json"


def load_dense_baseline(key: str, cache_dir: str | Path | None = None) -> CapabilityScores | None:
    """The cached dense scores under ``key``, or None when absent or unreadable."""
    path = _entry_path(Path(cache_dir) if cache_dir else default_baseline_dir(), key)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return CapabilityScores.from_dict(data["scores"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("ignoring unreadable dense baseline %s (%s)", path, err)
        return None


def dense_baseline(
    model: Any,
    tokenizer: Any,
    suite: str | Mapping[str, Any] | Suite,
    *,
    model_id: str,
    revision: str | None,
    limit: int | None,
    seed: int,
    cache_dir: str | Path | None = None,
    mirror_dirs: Sequence[str | Path] = (),
    batch_size: int = 8,
    max_length: int | None = None,
    allow_code_execution: bool = False,
    perplexity: bool = False,
) -> tuple[CapabilityScores, str]:
    """Dense scores and their cache key: read from ``cache_dir`` (or a mirror), else evaluated once.

    ``mirror_dirs`` (e.g. the sweep's shared storage) are searched after ``cache_dir`` and receive a
    copy of a newly computed entry. The key is recorded with every trial (``dense_cache_key``).
    """
    suite = get_suite(suite)
    key = dense_cache_key(
        model_id, revision, suite, limit, seed, max_length=max_length, perplexity=perplexity
    )
    primary = Path(cache_dir) if cache_dir else default_baseline_dir()
    mirrors = [Path(d) for d in mirror_dirs]

    def lookup() -> CapabilityScores | None:
        for directory in (primary, *mirrors):
            found = load_dense_baseline(key, directory)
            if found is not None:
                log.info("dense baseline %s: reused from %s", key, directory)
                return found
        return None

    cached = lookup()
    if cached is not None:
        return cached, key
    with file_lock(primary / f".{key}.lock"):
        cached = lookup()  # another trial may have finished it while we waited
        if cached is not None:
            return cached, key
        start = time.perf_counter()
        scores = evaluate_capabilities(
            model,
            tokenizer,
            suite,
            limit=limit,
            batch_size=batch_size,
            seed=seed,
            max_length=max_length,
            allow_code_execution=allow_code_execution,
            perplexity=perplexity,
        )
        elapsed = time.perf_counter() - start
        entry = {
            "key": key,
            "model_id": model_id,
            "revision": revision,
            "suite": suite.name,
            "suite_fingerprint": suite.fingerprint(),
            "limit": limit,
            "seed": seed,
            "max_length": max_length,
            "eval_s": elapsed,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "scores": scores.to_dict(),
        }
        for directory in (primary, *mirrors):
            atomic_write_json(_entry_path(directory, key), entry)
        log.info("dense baseline %s: evaluated in %.1f s", key, elapsed)
    return scores, key
