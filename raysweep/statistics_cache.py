"""Per-source pruning statistics on disk: computed once per (model, source, seed, count, seqlen).

The one-shot fast path prunes a mix from a weighted combination of these, with no calibration
forward pass of its own. Files are written atomically, so trials on one node can share them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from raysweep.atomic import atomic_path
from raysweep.config import TrialConfig
from raysweep.paths import cache_dir


def statistics_path(trial: TrialConfig, source: str, count: int) -> Path:
    from raysweep.models import model_fingerprint

    key = {
        "model": model_fingerprint(trial.model),
        "dtype": trial.model.dtype,
        "source": source,
        "spec": trial.custom_sources.get(source),
        "seed": trial.seed,
        "count": count,
        "seqlen": trial.seqlen,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return cache_dir() / "statistics" / f"{source.replace('/', '_')[:40]}-{digest}.safetensors"


def source_statistics(
    trial: TrialConfig,
    loaded: Any,
    source: str,
    count: int,
    extra: Mapping[str, Any],
    device: torch.device,
) -> Any:
    """Statistics of ``count`` windows of one source (the same windows the mix would draw)."""
    from raysweep.calibration import build_calibration_set
    from raysweep.pruning import LayerStatistics, collect_statistics

    path = statistics_path(trial, source, count)
    if path.exists():
        return LayerStatistics.load(path)
    windows = build_calibration_set(
        loaded.tokenizer, {source: 1.0}, count, trial.seqlen, trial.seed,
        model=loaded.model, extra_sources=extra,
    )  # fmt: skip
    stats = collect_statistics(loaded.model, windows, device=device)
    with atomic_path(path) as tmp:
        stats.save(tmp)
    return stats
