"""Trials stopped at a rung: Optuna learns PRUNED (not a value), the record writer leaves a
``stopped`` record, and neither the best mix nor the progress line takes a rung's value
(Optuna and its SQLite study for real; Tune's loop a plain one, no Ray)."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
from optuna.trial import TrialState

from raysweep.config import TrialConfig
from raysweep.records import read_records
from raysweep.search import tuner as search_tuner
from raysweep.search.objectives import ITEMS_PER_TASK, METRIC, RUNG_KEY
from raysweep.trainables.callbacks import RecordWriter, SearchProgress
from raysweep.trainables.trial import RECORD_KEY

from . import analytic

STOPPED = {0, 2, 5}  # trials the "scheduler" stops at their first rung


def _rung(value: float) -> dict:
    return {METRIC: value, ITEMS_PER_TASK: 50, "training_iteration": 1, RUNG_KEY: ""}


class _StoppingTuner:
    """``tune.Tuner`` as a loop: every trial reports a rung; those in STOPPED end there (with a
    rung value above any finished trial's), the others finish with the analytic objective."""

    def __init__(self, trainable, *, param_space, tune_config, run_config) -> None:  # noqa: ANN001
        self.search, self.n = tune_config.search_alg, tune_config.num_samples
        assert tune_config.scheduler is not None

    def fit(self) -> None:
        for i in range(self.n):
            tid = f"t{i}"
            config = self.search.suggest(tid)
            rung = _rung(5.0)
            if i in STOPPED:
                # Tune gives the rung that stops a trial to on_trial_complete alone.
                self.search.on_trial_complete(tid, rung)
                continue
            self.search.on_trial_result(tid, rung)
            value = float(analytic.scores(config["weights"]).min())
            self.search.on_trial_complete(tid, {METRIC: value, "training_iteration": 2})


def test_stopped_trials_are_pruned_count_as_proposals_and_never_win(tmp_path, monkeypatch):
    monkeypatch.setattr(search_tuner.tune, "Tuner", _StoppingTuner)
    scheduler = search_tuner.early_stopping_scheduler("asha", max_t=400, grace_period=50,
                                                      reduction_factor=3)  # fmt: skip
    res = search_tuner.run_mix_search(
        analytic.trainable, sources=analytic.SOURCES, base_config={}, study_dir=tmp_path,
        study_name="s", n_trials=8, max_concurrent=1, scheduler=scheduler,
    )  # fmt: skip
    study = optuna.load_study(study_name="s", storage=res.storage_url)
    states = [t.state for t in study.trials]
    assert [i for i, s in enumerate(states) if s == TrialState.PRUNED] == sorted(STOPPED)
    # The rung is an intermediate value (TPE ranks a pruned trial by it, below every complete
    # one), not a complete value.
    assert all(t.intermediate_values == {1: 5.0} for t in study.trials)
    assert res.n_stopped == 3 and res.n_trials == 5
    assert res.best_value < 5.0  # a finished trial's value, never a stopped rung's
    # A stopped trial was a proposed mix: the study needs no more trials.
    assert search_tuner.trials_to_run(tmp_path, "s", 8, analytic.SOURCES) == 0
    assert not search_tuner.missing_baselines(res.storage_url, "s", analytic.SOURCES)
    # A driver killed with a trial running: on resume that trial fails, the stopped ones stay.
    study.add_trial(optuna.trial.create_trial(
        params=study.trials[1].params, distributions=study.trials[1].distributions,
        state=TrialState.RUNNING,
    ))  # fmt: skip
    assert search_tuner.fail_stale_trials(res.storage_url, "s") == 1
    study = optuna.load_study(study_name="s", storage=res.storage_url)
    assert sum(t.state == TrialState.PRUNED for t in study.trials) == 3


def _point(**changes) -> TrialConfig:
    return TrialConfig(mix={"toy_math_word": 1.0}, mix_name="toy_math_word", phase="search",
                       **changes)  # fmt: skip


def test_a_stopped_trial_leaves_its_stopped_record_and_no_best(tmp_path, capsys):
    point = _point()
    stopped = {"trial_id": point.trial_id, "phase": "search", "status": "stopped",
               "stopped_at_items": 50, "model": "m", "method": "wanda", "structure":
               "unstructured", "sparsity": 0.5, "mix": point.mix, "mix_name": point.mix_name,
               "n_samples": 128, "seqlen": 2048, "seed": 0, "worst_retention": 0.9}  # fmt: skip
    import json

    rung = {**_rung(0.9), RUNG_KEY: json.dumps(stopped)}
    trial = SimpleNamespace(trial_id="t0", config={"point": point.model_dump(mode="json"),
                            "weights": point.mix}, last_result=rung, num_failures=0)  # fmt: skip
    writer = RecordWriter(tmp_path / "records.jsonl")
    progress = SearchProgress("search", 1, METRIC, "worst_retention")
    for callback in (writer, progress):
        callback.on_trial_start(0, [], trial)
        callback.on_trial_result(0, [], trial, dict(rung))
        callback.on_trial_complete(0, [], trial)
    (record,) = read_records(tmp_path / "records.jsonl").records
    assert (record.status, record.stopped_at_items) == ("stopped", 50)
    assert writer.stopped == 1 and not writer.errors and writer.ok == 0
    assert progress.best is None  # a rung's value is not a finished trial's
    assert not (tmp_path / "items").exists()  # no side file: not a finished evaluation
    # A finished trial's report is written once, from its result, never again on completion.
    done = {**stopped, "status": "ok", "stopped_at_items": None}
    trial.last_result = {RECORD_KEY: json.dumps(done), METRIC: 0.9}
    writer.on_trial_complete(0, [], trial)
    assert len(read_records(tmp_path / "records.jsonl").records) == 1


def test_the_run_summary_counts_stopped_trials_apart_and_succeeds(tmp_path, capsys):
    from raysweep.records import TrialRecord, append_record
    from raysweep.run import _summary

    path = tmp_path / "records.jsonl"
    path.touch()
    for weight, status in ((0.2, "stopped"), (0.5, "ok"), (0.8, "stopped")):
        point = TrialConfig(phase="search", mix={"toy_web": weight, "toy_math_word": 1 - weight},
                            mix_name="search")  # fmt: skip
        append_record(path, TrialRecord(
            trial_id=point.trial_id, phase="search", status=status, model="m", method="wanda",
            structure="unstructured", sparsity=0.5, mix=point.mix, mix_name="search",
            n_samples=128, seqlen=2048, seed=0, stopped_at_items=50 if status != "ok" else None,
        ))  # fmt: skip
    assert _summary([], path, grid=False, search=True) == 0
    assert "1/3 search trials ok, 2 stopped early, 0/0 confirmations" in capsys.readouterr().out
