"""Warm start: the grid's mixes that lie in the search space enter the Optuna study as evaluated
trials, so the search neither prunes nor scores them again.

A grid record stands for a search trial when it is that trial: the search point with the
record's mix and each search seed has the record's trial id (the one identity module decides:
model, calibration, pruning mode and options, suite, item limit and selection), the held-out
perplexity aside, which no objective reads. A mix lies in the space when every source it weighs
is searched and ``weights_from_u`` gives it back (no weight below ``search.min_weight``).

The points go in with Optuna's public ``Study.add_trial(create_trial(...))`` rather than Tune's
``points_to_evaluate`` with ``evaluated_rewards``: the trials are written to the study's SQLite
file once, carry which records they came from (``user_attrs["from_grid"]``), count as complete
on resume, and a resumed search does not add them a second time (Tune's searcher adds its
rewarded points again each time it is built).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from raysweep.config import SweepConfig, TrialConfig
from raysweep.records import RECORDS_FILE, TrialRecord, read_records
from raysweep.search.space import _U_LOW, baseline_points, param_name, weights_from_u
from raysweep.search.tuner import study_url
from raysweep.trainables.trial import mix_label, seed_mean

FROM_GRID = "from_grid"  # user attribute of a study trial that a grid record supplied


@dataclass(frozen=True)
class GridPoint:
    """A grid mix the search would have evaluated: its weights, Optuna params, the records (one
    per search seed) and the value(s) the search would have been told."""

    weights: dict[str, float]
    mix_name: str
    params: dict[str, float]
    trial_ids: tuple[str, ...]
    values: tuple[float, ...]


def _search_trial(base: TrialConfig, mix: Mapping[str, float], seed: int,
                  perplexity: bool) -> TrialConfig:  # fmt: skip
    """The search trial of ``mix`` with calibration ``seed``, its evaluation recording held-out
    perplexity as the grid's did (so that the ids compare everything else)."""
    point = base.model_dump()
    point["evaluation"]["perplexity"] = perplexity
    mix = {s: w for s, w in mix.items() if w > 0}
    return TrialConfig.model_validate({**point, "mix": mix, "mix_name": mix_label(mix),
                                       "seed": seed})  # fmt: skip


def _params(weights: Mapping[str, float], sources: Sequence[str],
            min_weight: float) -> dict[str, float] | None:  # fmt: skip
    """Optuna params whose weights are ``weights``, or None when the space cannot propose them:
    a baseline's own params where it is one (so the study counts it as held), else
    ``u = exp(-w)``, ``-log u`` being the weight before normalisation."""
    full = {s: float(weights.get(s, 0.0)) for s in sources}
    for params in baseline_points(sources):
        u = {s: params[param_name(s)] for s in sources}
        if _close(weights_from_u(u, min_weight), full):
            return params
    params = {param_name(s): (math.exp(-w) if w > 0 else 1.0) for s, w in full.items()}
    u = {s: max(params[param_name(s)], _U_LOW) for s in sources}
    return params if _close(weights_from_u(u, min_weight), full) else None


def _close(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return set(a) == set(b) and all(math.isclose(a[k], b[k], abs_tol=1e-9) for k in a)


def grid_points(
    base: TrialConfig,
    records: Sequence[TrialRecord],
    *,
    sources: Sequence[str],
    seeds: Sequence[int],
    objective: str,
    metrics: Sequence[str],
    min_weight: float,
) -> list[GridPoint]:
    """The grid's ``ok`` records that are search trials of ``base`` (see the module docstring),
    one point per mix with a record for every seed, in the records' order."""
    ok = {r.trial_id: r for r in records if r.phase == "grid" and r.status == "ok"}
    points, seen = [], set()
    for record in ok.values():
        key = tuple(sorted(record.mix.items()))
        if key in seen or not set(record.mix) <= set(sources):
            continue
        seen.add(key)
        params = _params(record.mix, sources, min_weight)
        if params is None:
            continue
        found = [r for seed in seeds if (r := _record_for(base, record, seed, ok)) is not None]
        if len(found) < len(seeds):
            continue
        means = seed_mean([r.model_dump(mode="json") for r in found], objective)
        values = tuple(float(means.get(m, 0.0)) for m in metrics)
        weights = {s: float(record.mix.get(s, 0.0)) for s in sources}
        ids = tuple(r.trial_id for r in found)
        points.append(GridPoint(weights, record.mix_name, params, ids, values))
    return points


def _record_for(base: TrialConfig, record: TrialRecord, seed: int,
                ok: Mapping[str, TrialRecord]) -> TrialRecord | None:  # fmt: skip
    for perplexity in (False, True):
        found = ok.get(_search_trial(base, record.mix, seed, perplexity).trial_id)
        if found is not None:
            return found
    return None


def add_grid_points(
    storage_url: str, study_name: str, points: Sequence[GridPoint], n_metrics: int
) -> list[GridPoint]:
    """Add each point the study does not hold yet as a COMPLETE trial (creating the study, to
    be maximised, where it does not exist); the points added."""
    directions: list[Any] = ["maximize"] * n_metrics
    study = optuna.create_study(study_name=study_name, storage=storage_url,
                                directions=directions, load_if_exists=True)  # fmt: skip
    held = {tuple(t.user_attrs.get(FROM_GRID, ())) for t in study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE,))}  # fmt: skip
    added = []
    for point in points:
        if point.trial_ids in held:
            continue
        dists: dict[str, BaseDistribution] = {
            name: FloatDistribution(_U_LOW, 1.0) for name in point.params
        }
        study.add_trial(create_trial(
            params=point.params, distributions=dists, values=list(point.values),
            user_attrs={FROM_GRID: list(point.trial_ids), "weights": point.weights,
                        "mix_name": point.mix_name},
        ))  # fmt: skip
        added.append(point)
    return added


def warm_start(cfg: SweepConfig, base: TrialConfig, out: Path, study_name: str,
               metrics: Sequence[str]) -> list[GridPoint]:  # fmt: skip
    """Give the study of the search from ``base`` the grid's points of its space (a console line
    says how many); the points added."""
    from raysweep.planning import search_seeds, search_sources

    s = cfg.search
    assert s is not None
    records = read_records(out / RECORDS_FILE, warn=False).records
    points = grid_points(base, records, sources=search_sources(cfg), seeds=search_seeds(cfg),
                         objective=s.objective, metrics=metrics,
                         min_weight=s.min_weight)  # fmt: skip
    if not points:
        return []
    (out / "search").mkdir(parents=True, exist_ok=True)
    added = add_grid_points(study_url(out / "search"), study_name, points, len(metrics))
    if added:
        names = ", ".join(p.mix_name for p in added)
        print(f"[raysweep] {study_name}: {len(added)} point(s) from the grid, not run again: "
              f"{names}", flush=True)  # fmt: skip
    return added


def grid_trials(storage_url: str, study_name: str) -> list[dict[str, Any]]:
    """The study's trials that grid records supplied: their weights, mix name and record ids."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url)
    except KeyError:
        return []
    return [{"weights": t.user_attrs.get("weights"), "mix_name": t.user_attrs.get("mix_name"),
             "trial_ids": t.user_attrs[FROM_GRID]}
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if FROM_GRID in t.user_attrs]  # fmt: skip


__all__ = ["FROM_GRID", "GridPoint", "add_grid_points", "grid_points", "grid_trials", "warm_start"]
