"""The confirmation of a best mix is not recomputed when an ok record of that trial exists."""

from __future__ import annotations

import pytest

import raysweep.search.driver as driver
import raysweep.trainables.grid as grid
from raysweep.config import validate_config
from raysweep.items import trial_items_path, write_items
from raysweep.planning import confirm_point, confirm_points, search_points
from raysweep.records import TrialRecord, append_record

CFG = {
    "name": "s",
    "calibration": {"sources": ["toy_general_prose", "toy_math_word"]},
    "pruning": {"methods": ["wanda"], "sparsities": [0.5]},
    "evaluation": {"suite": "toy", "limit": 24},
    "search": {"n_trials": 5},
}


def _record(point, status: str, phase: str) -> TrialRecord:
    return TrialRecord(trial_id=point.trial_id, status=status, phase=phase, model="m",
                       method=point.method, structure=point.structure, sparsity=point.sparsity,
                       mix=point.mix, mix_name=point.mix_name, n_samples=8, seqlen=64, seed=0)  # fmt: skip


def _ok(records, point, phase: str) -> None:
    """An ok record of ``point`` and its side file (no tasks: the records here have no scores)."""
    write_items(records.parent, {"format": 1, "trial_id": point.trial_id, "dense": "dense-",
                                 "tasks": {}})  # fmt: skip
    append_record(records, _record(point, "ok", phase))


@pytest.fixture
def point_and_runs(tmp_path, monkeypatch):
    cfg = validate_config({**CFG, "output_dir": str(tmp_path)})
    point = confirm_point(cfg, search_points(cfg)[0], {"toy_general_prose": 0.3,
                                                       "toy_math_word": 0.7})  # fmt: skip
    runs: list[str] = []

    def fake_run_grid(cfg, points, dense, records, storage, *, phase="grid", callbacks=(),
                      redo=()):  # fmt: skip
        runs.append((phase, list(redo)))
        for p in points:
            _ok(records, p, phase)

    monkeypatch.setattr(grid, "run_grid", fake_run_grid)
    monkeypatch.setattr(driver, "sweep_baseline", lambda point, out, compute: None)
    return cfg, point, runs


@pytest.mark.parametrize("phase", ["confirm", "grid"])
def test_an_ok_record_of_the_same_trial_is_reused(tmp_path, point_and_runs, phase):
    cfg, point, runs = point_and_runs
    records = tmp_path / "records.jsonl"
    _ok(records, point, phase)
    append_record(records, _record(point, "error", "confirm"))  # a later failure hides nothing
    (found,) = driver.confirm(cfg, [point], tmp_path, records, "storage")
    assert runs == [] and found.status == "ok" and found.phase == phase


def test_an_ok_record_whose_side_file_is_broken_is_confirmed_again(tmp_path, point_and_runs):
    cfg, point, runs = point_and_runs
    records = tmp_path / "records.jsonl"
    _ok(records, point, "grid")
    trial_items_path(tmp_path, point.trial_id).write_text('{"format": 1, "tri')
    (found,) = driver.confirm(cfg, [point], tmp_path, records, "storage")
    assert runs == [("confirm", [point.trial_id])] and found.phase == "confirm"


def test_without_an_ok_record_the_confirmation_runs(tmp_path, point_and_runs):
    cfg, point, runs = point_and_runs
    records = tmp_path / "records.jsonl"
    append_record(records, _record(point, "error", "confirm"))
    (found,) = driver.confirm(cfg, [point], tmp_path, records, "storage")
    assert runs == [("confirm", [])] and found.status == "ok"


def test_with_several_seeds_only_the_seeds_not_yet_confirmed_run(tmp_path, monkeypatch):
    cfg = validate_config({**CFG, "output_dir": str(tmp_path),
                           "search": {**CFG["search"], "seeds": [0, 1, 2]}})  # fmt: skip
    points = confirm_points(cfg, search_points(cfg)[0], {"toy_general_prose": 0.3,
                                                         "toy_math_word": 0.7})  # fmt: skip
    ran: list[list[int]] = []

    def fake_run_grid(cfg, todo, dense, records, storage, *, phase="grid", callbacks=(),
                      redo=()):  # fmt: skip
        ran.append([p.seed for p in todo])
        for p in todo:
            _ok(records, p, phase)

    monkeypatch.setattr(grid, "run_grid", fake_run_grid)
    monkeypatch.setattr(driver, "sweep_baseline", lambda point, out, compute: None)
    records = tmp_path / "records.jsonl"
    _ok(records, points[1], "grid")  # seed 1: the grid ran this trial
    found = driver.confirm(cfg, points, tmp_path, records, "storage")
    assert ran == [[0, 2]]
    assert [r.trial_id for r in found] == [p.trial_id for p in points]
