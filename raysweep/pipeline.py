"""``run_trial(trial) -> TrialRecord``: load, calibrate, prune, evaluate, score. Plain Python.

Ray, Optuna and lm-eval stay out of this module; the evaluation adapter owns lm-eval.
"""

from __future__ import annotations

import datetime as _dt
import platform
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from raysweep.config import TrialConfig
from raysweep.records import TrialRecord

Stage = Callable[[str], None]


@dataclass(frozen=True)
class DenseBaseline:
    """The dense model's scores, computed once per sweep and handed to every trial."""

    task_scores: dict[str, float]
    dimension_scores: dict[str, float]
    cache_key: str
    perplexity: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_scores": self.task_scores,
            "dimension_scores": self.dimension_scores,
            "cache_key": self.cache_key,
            "perplexity": self.perplexity,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DenseBaseline:
        return cls(dict(d["task_scores"]), dict(d["dimension_scores"]), str(d["cache_key"]),
                   dict(d.get("perplexity", {})))  # fmt: skip


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("raysweep", "torch", "transformers", "lm_eval", "ray"):
        try:
            out[pkg] = version(pkg.replace("_", "-"))
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def _peak_host_bytes() -> int:
    # ru_maxrss is KiB on Linux; it is the process high-water mark (workers are reused, so it
    # is monotone across trials of one worker: the record states what the worker needed).
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def trial_device(trial: TrialConfig) -> torch.device:
    from raysweep.models import resolve_device

    return resolve_device(trial.model.device, want_gpu=trial.resources.gpu > 0)


def dense_key(trial: TrialConfig) -> str:
    """The evaluation cache's key for the trial's dense baseline (model, suite, limit, seed, …)."""
    from raysweep.evaluation import dense_cache_key
    from raysweep.models import model_fingerprint

    ev = trial.evaluation
    return dense_cache_key(model_fingerprint(trial.model), trial.model.revision, ev.suite,
                           ev.limit, ev.seed, max_length=ev.max_length,
                           perplexity=ev.perplexity)  # fmt: skip


def _baseline(scores: Any, key: str) -> DenseBaseline:
    return DenseBaseline(dict(scores.task_scores), dict(scores.dimension_scores), key,
                         dict(scores.perplexity))  # fmt: skip


def dense_baseline(trial: TrialConfig, cache_dir: str | Path | None = None) -> DenseBaseline:
    """Score the dense model on the trial's suite (cached on disk per model/suite/limit/seed)."""
    from raysweep.evaluation import dense_baseline as _cached_dense
    from raysweep.evaluation import get_suite, load_dense_baseline
    from raysweep.models import load_dense, model_fingerprint

    key = dense_key(trial)
    hit = load_dense_baseline(key, cache_dir)
    if hit is not None:  # no need to load the model at all
        return _baseline(hit, key)
    torch.set_num_threads(trial.resources.torch_threads)
    device = trial_device(trial)
    loaded = load_dense(trial.model, device)
    ev = trial.evaluation
    scores, key = _cached_dense(
        loaded.model,
        loaded.tokenizer,
        get_suite(ev.suite),
        model_id=model_fingerprint(trial.model),
        revision=trial.model.revision,
        limit=ev.limit,
        seed=ev.seed,
        batch_size=ev.batch_size,
        max_length=ev.max_length,
        allow_code_execution=ev.allow_code_execution,
        perplexity=ev.perplexity,
        cache_dir=cache_dir,
    )
    return _baseline(scores, key)


def _calibrate(trial: TrialConfig, loaded: Any, extra: Mapping[str, Any]) -> torch.Tensor:
    from raysweep.calibration import build_calibration_set

    return build_calibration_set(
        loaded.tokenizer,
        trial.mix,
        trial.n_samples,
        trial.seqlen,
        trial.seed,
        model=loaded.model,
        extra_sources=extra,
    )


def _oneshot_statistics(
    trial: TrialConfig, loaded: Any, extra: Mapping[str, Any], device: torch.device
) -> Any:
    """Per-source statistics (cached on disk) combined in the mix's sample proportions."""
    from raysweep.calibration import allocate_counts
    from raysweep.statistics_cache import source_statistics

    counts = allocate_counts(trial.mix, trial.n_samples)
    parts = {
        source_statistics(trial, loaded, source, count, extra, device): count / trial.n_samples
        for source, count in counts.items()
        if count > 0
    }
    from raysweep.pruning import LayerStatistics

    return LayerStatistics.combine(parts)


def run_trial(
    trial: TrialConfig,
    dense: DenseBaseline,
    *,
    stage: Stage = lambda s: None,
    attempts: int = 1,
) -> TrialRecord:
    """Run one trial end to end and return its record (exceptions propagate to the caller)."""
    from raysweep.calibration import information_metrics, sources_from_specs
    from raysweep.evaluation import evaluate_capabilities, get_suite, score_retention
    from raysweep.models import load_dense
    from raysweep.pruning import prune_model

    started = _now()
    t_all = time.perf_counter()
    torch.set_num_threads(trial.resources.torch_threads)
    device = trial_device(trial)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    suite = get_suite(trial.evaluation.suite)

    stage("loading model")
    t0 = time.perf_counter()
    loaded = load_dense(trial.model, device)
    t_load = time.perf_counter() - t0

    stage("calibrating")
    t0 = time.perf_counter()
    extra = sources_from_specs(trial.custom_sources)
    calib = _calibrate(trial, loaded, extra)
    # The one-shot path exists to skip calibration forward passes, perplexity's included.
    metrics = information_metrics(calib, model=None if trial.mode == "oneshot" else loaded.model)
    t_cal = time.perf_counter() - t0

    stage(f"pruning ({trial.method}, {trial.structure}, {trial.sparsity:g})")
    t0 = time.perf_counter()
    options = (
        {"damp": trial.damp, "block_size": trial.block_size} if trial.method == "sparsegpt" else {}
    )
    prune_device = torch.device(trial.pruning_device) if trial.pruning_device else device
    if trial.mode == "oneshot":
        stats = _oneshot_statistics(trial, loaded, extra, prune_device)
        report = prune_model(
            loaded.model, None, trial.method, trial.sparsity, structure=trial.structure,
            mode="oneshot", device=prune_device, statistics=stats, **options,
        )  # fmt: skip
    else:
        report = prune_model(
            loaded.model, calib, trial.method, trial.sparsity, structure=trial.structure,
            mode="sequential", device=prune_device, **options,
        )  # fmt: skip
    t_prune = time.perf_counter() - t0

    stage("evaluating")
    t0 = time.perf_counter()
    ev = trial.evaluation
    scores = evaluate_capabilities(
        loaded.model,
        loaded.tokenizer,
        suite,
        limit=ev.limit,
        batch_size=ev.batch_size,
        seed=ev.seed,
        max_length=ev.max_length,
        allow_code_execution=ev.allow_code_execution,
        perplexity=ev.perplexity,
    )
    t_eval = time.perf_counter() - t0

    from raysweep.evaluation import CapabilityScores

    dense_scores = CapabilityScores(dict(dense.task_scores), dict(dense.dimension_scores))
    ret = score_retention(scores, dense_scores, suite)
    peak = _peak_host_bytes()
    if device.type == "cuda":
        peak = max(peak, int(torch.cuda.max_memory_allocated(device)))
    stage("done")
    return TrialRecord(
        trial_id=trial.trial_id,
        sweep=trial.sweep,
        phase=trial.phase,
        status="ok",
        model=trial.model.path,
        method=trial.method,
        structure=trial.structure,
        sparsity=trial.sparsity,
        achieved_sparsity=float(report.achieved_sparsity),
        mix=dict(trial.mix),
        mix_name=trial.mix_name,
        n_samples=trial.n_samples,
        seqlen=trial.seqlen,
        seed=trial.seed,
        calib_metrics={k: float(v) for k, v in metrics.items()},
        task_scores=dict(scores.task_scores),
        dense_task_scores=dict(dense.task_scores),
        dimension_scores=dict(scores.dimension_scores),
        dense_dimension_scores=dict(dense.dimension_scores),
        perplexity=dict(scores.perplexity),
        dense_perplexity=dict(dense.perplexity),
        retention=dict(ret.retention),
        retention_above_chance=dict(ret.retention_above_chance),
        total_retention=ret.total_retention,
        worst_retention=ret.worst_retention,
        timings={
            "load_s": t_load,
            "calibrate_s": t_cal,
            "prune_s": t_prune,
            "eval_s": t_eval,
            "total_s": time.perf_counter() - t_all,
        },
        peak_memory_bytes=peak,
        host=platform.node(),
        device=str(device),
        dense_cache_key=dense.cache_key,
        versions=versions(),
        attempts=attempts,
        started_at=started,
        finished_at=_now(),
        config=trial.model_dump(mode="json"),
    )


def error_record(trial: TrialConfig, error: str, attempts: int) -> TrialRecord:
    """The record of a trial that failed on every attempt."""
    return TrialRecord(
        trial_id=trial.trial_id,
        sweep=trial.sweep,
        phase=trial.phase,
        status="error",
        error=error[-4000:],
        model=trial.model.path,
        method=trial.method,
        structure=trial.structure,
        sparsity=trial.sparsity,
        mix=dict(trial.mix),
        mix_name=trial.mix_name,
        n_samples=trial.n_samples,
        seqlen=trial.seqlen,
        seed=trial.seed,
        versions=versions(),
        attempts=attempts,
        finished_at=_now(),
        config=trial.model_dump(mode="json"),
    )
