"""A search resumes only the study that measured the same thing, and never waits on ghosts."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from raysweep.config import validate_config
from raysweep.planning import search_points
from raysweep.search.driver import study_name
from raysweep.search.space import baseline_points, param_name
from raysweep.search.tuner import fail_stale_trials, run_mix_search, study_url

BASE = {
    "name": "s",
    "calibration": {"sources": ["toy_general_prose", "toy_math_word", "toy_code_source"]},
    "pruning": {"methods": ["wanda"], "sparsities": [0.5, 0.7]},
    "evaluation": {"suite": "toy", "limit": 24},
    "search": {"n_trials": 5},
}


def _names(**changes):
    tree = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        tree[section][key] = value
    cfg = validate_config(tree)
    return [study_name(cfg, base) for base in search_points(cfg)]


def test_same_search_same_study_and_one_study_per_point():
    names = _names()
    assert names == _names()
    assert len(set(names)) == 2
    assert names[0].startswith("search-wanda-unstructured-0.5-")


@pytest.mark.parametrize(
    "change",
    [
        {"search__sources": ["toy_general_prose", "toy_math_word"]},
        {"search__objective": "total_retention"},
        {"search__multi_objective": True},
        {"search__suite": "fast"},
        {"search__limit": 12},
        {"search__mode": "sequential"},
        {"search__min_weight": 0.1},
        {"calibration__n_samples": 64},
        {"evaluation__limit": 12},
        {"evaluation__item_seed": 1},
        {"search__item_selection": "first"},
        {"search__seeds": [0, 1]},
        {"search__seeds": [2]},
    ],
    ids=lambda c: next(iter(c)),
)
def test_whatever_changes_the_meaning_of_a_study_changes_its_name(change):
    assert set(_names(**change)).isdisjoint(_names())


def test_seed_and_budget_do_not_start_a_new_study():
    assert _names(search__n_trials=50, search__max_concurrent=4) == _names()
    # One search seed, the first calibration seed, is what a search without search.seeds uses.
    assert _names(search__seeds=[0]) == _names()


def test_several_seeds_are_one_study_in_any_order():
    # A trial reports the mean over its seeds: the same value whichever comes first.
    two = _names(search__seeds=[0, 1])
    assert two == _names(search__seeds=[1, 0])
    assert set(two).isdisjoint(_names(search__seeds=[0, 2]))


def _study_with_a_ghost(tmp_path):
    url = study_url(tmp_path)
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    for told in (True, False):  # the second: asked, never told, as by a driver that was killed
        trial = study.ask()
        for source in ("a", "b"):
            trial.suggest_float(param_name(source), 0.0, 1.0)
        if told:
            study.tell(trial, 0.5)
    return url


def test_running_trials_of_a_killed_driver_are_marked_failed(tmp_path):
    url = _study_with_a_ghost(tmp_path)
    assert fail_stale_trials(url, "s") == 1
    states = [t.state for t in optuna.load_study(study_name="s", storage=url).trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL]
    assert fail_stale_trials(url, "s") == 0
    assert fail_stale_trials(url, "no-such-study") == 0


def test_a_resumed_search_fails_its_ghosts_before_it_proposes(tmp_path):
    url = _study_with_a_ghost(tmp_path)
    study = optuna.load_study(study_name="s", storage=url)
    dists = {param_name(s): optuna.distributions.FloatDistribution(0.0, 1.0) for s in "ab"}
    for point in baseline_points(["a", "b"]):  # its baselines done: nothing is left to run
        study.add_trial(optuna.trial.create_trial(params=point, distributions=dists, value=0.5))
    res = run_mix_search(lambda config: None, sources=["a", "b"], base_config={},
                         study_dir=tmp_path, study_name="s", n_trials=1, max_concurrent=1)  # fmt: skip
    assert res.n_trials == 4
    states = [t.state for t in optuna.load_study(study_name="s", storage=url).trials]
    assert TrialState.RUNNING not in states
