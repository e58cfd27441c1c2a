"""Warm start: the grid's points of the search space reach the Optuna study as complete trials
and are not run again (Optuna and its SQLite study for real; Tune's loop a plain one, no Ray)."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from raysweep.config import validate_config
from raysweep.planning import search_points, trial_points
from raysweep.records import RECORDS_FILE, TrialRecord
from raysweep.search import tuner as search_tuner
from raysweep.search.objectives import METRIC
from raysweep.search.warm import FROM_GRID, grid_trials, warm_start
from raysweep.trainables.trial import mix_label

SOURCES = ["toy_math_word", "toy_code_programs", "toy_general_prose"]


def _cfg(**search):
    return validate_config({
        "model": {"path": "raysweep-toy", "device": "cpu"},
        "calibration": {"sources": [*SOURCES, "toy_web"], "uniform_mix": True,
                        "mixes": [{"name": "maths_code", "weights": {"toy_math_word": 3,
                                                                      "toy_code_programs": 1}},
                                  {"name": "with_web", "weights": {"toy_web": 1,
                                                                    "toy_math_word": 1}}],
                        "n_samples": 8, "seqlen": 32},
        "pruning": {"methods": ["wanda"], "sparsities": [0.5]},
        "evaluation": {"suite": "toy", "limit": 40, "item_selection": "random"},
        "search": {"sources": SOURCES, "mode": "sequential", "n_trials": 8, **search},
    })  # fmt: skip


def _value(mix: dict[str, float]) -> float:
    # Any deterministic function of the mix: what the grid "measured".
    return round(0.5 + 0.1 * mix.get("toy_code_programs", 0) + 0.01 * len(mix), 6)


def _write_grid(out: Path, cfg) -> list[TrialRecord]:  # noqa: ANN001
    rows = []
    for p in trial_points(cfg):
        v = _value(p.mix)
        rows.append(TrialRecord(
            trial_id=p.trial_id, phase="grid", status="ok", model="raysweep-toy",
            method=p.method, structure=p.structure, sparsity=p.sparsity, mix=p.mix,
            mix_name=p.mix_name, n_samples=p.n_samples, seqlen=p.seqlen, seed=p.seed,
            retention={"math": v}, total_retention=v, worst_retention=v,
        ))  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / RECORDS_FILE).write_text("".join(r.to_json() + "\n" for r in rows))
    return rows


class _CountingTuner:
    """``tune.Tuner`` as a loop that counts the trials it runs (each one a prune and a scoring)."""

    ran: list[dict[str, float]] = []

    def __init__(self, trainable, *, param_space, tune_config, run_config) -> None:  # noqa: ANN001
        self.search, self.n = tune_config.search_alg, tune_config.num_samples

    def fit(self) -> None:
        for i in range(self.n):
            config = self.search.suggest(f"t{i}")
            _CountingTuner.ran.append(config["weights"])
            self.search.on_trial_complete(f"t{i}", {METRIC: _value(config["weights"])})


def test_the_grid_points_are_given_to_the_study_and_not_run_again(tmp_path, monkeypatch):
    cfg = _cfg()
    out = tmp_path / "run"
    _write_grid(out, cfg)
    base = search_points(cfg)[0]
    added = warm_start(cfg, base, out, "s", [METRIC])
    # Each single source, the uniform mix (equal per source here: one source per dimension) and
    # the named mix of searched sources; not toy_web's, nor the mix that weighs it.
    assert sorted(p.mix_name for p in added) == sorted([*SOURCES, "uniform", "maths_code"])
    maths_code = next(p for p in added if p.mix_name == "maths_code")
    assert maths_code.values == (_value({"toy_math_word": 0.75, "toy_code_programs": 0.25}),)

    monkeypatch.setattr(search_tuner.tune, "Tuner", _CountingTuner)
    _CountingTuner.ran = []
    res = search_tuner.run_mix_search(
        lambda config: None, sources=SOURCES, base_config={}, study_dir=out / "search",
        study_name="s", n_trials=8, max_concurrent=1,
    )  # fmt: skip
    # 8 trials in all, 5 of them the grid's: 3 run, none of them a grid point.
    assert res.n_trials == 8 and len(_CountingTuner.ran) == 3
    for weights in _CountingTuner.ran:
        assert mix_label(weights) == "search"
        assert not any(_same(weights, p.weights) for p in added)
    assert len(grid_trials(res.storage_url, "s")) == 5

    # A resumed search adds none of them twice.
    assert warm_start(cfg, base, out, "s", [METRIC]) == []
    study = optuna.load_study(study_name="s", storage=res.storage_url)
    assert sum(FROM_GRID in t.user_attrs for t in study.trials) == 5


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return all(math.isclose(a.get(k, 0), b.get(k, 0), abs_tol=1e-9) for k in {*a, *b})


@pytest.mark.parametrize(
    "change",
    [
        {"mode": "oneshot_stats"},  # the grid pruned sequentially: another trial
        {"limit": 20},  # other items
        {"seeds": [0, 1]},  # the grid has seed 0 only
    ],
)
def test_grid_points_of_another_evaluation_or_prune_are_run_as_before(tmp_path, change):
    cfg = _cfg(**change)
    out = tmp_path / "run"
    _write_grid(out, cfg)
    assert warm_start(cfg, search_points(cfg)[0], out, "s", [METRIC]) == []
