"""The driver's closing summary and exit status count only the trials the mode was meant to run."""

from __future__ import annotations

from pathlib import Path

from raysweep.config import TrialConfig
from raysweep.records import TrialRecord, append_record
from raysweep.run import _summary

POINTS = [TrialConfig(mix={s: 1.0}, mix_name=s) for s in ("toy_web", "toy_math_word")]


def _record(trial: TrialConfig, status: str) -> TrialRecord:
    return TrialRecord(trial_id=trial.trial_id, phase=trial.phase, status=status,
                       model=trial.model.path, method=trial.method, structure=trial.structure,
                       sparsity=trial.sparsity, mix=dict(trial.mix), mix_name=trial.mix_name,
                       n_samples=trial.n_samples, seqlen=trial.seqlen, seed=trial.seed)  # fmt: skip


def _confirm(weight: float) -> TrialConfig:
    mix = {"toy_web": weight, "toy_math_word": 1 - weight}
    return TrialConfig(phase="confirm", mix=mix, mix_name="best")


def _searched(weight: float, status: str) -> TrialRecord:
    mix = {"toy_web": weight, "toy_math_word": 1 - weight}
    return _record(TrialConfig(phase="search", mode="oneshot", mix=mix, mix_name="search"), status)


def _records(tmp_path: Path, *records: TrialRecord) -> Path:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "records.jsonl"
    path.touch()
    for record in records:
        append_record(path, record)
    return path


def test_search_alone_on_a_fresh_directory_succeeds(tmp_path, capsys):
    # --mode search: the grid never ran, so its points are no reason to fail.
    search = [_searched(w, "ok") for w in (0.2, 0.5, 0.8)]
    path = _records(tmp_path, *search, _record(_confirm(0.5), "ok"))
    assert _summary(POINTS, path, grid=False, search=True) == 0
    out = capsys.readouterr().out
    assert "3/3 search trials ok, 1/1 confirmations ok" in out and "points ok" not in out


def test_a_failed_search_trial_is_tolerated_a_failed_confirmation_is_not(tmp_path, capsys):
    trials = [_searched(0.2, "error"), _searched(0.5, "ok")]
    assert _summary(POINTS, _records(tmp_path, *trials), grid=False, search=True) == 0
    path = _records(tmp_path / "b", _record(_confirm(0.5), "error"))
    assert _summary(POINTS, path, grid=False, search=True) == 1
    assert "error: confirm wanda unstructured 0.5" in capsys.readouterr().out
    # A later ok record of the same trial wins.
    append_record(path, _record(_confirm(0.5), "ok"))
    assert _summary(POINTS, path, grid=False, search=True) == 0


def test_grid_points_missing_or_in_error_fail_the_run(tmp_path, capsys):
    path = _records(tmp_path, _record(POINTS[0], "ok"))
    assert _summary(POINTS, path, grid=True, search=False) == 1  # one point never finished
    append_record(path, _record(POINTS[1], "error"))
    assert _summary(POINTS, path, grid=True, search=False) == 1
    assert f"error: {POINTS[1].label}" in capsys.readouterr().out
    append_record(path, _record(POINTS[1], "ok"))
    assert _summary(POINTS, path, grid=True, search=False) == 0
    assert "2/2 points ok, 0 in error" in capsys.readouterr().out
