"""Trial planning: grid, search and confirmation points, and the smoke config, with golden ids."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from raysweep.config import ConfigError, validate_config
from raysweep.planning import (
    confirm_point,
    confirm_points,
    search_plan,
    search_points,
    search_seeds,
    search_sources,
    search_trials,
    smoke_config,
    trial_points,
)

SOURCES = ["toy_general_prose", "toy_math_word", "toy_code_programs"]
CFG = validate_config({
    "name": "golden", "model": {"path": "raysweep-toy", "device": "cpu"},
    "calibration": {"sources": SOURCES, "uniform_mix": True, "n_samples": 8, "seqlen": 64,
                    "mixes": [{"name": "half",
                               "weights": {"toy_general_prose": 1, "toy_math_word": 1}}],
                    "seeds": [0, 1]},
    "pruning": {"methods": ["wanda", "sparsegpt"], "sparsities": [0.5, 0.7],
                "structures": ["unstructured", "2:4"]},
    "evaluation": {"suite": "toy", "limit": 24},
    "search": {"n_trials": 5, "limit": 12, "methods": ["wanda"],
               "structures": ["unstructured", "2:4"]},
})  # fmt: skip


def _with(section: str, **fields) -> object:
    tree = CFG.model_dump(mode="json")
    tree[section] = {**tree[section], **fields}
    return validate_config(tree)


# lm-eval's first N items: the trials every run before random item subsets ran.
FIRST = _with("evaluation", item_selection="first")


def test_grid_points_keep_their_ids():
    points = trial_points(FIRST)
    # 5 mixes (3 sources, "half", uniform) x 2 methods x 2 seeds x (2 sparsities + one 2:4).
    assert len(points) == 5 * 2 * 2 * 3
    assert {p.mix_name for p in points} == {*SOURCES, "half", "uniform"}
    assert {p.sparsity for p in points if p.structure == "2:4"} == {0.5}
    ids = ",".join(p.trial_id for p in points)
    # Fixed: a resumed sweep finds its finished trials by these ids.
    assert hashlib.sha256(ids.encode()).hexdigest()[:16] == "e1d1764383197a6d"


def test_search_points_keep_their_ids():
    points = search_points(FIRST)
    assert [p.trial_id for p in points] == ["47970f990eb694bb", "f6032410c95c7819",
                                            "7f1bfb222ea53599"]  # fmt: skip
    assert search_sources(CFG) == SOURCES  # each is aligned to a dimension
    for p in points:
        assert (p.phase, p.mode, p.evaluation.limit, p.evaluation.perplexity) == (
            "search",
            "oneshot",
            12,
            False,
        )


def _ids(cfg) -> list[str]:  # noqa: ANN001
    return [p.trial_id for p in trial_points(cfg) + search_points(cfg)]


def test_random_items_are_part_of_the_id_where_a_limit_cuts_a_task():
    # limit 24 (search 12) of the toy tasks' 400 items: random subsets, seeded, in the id.
    first, random = _ids(FIRST), _ids(CFG)
    assert CFG.evaluation.item_selection == "random"  # the schema's default
    assert set(first).isdisjoint(random)
    assert set(_ids(_with("evaluation", item_seed=1))).isdisjoint(random)
    assert _ids(_with("evaluation", item_seed=0)) == random
    # The search alone may take lm-eval's first items: its points change, the grid's do not.
    search_first = _with("search", item_selection="first")
    assert [p.trial_id for p in search_points(search_first)] == [
        p.trial_id for p in search_points(FIRST)]  # fmt: skip
    assert [p.trial_id for p in trial_points(search_first)] == [
        p.trial_id for p in trial_points(CFG)]  # fmt: skip


@pytest.mark.parametrize("limit", [None, 400, 1000])
def test_a_limit_that_cuts_no_task_leaves_every_id_as_it_was(limit):
    # The toy tasks declare their 400 items: a limit of 400 or more scores every item.
    def ids(selection: str, seed: int) -> list[str]:
        tree = CFG.model_dump(mode="json")
        tree["evaluation"].update(limit=limit, item_selection=selection, item_seed=seed)
        tree["search"].update(limit=None)
        return _ids(validate_config(tree))

    assert ids("random", 0) == ids("first", 0) == ids("random", 5)


def test_confirm_point_is_a_trial_of_the_sweeps_own_mode_and_suite():
    base = search_points(CFG)[0]
    point = confirm_point(CFG, base, {"toy_general_prose": 0.75, "toy_math_word": 0.25,
                                      "toy_code_programs": 0.0})  # fmt: skip
    assert point.mix == {"toy_general_prose": 0.75, "toy_math_word": 0.25}
    assert (point.phase, point.mix_name, point.mode) == ("confirm", "best", "sequential")
    assert point.evaluation == CFG.evaluation
    assert (point.method, point.structure, point.sparsity) == (
        base.method,
        base.structure,
        base.sparsity,
    )


def test_a_confirm_point_keeps_its_trial_id_on_its_way_to_a_worker():
    """A worker validates the dumped point again: the id it records must be the id the driver
    looks the confirmation up by (and resumes by), whatever the search's weights are."""
    from raysweep.config import TrialConfig
    from raysweep.search.space import weights_from_u

    base = search_points(CFG)[0]
    sources = ["toy_general_prose", "toy_commonsense_stories", "toy_code_programs",
               "toy_math_word"]  # fmt: skip
    rng = np.random.default_rng(0)
    for _ in range(300):
        weights = weights_from_u(dict(zip(sources, rng.uniform(1e-6, 1, 4), strict=True)), 0.02)
        point = confirm_point(CFG, base, weights)
        on_worker = TrialConfig.model_validate(point.model_dump(mode="json"))
        assert on_worker.trial_id == point.trial_id and on_worker.mix == point.mix
    # Weights that do not sum to 1 are normalised in the point itself, not first on the worker.
    point = confirm_point(CFG, base, {"toy_general_prose": 3.0, "toy_math_word": 1.0})
    assert point.mix == {"toy_general_prose": 0.75, "toy_math_word": 0.25}
    assert TrialConfig.model_validate(point.model_dump(mode="json")).trial_id == point.trial_id


def test_normalised_weights_are_kept_bit_for_bit_and_others_are_normalised():
    from raysweep.config import TrialConfig

    rng = np.random.default_rng(1)
    for _ in range(300):
        mix = {f"s{i}": float(w) for i, w in enumerate(rng.uniform(0, 1, 5))}
        once = TrialConfig(mix=mix, mix_name="m")
        assert sum(once.mix.values()) == pytest.approx(1.0, abs=1e-12)
        twice = TrialConfig.model_validate(once.model_dump(mode="json"))
        assert twice.mix == once.mix and twice.trial_id == once.trial_id
    assert TrialConfig(mix={"a": 2, "b": 6}, mix_name="m").mix == {"a": 0.25, "b": 0.75}


def test_smoke_config_is_a_handful_of_points():
    smoke = smoke_config(CFG)
    points = trial_points(smoke)
    # Two sources and "half" (over those two, the same trial as their uniform mix), with one
    # method, sparsity, structure and seed.
    assert [p.mix_name for p in points] == ["toy_general_prose", "toy_math_word", "half"]
    assert all(p.n_samples == 8 and p.evaluation.limit == 24 for p in points)
    assert smoke.search is not None and smoke.search.n_trials == 4


def test_smoke_output_goes_beside_the_run_unless_given():
    assert smoke_config(CFG).output_dir == CFG.output_dir + "-smoke"
    assert smoke_config(CFG, own_output=False).output_dir == CFG.output_dir


def _with_search(**search) -> object:
    return _with("search", **search)


def test_the_search_plan_counts_its_trials():
    # wanda unstructured at 0.5 and 0.7, and 2:4 once (its sparsity is the pattern's).
    assert len(search_points(CFG)) == 3
    assert search_trials(CFG) == 5  # n_trials 5 >= 3 sources + uniform
    assert search_plan(CFG) == (
        "3 search(es) x 5 trials over 3 sources (toy_general_prose, toy_math_word, "
        "toy_code_programs) + 3 confirmation(s) = 18 search trials"
    )
    assert search_trials(_with_search(n_trials=2)) == 4  # raised to the 4 baselines
    saving = _with_search(save_best=True, confirm=True)
    assert search_plan(saving).endswith("= 18 search trials, then 3 best-mix model(s) saved")


def test_a_search_over_several_seeds_prunes_each_mix_with_each():
    # Today's search uses the first calibration seed; search.seeds names its own.
    assert CFG.calibration.seeds == [0, 1] and search_seeds(CFG) == [0]
    seeded = _with_search(seeds=[3, 1])
    assert search_seeds(seeded) == [3, 1]
    assert {p.seed for p in search_points(seeded)} == {3}
    # One seed, the calibration's first: the same points as the default.
    assert [p.trial_id for p in search_points(_with_search(seeds=[0]))] == [
        p.trial_id for p in search_points(CFG)]  # fmt: skip
    assert search_plan(seeded) == (
        "3 search(es) x 5 trials x 2 seeds (3, 1) over 3 sources (toy_general_prose, "
        "toy_math_word, toy_code_programs) + 6 confirmation(s) = 36 pruned and scored models"
    )
    base = search_points(seeded)[0]
    points = confirm_points(seeded, base, {"toy_math_word": 0.5, "toy_code_programs": 0.5})
    assert [p.seed for p in points] == [3, 1] and len({p.trial_id for p in points}) == 2
    assert all(p.phase == "confirm" and p.evaluation == CFG.evaluation for p in points)
    assert points[0] == confirm_point(seeded, base, points[0].mix)
    assert smoke_config(seeded).search.seeds == [3]


def test_a_search_that_cannot_run_is_refused_before_any_work():
    with pytest.raises(ConfigError, match=r"search.sources: \['toy_math_word'\] — a mix search"):
        search_plan(_with_search(sources=["toy_math_word"]))
    with pytest.raises(ConfigError, match="search.save_best: true saves the confirmed best mix"):
        search_plan(_with_search(save_best=True, confirm=False))
