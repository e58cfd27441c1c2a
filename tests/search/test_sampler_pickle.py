"""Tune pickles the searcher into its experiment state: the NSGA-II sampler must survive it."""

from __future__ import annotations

import pickle

import optuna

from raysweep.search.tuner import _sampler


def test_the_multi_objective_sampler_pickles_and_keeps_nsga2_trial_attributes():
    sampler = _sampler(seed=3, multi_objective=True)
    again = pickle.loads(pickle.dumps(sampler))
    assert isinstance(again, optuna.samplers.NSGAIISampler)
    key = optuna.samplers.NSGAIISampler._get_generation_key()
    assert again._get_generation_key() == key == "NSGAIISampler:generation"
    with again._thread_lock:  # a working lock again after unpickling
        pass
