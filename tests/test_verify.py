"""Before a rerun trusts what a finished run left (``raysweep verify RUN``, and the driver on every
rerun): each ok record's per-item side file and each dense baseline its records name must exist,
parse and average to the scores; what does not is named and scored again. A run written by hand
(records, side files, dense copy): no Ray, no model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raysweep import items as side
from raysweep.cli import main as raysweep_main
from raysweep.config import SweepConfig, validate_config
from raysweep.dense import SWEEP_DIR, DenseBaseline, dense_key, sweep_baseline, write_baseline
from raysweep.evaluation import CapabilityScores, TaskItems, get_suite
from raysweep.planning import trial_points
from raysweep.records import RECORDS_FILE, append_record


def _cfg(out: Path) -> SweepConfig:
    return validate_config({
        "name": "v", "output_dir": str(out), "analysis": False,
        "model": {"path": "raysweep-toy", "device": "cpu"},
        "calibration": {"sources": ["toy_general_prose", "toy_math_word"], "uniform_mix": False,
                        "n_samples": 8, "seqlen": 64},
        "pruning": {"methods": ["wanda"], "sparsities": [0.7]},
        "evaluation": {"suite": "toy", "limit": 2, "perplexity": False},
    })  # fmt: skip


def _scores(value: float) -> CapabilityScores:
    """Every toy task scored ``value`` on two items (1 and 2 * value - 1)."""
    names = get_suite("toy").task_names
    items = {t: TaskItems((0, 1), (1.0, 2 * value - 1.0)) for t in names}
    return CapabilityScores(dict.fromkeys(names, value), {}, items=items)


DENSE = _scores(0.75)


def _finished_run(out: Path) -> tuple[SweepConfig, list, str]:
    """Two ok grid points with their side files, and the dense baseline's copy and side file."""
    from raysweep.pipeline import error_record

    cfg = _cfg(out)
    points = trial_points(cfg)
    suite = get_suite("toy")
    key = dense_key(points[0].model, points[0].evaluation)
    write_baseline(out / SWEEP_DIR, DenseBaseline(key, DENSE))
    side.write_items(out, side.dense_payload(key, DENSE, suite))
    for point in points:
        scores = _scores(0.5)
        record = error_record(point, "", attempts=1).model_copy(update={
            "status": "ok", "error": None, "task_scores": scores.task_scores,
            "dense_task_scores": DENSE.task_scores, "dense_cache_key": key})  # fmt: skip
        side.write_items(out, side.trial_payload(point.trial_id, key, scores, suite),
                         task_scores=record.task_scores)  # fmt: skip
        append_record(out / RECORDS_FILE, record)
    return cfg, points, key


def test_verify_names_a_corrupt_side_file_and_the_rerun_scores_that_point_again(
    tmp_path, capsys, monkeypatch
):
    import raysweep.run as run
    import raysweep.trainables as trainables

    out = tmp_path / "run"
    cfg, points, key = _finished_run(out)
    assert raysweep_main(["verify", str(out)]) == 0
    assert "4 files of 2 ok records checked: all sound" in capsys.readouterr().out
    broken = side.trial_items_path(out, points[1].trial_id)
    broken.write_text(broken.read_text()[:40])  # cut short, as by a full disk
    assert raysweep_main(["verify", str(out)]) == 1
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if points[1].trial_id in line]
    assert len(lines) == 1 and "not valid JSON" in lines[0] and points[1].label in lines[0]
    assert points[0].trial_id not in printed
    # The rerun's plan: the point whose side file is broken is not done; it runs again, and its
    # record writer writes its side file (and record) again.
    calls = []
    monkeypatch.setattr(trainables, "run_grid", lambda cfg, todo, dense, records, storage,
                        redo=(): calls.append((todo, set(redo))) or trainables.GridOutcome())  # fmt: skip
    monkeypatch.setattr(run, "sweep_baseline", lambda point, out, compute: DENSE.without_items())
    run._sweep(cfg, points, "grid", out, out / RECORDS_FILE, str(out / "tune"))
    printed = capsys.readouterr().out
    assert calls == [([points[1]], {points[1].trial_id})]
    assert "2 points, 1 already done, 1 to run (1 scored again: its side file is broken)" in printed


def test_the_record_writer_writes_a_redone_trials_side_file_again(tmp_path):
    from raysweep.trainables import ITEMS_KEY, RECORD_KEY, callbacks

    out = tmp_path / "run"
    _, points, key = _finished_run(out)
    path = side.trial_items_path(out, points[0].trial_id)
    path.write_text("")
    record = json.loads((out / RECORDS_FILE).read_text().splitlines()[0])
    payload = side.trial_payload(points[0].trial_id, key, _scores(0.5), get_suite("toy"))
    result = {RECORD_KEY: json.dumps(record), ITEMS_KEY: side.dumps(payload)}
    trial = type("T", (), {"trial_id": "t1", "num_failures": 0,
                           "config": {"point": points[0].model_dump(mode="json")}})()  # fmt: skip
    callbacks.RecordWriter(out / RECORDS_FILE, redo=[points[0].trial_id]).on_trial_result(
        0, [], trial, result
    )
    assert side.read_items(path) == payload
    assert raysweep_main(["verify", str(out)]) == 0


@pytest.mark.parametrize(
    ("damage", "why", "computed"),
    [
        (lambda copy, items: copy.write_text("{"), "not valid JSON", True),
        (lambda copy, items: items.write_text(""), "not valid JSON", False),
        (lambda copy, items: items.write_text(items.read_text().replace("[1,0.5]", "[1,1]")),
         "values average 1.0, the score is 0.75", False),
        (lambda copy, items: copy.write_text(copy.read_text().replace("0.5", "0.25")),
         "values average 0.625, the score is 0.75", True),
    ],
)  # fmt: skip
def test_a_corrupt_dense_baseline_is_named_and_rebuilt(tmp_path, capsys, damage, why, computed):
    out = tmp_path / "run"
    cfg, points, key = _finished_run(out)
    copy, items = out / SWEEP_DIR / f"{key}.json", side.dense_items_path(out, key)
    damage(copy, items)
    assert raysweep_main(["verify", str(out)]) == 1
    printed = capsys.readouterr().out
    assert why in printed and key in printed
    # The driver's dense baseline: a broken copy is computed again (from the node's cache, in
    # a sweep) and both files written whole; a sound one is read.
    calls = []
    dense = sweep_baseline(points[0], out, lambda p: calls.append(p) or DenseBaseline(key, DENSE))
    assert dense == DenseBaseline(key, DENSE.without_items())
    assert len(calls) == computed
    assert raysweep_main(["verify", str(out)]) == 0


def test_verify_of_a_folder_without_records_exits_2(tmp_path, capsys):
    assert raysweep_main(["verify", str(tmp_path)]) == 2
    assert "holds no records.jsonl" in capsys.readouterr().err


def test_a_run_from_before_side_files_is_named_not_scored_again(tmp_path):
    import shutil

    from raysweep.verify import verify_run

    out = tmp_path / "run"
    _finished_run(out)
    shutil.rmtree(out / side.ITEMS_DIR)  # as every run was before side files were kept
    found = verify_run(out)
    assert found.legacy and found.sound and not found.trials and found.records == 2
    assert "not checked, not scored again" in found.report()[0]


def test_a_search_trials_broken_side_file_is_named_once_in_the_console_and_once_in_the_report(
    tmp_path, capsys, monkeypatch
):
    """A search trial cannot be scored again (its study holds it): the rerun names its broken
    side file once on the console and the report names it once, and its grid peers stay paired."""
    import raysweep.run as run
    import raysweep.trainables as trainables
    from raysweep.pipeline import error_record

    out = tmp_path / "run"
    cfg, points, key = _finished_run(out)
    searched_id = "5ea4c5ea4c5ea4c5"
    record = error_record(points[0], "", attempts=1).model_copy(update={
        "status": "ok", "error": None, "task_scores": _scores(0.5).task_scores,
        "dense_task_scores": DENSE.task_scores, "dense_cache_key": key,
        "trial_id": searched_id, "phase": "search", "mix_name": "search"})  # fmt: skip
    append_record(out / RECORDS_FILE, record)
    side.write_items(out, side.trial_payload(searched_id, key, _scores(0.5), get_suite("toy")),
                     task_scores=record.task_scores)  # fmt: skip
    broken = side.trial_items_path(out, searched_id)
    broken.write_text(broken.read_text()[:40])
    monkeypatch.setattr(trainables, "run_grid", lambda *a, **k: pytest.fail("nothing to run"))
    cfg = cfg.model_copy(update={"analysis": True})
    run._sweep(cfg, points, "grid", out, out / RECORDS_FILE, str(out / "tune"))
    printed = capsys.readouterr().out
    assert sum(f"{side.ITEMS_DIR}/{searched_id}.json" in line for line in printed.splitlines()) == 1
    assert "2 points, 2 already done, 0 to run" in printed
    report = (out / "report" / "report.md").read_text()
    (line,) = [line for line in report.splitlines() if searched_id in line]
    assert "left out of paired statistics" in line and "not valid JSON" in line
