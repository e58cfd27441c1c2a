"""Per-source pruning statistics for the one-shot fast path, built once per node and source.

A source's statistics come from ``n_samples`` windows of that source alone (the windows the
calibration builder draws for it; see ``calibration.build_calibration_set``), whatever the mix.
They are stored per (model fingerprint, revision, dtype, the source's calibration identity
(:func:`raysweep.calibration.cache.calibration_identity`: its spec and local files' content,
tokenizer, packing, seed, seqlen, n_samples), kind, store format) under
``<cache>/statistics/`` as a ``raysweep.pruning.store`` store, one file per decoder layer, so
that every mix of a sweep reuses them: a mix's statistics are the sources' per-token means weighted by the mix weights
(:class:`raysweep.pruning.MixedStatistics`, read one layer at a time by the one-shot prune).

Wanda trials store only diagonals (``sqnorm``) but read an existing complete Hessian store's
diagonals rather than build a second store; SparseGPT trials store Hessians; magnitude needs
none.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from raysweep.config import TrialConfig
from raysweep.paths import cache_dir

log = logging.getLogger(__name__)


def statistics_kind(trial: TrialConfig) -> str | None:
    """What the trial's one-shot prune reads from the stores: its method's statistics (the
    method table's row), or Wanda's where only OWL's allocation reads any (magnitude + OWL)."""
    from raysweep.pruning import METHOD_TABLE

    kind = METHOD_TABLE[trial.method].statistics
    return "sqnorm" if kind is None and trial.allocation == "owl" else kind


_BUILD_METHOD = {"sqnorm": "wanda", "hessian": "sparsegpt"}


def statistics_key(
    trial: TrialConfig, source: str, kind: str, tokenizer: Any, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """Everything a source's stored statistics depend on (and nothing of the mix): the model,
    and the source's calibration identity (the one the window cache keys on: a local file's
    content, the tokenizer, packing, seed, seqlen, count; ``extra``: the custom sources)."""
    from raysweep.calibration import get_source
    from raysweep.calibration.cache import calibration_identity
    from raysweep.models import model_spec_key
    from raysweep.pruning.store import STORE_FORMAT

    windows = calibration_identity(
        tokenizer, get_source(source, extra), trial.seqlen, trial.seed, trial.n_samples
    )
    return {
        "model": model_spec_key(trial.model),
        "revision": trial.model.revision,
        "dtype": trial.model.dtype,
        "source": source,
        "spec": trial.custom_sources.get(source),
        "calibration": windows,
        "kind": kind,
        "format": STORE_FORMAT,
    }


def store_path(key: Mapping[str, Any]) -> Path:
    """The store directory of the statistics of ``key`` (:func:`statistics_key`)."""
    from raysweep.pruning.store import key_digest

    digest = key_digest(key)[:20]
    source = str(key["source"])
    return cache_dir() / "statistics" / f"{source.replace('/', '_')[:40]}-{key['kind']}-{digest}"


def source_store(
    trial: TrialConfig,
    loaded: Any,
    source: str,
    kind: str,
    extra: Mapping[str, Any],
    device: torch.device,
) -> tuple[Any, bool]:
    """``(store, built)``: one source's statistics store, built now if the node has none.

    The build walks the layers once (dense activations) and writes each layer's statistics as
    soon as it is complete, under the store's node-wide lock. A ``sqnorm`` request is served by
    a complete Hessian store of the same source when there is one.
    """
    from raysweep.calibration import build_calibration_set
    from raysweep.pruning import find_decoder_stack, stream_statistics
    from raysweep.pruning.store import ensure_store, load_store

    layers = len(find_decoder_stack(loaded.model).layers)
    tokenizer = loaded.tokenizer
    if kind == "sqnorm":
        key = statistics_key(trial, source, "hessian", tokenizer, extra)
        hessians = load_store(store_path(key), key, "hessian", layers, warn=False)
        if hessians is not None:
            return hessians, False

    def build(sink: Any) -> None:
        started = time.perf_counter()
        windows = build_calibration_set(
            loaded.tokenizer, {source: 1.0}, trial.n_samples, trial.seqlen, trial.seed,
            model=loaded.model, extra_sources=extra,
        )  # fmt: skip
        stream_statistics(loaded.model, windows, sink, device, _BUILD_METHOD[kind])
        log.info("built %s statistics of %s in %.1f s", kind, source, time.perf_counter() - started)

    key = statistics_key(trial, source, kind, tokenizer, extra)
    return ensure_store(store_path(key), key, kind, build, layers)  # type: ignore[arg-type]


def mix_statistics(
    trial: TrialConfig, loaded: Any, extra: Mapping[str, Any], device: torch.device
) -> Any:
    """The per-layer statistics provider of the trial's mix for a one-shot prune (None for
    magnitude): each source's store, weighted by its mix weight, scaled to the trial's
    ``n_samples * seqlen`` tokens."""
    from raysweep.pruning import MixedStatistics

    kind = statistics_kind(trial)
    if kind is None:
        return None
    parts = {
        source_store(trial, loaded, source, kind, extra, device)[0]: weight
        for source, weight in sorted(trial.mix.items())
        if weight > 0
    }
    return MixedStatistics(parts, kind=kind, num_tokens=trial.n_samples * trial.seqlen)  # type: ignore[arg-type]
