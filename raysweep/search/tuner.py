"""Optuna (TPE or NSGA-II) through Ray Tune over simplex weights; studies persist in SQLite."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray import tune
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from raysweep.search.objectives import ITEMS_PER_TASK, METRIC, is_stopped_result
from raysweep.search.space import baseline_points, define_by_run, weights_from_u

# Trials that count toward a study's n_trials: a stopped one was a proposed mix too.
_DONE = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class MixSearchResult:
    study_name: str
    storage_url: str
    best_weights: dict[str, float]
    best_value: float | None
    pareto: list[dict[str, Any]] = field(default_factory=list)
    n_trials: int = 0
    wall_s: float = 0.0
    proposals: list[dict[str, float]] = field(default_factory=list)  # weights, in trial order
    n_stopped: int = 0  # trials an early-stopping scheduler stopped at a rung


class _PicklableNSGAII(optuna.samplers.NSGAIISampler):
    """NSGA-II whose thread lock (Optuna >= 5.1 keeps one) is dropped when Tune pickles the
    searcher into its experiment state and made anew when it is read back."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import threading

        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


# Optuna names a GA sampler's trial attributes after its class: keep NSGA-II's names, so that a
# study begun by either class resumes with the other.
for _key in ("_GENERATION_KEY", "_PARENT_CACHE_KEY_PREFIX"):
    if hasattr(optuna.samplers.NSGAIISampler, _key):
        setattr(_PicklableNSGAII, _key, getattr(optuna.samplers.NSGAIISampler, _key))


class _OptunaSearch(OptunaSearch):
    """Ray's OptunaSearch, telling Optuna FAIL for a trial that reports a NaN objective: a trial
    that failed deterministically completes (so that Tune does not retry it) with its error
    records and NaN. Optuna refuses NaN as a COMPLETE value and would leave it RUNNING, which
    the constant liar counts as pending for the rest of the run. A trial an early-stopping
    scheduler stopped at a rung is told PRUNED."""

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        names = self.metric if isinstance(self.metric, list) else [self.metric]
        if result and any(_is_nan(result.get(name)) for name in names):
            result, error = None, True
        elif is_stopped_result(result):
            # Stopped at a rung by the scheduler: Optuna's PRUNED (TPE ranks it by its last
            # intermediate value, below every complete trial), never a complete value read off
            # part of the items. Tune hands the stopping rung to on_trial_complete alone.
            self._report_rung(trial_id, result)
            result, error = None, False
        super().on_trial_complete(trial_id, result=result, error=error)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        super().on_trial_result(trial_id, result)
        self._rungs_told().setdefault(trial_id, set()).add(result.get(TRAINING_ITERATION))

    def _rungs_told(self) -> dict[str, set[Any]]:
        # Not set in __init__: a searcher pickled before there were rungs reads back without it.
        if not hasattr(self, "_told"):
            self._told: dict[str, set[Any]] = {}
        return self._told

    def _report_rung(self, trial_id: str, result: dict[str, Any]) -> None:
        step = result.get(TRAINING_ITERATION)
        trial = self._ot_trials.get(trial_id)
        if trial is not None and step not in self._rungs_told().get(trial_id, set()):
            trial.report(float(result[METRIC]), step)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _sampler(seed: int, multi_objective: bool) -> optuna.samplers.BaseSampler:
    if multi_objective:
        return _PicklableNSGAII(seed=seed)
    # multivariate TPE models the weights jointly; the constant liar keeps parallel workers
    # from proposing the same point while earlier trials are still running.
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


def study_url(study_dir: Path) -> str:
    """The SQLite URL of the Optuna studies kept in ``study_dir``."""
    return f"sqlite:///{(study_dir / 'optuna.db').resolve()}"


def fail_stale_trials(storage_url: str, study_name: str) -> int:
    """Mark the study's RUNNING trials FAIL; how many there were.

    Called before a search starts or resumes: the output directory belongs to one driver at a
    time, so a RUNNING trial is a leftover of a killed driver. Left RUNNING, the constant liar
    would keep counting it as a pending point at its imagined worst value for ever.
    """
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url)
    except KeyError:
        return 0
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
    return len(stale)


def completed_trials(storage_url: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url)
    except KeyError:
        return []
    return [t for t in study.trials if t.state == TrialState.COMPLETE]


def _same_point(a: Mapping[str, float], b: Mapping[str, Any]) -> bool:
    return set(a) == set(b) and all(math.isclose(a[k], b[k], rel_tol=1e-12) for k in a)


def missing_baselines(storage_url: str, study_name: str,
                      sources: Sequence[str]) -> list[dict[str, float]]:  # fmt: skip
    """The baseline points (:func:`~raysweep.search.space.baseline_points`) of which the study
    holds neither a complete (or stopped early) trial nor one queued to run (WAITING): all of
    them before the study exists. A baseline that failed or was left running by a killed driver
    is among them, however many other trials the study holds."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url)
    except KeyError:
        return baseline_points(sources)
    held = [t.params for t in study.get_trials(deepcopy=False, states=_DONE)]
    # A queued trial has no params yet: enqueue_trial keeps them as its fixed_params.
    held += [t.system_attrs.get("fixed_params") or {}
             for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))]  # fmt: skip
    return [p for p in baseline_points(sources) if not any(_same_point(p, h) for h in held)]


def trials_to_run(study_dir: Path, study_name: str, n_trials: int,
                  sources: Sequence[str]) -> int:  # fmt: skip
    """Trials a (resumed) search of a study in ``study_dir`` runs: up to ``n_trials`` complete
    (or stopped early) ones, and at least every trial queued (WAITING: Optuna hands them out
    first) and every baseline it lacks (:func:`missing_baselines`)."""
    first = max(n_trials, len(baseline_points(sources)))
    if not (study_dir / "optuna.db").is_file():
        return first
    storage_url = study_url(study_dir)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url)
    except KeyError:
        return first
    done = len(study.get_trials(deepcopy=False, states=_DONE))
    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    missing = len(missing_baselines(storage_url, study_name, sources))
    return max(n_trials - done, waiting + missing)


def run_mix_search(
    trainable: Callable[[dict[str, Any]], None],
    *,
    sources: Sequence[str],
    base_config: dict[str, Any],
    study_dir: Path,
    study_name: str,
    n_trials: int,
    max_concurrent: int,
    seed: int = 0,
    min_weight: float = 0.0,
    metrics: Sequence[str] = (METRIC,),
    resources: dict[str, float] | None = None,
    storage_path: str | None = None,
    max_failures: int = 2,
    callbacks: Sequence[Any] = (),
    reuse_actors: bool = True,
    scheduler: Any = None,
) -> MixSearchResult:
    """Maximise ``metrics`` (one: TPE; several: NSGA-II Pareto front) over mixing weights.

    ``trainable`` receives ``base_config`` plus ``weights`` and must ``tune.report`` the metrics.
    The baselines (uniform mix, then each single source) are enqueued first. Rerunning with the
    same ``study_dir``/``study_name`` resumes: finished Optuna trials count toward ``n_trials``,
    and every baseline without a complete trial is enqueued again (run even where the study has
    ``n_trials`` already). ``scheduler`` (:func:`early_stopping_scheduler`) stops trials that
    report in rungs; a stopped trial counts toward ``n_trials``.
    """
    t0 = time.monotonic()
    study_dir.mkdir(parents=True, exist_ok=True)
    storage_url = study_url(study_dir)
    multi = len(metrics) > 1
    stale = fail_stale_trials(storage_url, study_name)
    if stale:
        print(f"[raysweep] {study_name}: {stale} trial(s) left running by an earlier driver "
              "marked failed", flush=True)  # fmt: skip
    done = completed_trials(storage_url, study_name)
    queued = missing_baselines(storage_url, study_name, sources)
    if done and queued:
        print(f"[raysweep] {study_name}: {len(queued)} baseline(s) with no complete trial queued "
              "again", flush=True)  # fmt: skip
    remaining = trials_to_run(study_dir, study_name, n_trials, sources)
    if remaining:
        searcher = _OptunaSearch(
            space=define_by_run(list(sources), min_weight),
            metric=list(metrics) if multi else metrics[0],
            mode=["max"] * len(metrics) if multi else "max",
            points_to_evaluate=queued or None,
            sampler=_sampler(seed, multi),
            study_name=study_name,
            storage=optuna.storages.RDBStorage(storage_url),
        )
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources or {"cpu": 1}),
            param_space=base_config,
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=max_concurrent),
                num_samples=remaining,
                reuse_actors=reuse_actors,
                scheduler=scheduler,
            ),
            run_config=tune.RunConfig(
                name=f"{study_name}-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=storage_path,
                failure_config=tune.FailureConfig(max_failures=max_failures),
                callbacks=list(callbacks),
                verbose=0,
                log_to_file=True,
            ),
        )
        tuner.fit()
    study = optuna.load_study(study_name=study_name, storage=storage_url)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    proposals = [weights_from_u(_u(t, sources), min_weight) for t in complete]
    result = MixSearchResult(study_name, storage_url, {}, None, n_trials=len(complete),
                             wall_s=time.monotonic() - t0, proposals=proposals)  # fmt: skip
    result.n_stopped = sum(t.state == TrialState.PRUNED for t in study.trials)
    if not complete:
        return result
    if multi:
        result.pareto = [
            {"weights": weights_from_u(_u(t, sources), min_weight), "values": list(t.values)}
            for t in study.best_trials
        ]
        best = max(study.best_trials, key=lambda t: (min(t.values), -t.number))
        result.best_value = min(best.values)
    else:
        best = study.best_trial
        result.best_value = float(best.value)
    result.best_weights = weights_from_u(_u(best, sources), min_weight)
    return result


def early_stopping_scheduler(
    kind: str, *, max_t: int, grace_period: int, reduction_factor: float
) -> Any:
    """Tune's scheduler for ``search.early_stopping`` (None for ``none``), on the objective
    against the items per task scored so far. ``hyperband`` is Tune's asynchronous HyperBand
    (ASHA over several brackets of grace periods): the synchronous HyperBandScheduler pauses
    trials and resumes them from checkpoints, and a search trial's checkpoint would be its
    pruned models."""
    from ray.tune.schedulers import ASHAScheduler

    if kind == "none":
        return None
    brackets = 3 if kind == "hyperband" else 1
    return ASHAScheduler(time_attr=ITEMS_PER_TASK, metric=METRIC, mode="max", max_t=max_t,
                         grace_period=grace_period, reduction_factor=reduction_factor,
                         brackets=brackets)  # fmt: skip


def _u(trial: optuna.trial.FrozenTrial, sources: Sequence[str]) -> dict[str, float]:
    from raysweep.search.space import param_name

    return {s: float(trial.params[param_name(s)]) for s in sources}
