"""A resumed search queues again every baseline that has no complete trial, whatever else the
study holds: Optuna and its SQLite study for real, Tune's loop replaced by a plain one (no Ray)."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from raysweep.search import tuner as search_tuner
from raysweep.search.space import _U_LOW, baseline_points

from . import analytic


class _PlainTuner:
    """``tune.Tuner`` as a loop: ask the searcher, score the analytic objective, tell it."""

    def __init__(self, trainable, *, param_space, tune_config, run_config) -> None:  # noqa: ANN001
        self.search, self.n = tune_config.search_alg, tune_config.num_samples

    def fit(self) -> None:
        for i in range(self.n):
            config = self.search.suggest(f"t{i}")
            value = float(analytic.scores(config["weights"]).min())
            self.search.on_trial_complete(f"t{i}", {"objective": value})


def _trial(params: dict[str, float], state: TrialState) -> optuna.trial.FrozenTrial:
    dists = {name: FloatDistribution(_U_LOW, 1.0) for name in params}
    value = 0.5 if state == TrialState.COMPLETE else None
    return create_trial(params=params, distributions=dists, value=value, state=state)


def _complete_baselines(study: optuna.Study) -> list[int]:
    """How many complete trials each baseline point has, in baseline order."""
    done = [t.params for t in study.get_trials(states=(TrialState.COMPLETE,))]
    return [sum(all(math.isclose(p[k], point[k], rel_tol=1e-12) for k in point) for p in done)
            for point in baseline_points(analytic.SOURCES)]  # fmt: skip


@pytest.mark.parametrize("n_trials", [8, 4])
def test_a_resumed_search_runs_every_baseline_it_lacks(tmp_path, monkeypatch, capsys, n_trials):
    monkeypatch.setattr(search_tuner.tune, "Tuner", _PlainTuner)
    url = search_tuner.study_url(tmp_path)
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    equal, first, second, third, fourth = baseline_points(analytic.SOURCES)
    # A driver stopped by SIGTERM: two baselines done, the third running (marked failed on
    # resume), the fourth still queued, the fifth never queued; two proposals of the sampler.
    study.add_trial(_trial(equal, TrialState.COMPLETE))
    study.add_trial(_trial(first, TrialState.COMPLETE))
    study.add_trial(_trial({k: 0.3 for k in equal}, TrialState.COMPLETE))
    study.add_trial(_trial({k: 0.7 for k in equal}, TrialState.COMPLETE))
    study.add_trial(_trial(second, TrialState.RUNNING))
    study.enqueue_trial(third)
    search_tuner.run_mix_search(
        analytic.trainable, sources=analytic.SOURCES, base_config={}, study_dir=tmp_path,
        study_name="s", n_trials=n_trials, max_concurrent=1,
    )  # fmt: skip
    study = optuna.load_study(study_name="s", storage=url)
    # Each baseline exactly once: the failed and the missing ones run, the queued one once.
    assert _complete_baselines(study) == [1, 1, 1, 1, 1]
    assert not study.get_trials(states=(TrialState.WAITING, TrialState.RUNNING))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    # The study's own length, or just what the baselines need where it was reached already.
    assert len(complete) == max(n_trials, 4 + 3)
    assert "2 baseline(s) with no complete trial queued again" in capsys.readouterr().out
