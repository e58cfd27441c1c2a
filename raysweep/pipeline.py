"""``run_trial(trial) -> TrialRecord``: load, calibrate, prune, evaluate, score. Plain Python.

``run_trial_with_items`` also returns the trial's per-item scores, as a sweep's side file.

Ray, Optuna and lm-eval stay out of this module; the evaluation adapter owns lm-eval.
"""

from __future__ import annotations

import datetime as _dt
import platform
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from raysweep.config import TrialConfig
from raysweep.dense import DenseBaseline, evaluate
from raysweep.models import trial_device
from raysweep.records import TrialRecord

Stage = Callable[[str], None]


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


def _peak_device_bytes(device: torch.device) -> int | None:
    """CUDA's allocation high-water mark on ``device`` since its last reset; None off CUDA."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.max_memory_allocated(device))


# PruneReport phases -> record timing keys ("prune" there is the per-layer sparsify step).
_PRUNE_PHASES = {"capture": "capture_s", "statistics": "statistics_s", "prune": "sparsify_s",
                 "propagate": "propagate_s"}  # fmt: skip


def _trial_timings(
    stages: Mapping[str, float],
    prune_s: float,
    report: Any,
    total_s: float,
    *,
    statistics_before_prune: bool,
) -> dict[str, float]:
    """The record's ``timings``: stage totals and the pruning stage's phases, in seconds.

    ``load_s``, ``calibrate_s`` (building the set and its metrics), ``prune_s`` and ``eval_s``
    cover the trial's stages; ``calib_metrics_s`` is the metrics' share of ``calibrate_s``
    (perplexity's forward passes included); ``capture_s``, ``statistics_s``, ``sparsify_s`` and
    ``propagate_s`` are ``prune_model``'s phases. With ``statistics_before_prune`` (one-shot
    with statistics: the per-source statistics are read or built before ``prune_model``),
    ``statistics_s`` also counts the time the pruning stage spent outside ``prune_model``.
    """
    out = {f"{name}_s": stages[name] for name in ("load", "calibrate", "calib_metrics")
           if name in stages}  # fmt: skip
    out["prune_s"] = prune_s
    phases = dict(report.timings)
    inside = phases.pop("total", prune_s)
    for name, seconds in phases.items():
        key = _PRUNE_PHASES.get(name, f"{name}_s")
        out[key if key not in out else f"prune_{key}"] = seconds
    if statistics_before_prune:
        out["statistics_s"] = out.get("statistics_s", 0.0) + max(0.0, prune_s - inside)
    out.update({f"{name}_s": seconds for name, seconds in stages.items() if f"{name}_s" not in out})
    out["total_s"] = total_s
    return out


def _reads_statistics(trial: TrialConfig) -> bool:
    from raysweep.calibration_statistics import statistics_kind

    return statistics_kind(trial) is not None


def method_options(trial: TrialConfig) -> dict[str, Any]:
    """The keyword options ``prune_model`` takes for the trial's method (its row of the method
    table names them; the trial config holds every method's under the same names)."""
    from raysweep.pruning import METHOD_TABLE

    return {name: getattr(trial, name) for name in METHOD_TABLE[trial.method].option_names}


def allocation_options(trial: TrialConfig) -> dict[str, Any]:
    """The keyword options ``prune_model`` takes for the trial's layer-wise allocation and mask
    refinement."""
    return {
        "allocation": trial.allocation, "owl_m": trial.owl_m, "owl_lambda": trial.owl_lambda,
        "refine": trial.refine, "dsnot_cycles": trial.dsnot_cycles,
        "dsnot_threshold": trial.dsnot_threshold,
    }  # fmt: skip


def _route(model: Any, calibration: torch.Tensor, device: torch.device) -> None:
    """One dense forward of the decoder body over the calibration windows, for the routers'
    decisions alone (the expert-coverage metrics of MoE models)."""
    from raysweep.pruning import default_batch_size

    body = model.get_decoder() if hasattr(model, "get_decoder") else model
    step = default_batch_size(calibration.shape[1], device)
    with torch.no_grad():
        for start in range(0, calibration.shape[0], step):
            body(input_ids=calibration[start : start + step].to(device), use_cache=False)


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
    """The mix's statistics for a one-shot prune, read one layer at a time from per-source
    stores built once per node (None for magnitude, which needs none)."""
    from raysweep.calibration_statistics import mix_statistics

    return mix_statistics(trial, loaded, extra, device)


@dataclass
class PrunedTrial:
    """A trial's model after calibration and pruning, with what was measured on the way."""

    loaded: Any  # models.LoadedModel, pruned in place
    device: torch.device  # where the model lives
    prune_device: torch.device  # where each decoder layer was computed
    calibration: torch.Tensor  # (n_samples, seqlen) token ids
    metrics: dict[str, float]  # the calibration set's information metrics
    expert_tokens: list[list[int]] | None  # MoE: dense routers' tokens per (layer, expert)
    report: Any  # pruning.PruneReport
    timer: Any  # pruning.driver.PhaseTimer: load, calibrate, calib_metrics
    prune_s: float
    peak_before_prune: int | None  # CUDA peak before prune_model resets the counter

    def timings(self, trial: TrialConfig, total_s: float) -> dict[str, float]:
        """Seconds per stage and per pruning phase, as a record's ``timings``; stages timed on
        ``timer`` after pruning (evaluation) are included."""
        return _trial_timings(
            self.timer.seconds,
            self.prune_s,
            self.report,
            total_s,
            statistics_before_prune=trial.mode == "oneshot" and _reads_statistics(trial),
        )


def prune_trial(
    trial: TrialConfig,
    *,
    stage: Stage = lambda s: None,
    progress: Callable[[int, int], None] | None = None,
    keep_pristine: bool | None = None,
) -> PrunedTrial:
    """Load the dense model, build and measure the trial's calibration set, and prune.

    ``progress(done, num_layers)`` is called after each decoder layer is pruned. ``keep_pristine``
    (default: whether trials share a worker, ``models.reuses_actors``) keeps a CPU copy of the
    dense weights for the next load in this process.
    """
    from raysweep.calibration import sources_from_specs
    from raysweep.models import reuses_actors
    from raysweep.pruning.driver import PhaseTimer

    timer = PhaseTimer()
    torch.set_num_threads(trial.resources.torch_threads)
    device = trial_device(trial)
    keep = reuses_actors(trial.resources) if keep_pristine is None else keep_pristine
    extra = sources_from_specs(trial.custom_sources)

    loaded = _load_stage(trial, device, keep, timer, stage)
    calib, metrics, expert_tokens = _calibration_stage(trial, loaded, extra, device, timer, stage)
    peak_before_prune = _peak_device_bytes(device)  # prune_model resets CUDA's peak counter
    prune_device = torch.device(trial.pruning_device) if trial.pruning_device else device
    report = _prune_stage(trial, loaded, calib, extra, prune_device, timer, stage, progress)
    return PrunedTrial(loaded=loaded, device=device, prune_device=prune_device,
                       calibration=calib, metrics=metrics, expert_tokens=expert_tokens,
                       report=report, timer=timer, prune_s=timer.seconds["prune"],
                       peak_before_prune=peak_before_prune)  # fmt: skip


def _load_stage(trial: TrialConfig, device: torch.device, keep_pristine: bool, timer: Any,
                stage: Stage) -> Any:  # fmt: skip
    from raysweep.models import load_dense

    stage("loading model")
    with timer.phase("load"):
        return load_dense(trial.model, device, keep_pristine=keep_pristine)


def _calibration_stage(
    trial: TrialConfig, loaded: Any, extra: Mapping[str, Any], device: torch.device, timer: Any,
    stage: Stage,
) -> tuple[torch.Tensor, dict[str, float], list[list[int]] | None]:  # fmt: skip
    """The calibration set, its information metrics and (MoE) the dense routers' token counts
    per (layer, expert) on it."""
    from raysweep.calibration import information_metrics
    from raysweep.pruning.experts import counting_routed_tokens

    stage("calibrating")
    with timer.phase("calibrate"):
        calib = _calibrate(trial, loaded, extra)
        with timer.phase("calib_metrics"):
            # The one-shot path exists to skip calibration forward passes, perplexity's included.
            scorer = None if trial.mode == "oneshot" else loaded.model
            metrics = information_metrics(calib, model=scorer)
            with counting_routed_tokens(loaded.model) as routing:
                if routing.layers:  # MoE: the dense routers' decisions on exactly this set
                    _route(loaded.model, calib, device)
            metrics.update(routing.metrics(trial.min_expert_tokens))
    tokens = routing.tokens.tolist() if routing.layers else None
    return calib, {k: float(v) for k, v in metrics.items()}, tokens


def _prune_stage(
    trial: TrialConfig, loaded: Any, calib: torch.Tensor, extra: Mapping[str, Any],
    prune_device: torch.device, timer: Any, stage: Stage,
    progress: Callable[[int, int], None] | None,
) -> Any:  # fmt: skip
    """Prune the loaded model in place; the PruneReport. One-shot reads the mix's statistics
    (built or read per source) instead of the calibration set."""
    from raysweep.pruning import prune_model

    stage(f"pruning ({trial.method}, {trial.structure}, {trial.sparsity:g})")
    with timer.phase("prune"):
        oneshot = trial.mode == "oneshot"
        stats = _oneshot_statistics(trial, loaded, extra, prune_device) if oneshot else None
        return prune_model(
            loaded.model, None if oneshot else calib, trial.method, trial.sparsity,
            structure=trial.structure, mode=trial.mode, device=prune_device, statistics=stats,
            progress=progress, ignore=trial.ignore, **allocation_options(trial),
            **method_options(trial),
        )  # fmt: skip


def _evaluation_stage(
    trial: TrialConfig, pruned: PrunedTrial, suite: Any, stage: Stage, items: bool
) -> Any:
    # The stage names the tasks: a trial actor's log (and an error record) says what it scores.
    stage(f"evaluating {', '.join(t.name for t in suite.tasks)}")
    with pruned.timer.phase("eval"):
        return evaluate(pruned.loaded.model, pruned.loaded.tokenizer, suite, trial.evaluation,
                        items=items)  # fmt: skip


@dataclass(frozen=True)
class TrialOutcome:
    """A finished trial: its record and its per-item side file's payload (:mod:`raysweep.items`),
    which the driver writes beside ``records.jsonl``; the record itself stays small."""

    record: TrialRecord
    items: dict[str, Any]


def run_trial(
    trial: TrialConfig,
    dense: DenseBaseline,
    *,
    stage: Stage = lambda s: None,
    progress: Callable[[int, int], None] | None = None,
    attempts: int = 1,
) -> TrialRecord:
    """Run one trial end to end and return its record (exceptions propagate to the caller):
    load, calibrate and prune (:func:`prune_trial`), evaluate, score, record.

    ``stage(name)`` is called as each stage begins, ``progress(done, num_layers)`` after each
    decoder layer is pruned."""
    return _run(trial, dense, stage, progress, attempts, items=False)[0]


def run_trial_with_items(
    trial: TrialConfig,
    dense: DenseBaseline,
    *,
    stage: Stage = lambda s: None,
    progress: Callable[[int, int], None] | None = None,
    attempts: int = 1,
) -> TrialOutcome:
    """:func:`run_trial`, keeping every task's per-item values (what a sweep's trials run)."""
    from raysweep.items import trial_payload

    record, scores, suite = _run(trial, dense, stage, progress, attempts, items=True)
    return TrialOutcome(record, trial_payload(trial.trial_id, dense.key, scores, suite))


def scored_outcome(
    trial: TrialConfig, dense: DenseBaseline, pruned: PrunedTrial, scores: Any, *, started: str,
    total_s: float,
) -> TrialOutcome:  # fmt: skip
    """The outcome of a pruned trial whose scores came from elsewhere than
    :func:`_evaluation_stage` (an evaluation in rungs: the merged per-item values of its
    chunks), recorded as :func:`run_trial_with_items` records a trial."""
    from raysweep.evaluation import get_suite, score_retention
    from raysweep.items import trial_payload

    suite = get_suite(trial.evaluation.suite)
    retention = score_retention(scores, dense.scores, suite)
    record = _trial_record(trial, dense, pruned, scores, retention, attempts=1, started=started,
                           total_s=total_s)  # fmt: skip
    return TrialOutcome(record, trial_payload(trial.trial_id, dense.key, scores, suite))


def _run(
    trial: TrialConfig, dense: DenseBaseline, stage: Stage,
    progress: Callable[[int, int], None] | None, attempts: int, *, items: bool,
) -> tuple[TrialRecord, Any, Any]:  # fmt: skip
    """The record, the pruned model's scores and the suite of one trial."""
    from raysweep.evaluation import get_suite, score_retention

    started, t_all = _now(), time.perf_counter()
    device = trial_device(trial)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    suite = get_suite(trial.evaluation.suite)
    pruned = prune_trial(trial, stage=stage, progress=progress)
    scores = _evaluation_stage(trial, pruned, suite, stage, items)
    retention = score_retention(scores, dense.scores, suite)
    stage("done")
    record = _trial_record(trial, dense, pruned, scores, retention, attempts=attempts,
                           started=started, total_s=time.perf_counter() - t_all)  # fmt: skip
    return record, scores, suite


def _trial_record(
    trial: TrialConfig, dense: DenseBaseline, pruned: PrunedTrial, scores: Any, ret: Any, *,
    attempts: int, started: str, total_s: float,
) -> TrialRecord:  # fmt: skip
    """The ok record of a finished trial."""
    report, device = pruned.report, pruned.device
    device_peaks = [pruned.peak_before_prune, _peak_device_bytes(device)]
    if pruned.prune_device.type == "cuda":
        device_peaks.append(int(report.peak_memory_bytes["device"]))
    measured = [p for p in device_peaks if p is not None]
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
        decoder_zero_fraction=float(report.decoder_zero_fraction),
        dense_kept=dict(report.dense_kept),
        statistics_fallback=dict(report.statistics_fallback) or None,
        allocation=trial.allocation,
        refine=trial.refine,
        layer_sparsity=list(report.layer_sparsity) if trial.allocation != "uniform" else None,
        layer_structure=(
            list(report.layer_structure)
            if trial.allocation != "uniform" and trial.structure != "unstructured"
            else None
        ),
        outlier_shares=report.outlier_shares,
        experts=report.extra.get("experts"),
        experts_fallback=report.extra.get("experts_fallback"),
        expert_fallback=report.extra.get("expert_fallback"),
        expert_tokens=pruned.expert_tokens,
        mix=dict(trial.mix),
        mix_name=trial.mix_name,
        n_samples=trial.n_samples,
        seqlen=trial.seqlen,
        seed=trial.seed,
        calib_metrics=dict(pruned.metrics),
        task_scores=dict(scores.task_scores),
        dense_task_scores=dict(dense.scores.task_scores),
        dimension_scores=dict(scores.dimension_scores),
        dense_dimension_scores=dict(dense.scores.dimension_scores),
        perplexity=dict(scores.perplexity),
        dense_perplexity=dict(dense.scores.perplexity),
        retention=dict(ret.retention),
        retention_above_chance=dict(ret.retention_above_chance),
        total_retention=ret.total_retention,
        worst_retention=ret.worst_retention,
        unmeasurable=list(ret.undefined),
        **_generation_fields(scores, dense.scores),
        timings=pruned.timings(trial, total_s),
        peak_host_bytes=_peak_host_bytes(),
        peak_device_bytes=max(measured) if measured else None,
        host=platform.node(),
        device=str(device),
        dense_cache_key=dense.key,
        versions=versions(),
        attempts=attempts,
        started_at=started,
        finished_at=_now(),
        config=trial.model_dump(mode="json"),
        **trial.item_selection_key(),
    )


def _generation_fields(scores: Any, dense: Any) -> dict[str, dict[str, float]]:
    """The record's generation fields from the pruned and dense scores' ``generation``."""
    pruned, base = scores.generation, dense.generation
    return {
        "generated_tokens": {task: g.mean_tokens for task, g in pruned.items()},
        "dense_generated_tokens": {task: g.mean_tokens for task, g in base.items()},
        "truncated_share": {task: g.truncated_share for task, g in pruned.items()},
    }


# Failures that would recur on every attempt: bad data, names, shapes, files (not worker deaths,
# out-of-memory or other runtime faults, which a retry may survive).
_DETERMINISTIC = (ValueError, TypeError, LookupError, FileNotFoundError, NotADirectoryError,
                  IsADirectoryError, PermissionError, ImportError, NotImplementedError)  # fmt: skip
_ERROR_HEAD, _ERROR_TAIL = 1500, 2500


def is_deterministic(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) would fail a retry the same way."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _DETERMINISTIC):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def describe_failure(exc: BaseException, stage: str, trial: TrialConfig) -> str:
    """``<stage> of <label> failed: Type: message`` with the exceptions it came from, then the
    traceback: what a record's ``error`` says first is what went wrong and where."""
    import traceback

    lines = [f"{stage} of {trial.label} failed: {type(exc).__name__}: {exc}"]
    cause = exc.__cause__ or exc.__context__
    while cause is not None and len(lines) < 6:
        lines.append(f"  from {type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    text = "".join(traceback.format_exception(exc))
    return "\n".join(lines) + "\n\n" + text


def summarise_traceback(text: str) -> str:
    """Put a traceback's final ``Type: message`` line first (Tune's error files start mid-way)."""
    finals = [ln for ln in text.strip().splitlines() if ln and not ln.startswith((" ", "\t"))]
    last = next((ln for ln in reversed(finals) if ":" in ln and "Traceback" not in ln), None)
    return f"{last}\n\n{text}" if last and not text.startswith(last) else text


def _clip(error: str) -> str:
    """The head (what failed) and the tail (where) of a long error text."""
    if len(error) <= _ERROR_HEAD + _ERROR_TAIL:
        return error
    return error[:_ERROR_HEAD] + "\n[...]\n" + error[-_ERROR_TAIL:]


def error_record(trial: TrialConfig, error: str, attempts: int) -> TrialRecord:
    """The record of a trial that failed (on every attempt, or once for a deterministic fault)."""
    return TrialRecord(
        trial_id=trial.trial_id,
        sweep=trial.sweep,
        phase=trial.phase,
        status="error",
        error=_clip(error),
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
        **trial.item_selection_key(),
    )
