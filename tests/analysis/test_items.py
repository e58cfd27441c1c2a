"""Side files are checked against the contract and their records; a bad one leaves its trial
out of paired statistics with a note, never an exception."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis import load_records
from analysis.items import item_retention, load_items, read_item_file
from tests.analysis.items_fake import COMPACT, SUITE, FakeRun, draw, trial_file

N = 40


@pytest.fixture
def run(tmp_path):
    rng = np.random.default_rng(3)
    fake = FakeRun(tmp_path / "run", draw(rng, 0.9, N))
    for seed in range(2):
        fake.add(draw(rng, 0.6, N), mix_name="c4", seed=seed)
        fake.add(draw(rng, 0.7, N), mix_name="uniform", mix={"a": 0.5, "b": 0.5}, seed=seed)
    return fake


def _loaded(run):
    return load_items(run.root, run.records)


def test_a_good_run_loads_every_trial(run):
    items = _loaded(run)
    assert set(items.trials) == {r["trial_id"] for r in run.records}
    assert items.notes == () and items.skipped == {}
    trial = items.trials[run.records[0]["trial_id"]]
    assert items.dense_of(trial.trial_id).dense_key == run.key
    assert list(trial.tasks) == list(SUITE)
    # The retention recomputed from item means is the record's (computed in plain Python).
    for dim, value in item_retention(trial, items.dense_of(trial.trial_id)).items():
        assert value == pytest.approx(run.records[0]["retention"][dim], abs=1e-12)


def test_flattened_rows_of_the_records_reader_work_too(run):
    rows = [r.to_dict() for _, r in load_records(run.root).ok.iterrows()]
    assert set(load_items(run.root, rows).trials) == {r["trial_id"] for r in run.records}


def _damage(run, index: int, text: str) -> str:
    rec = run.records[index]
    run.side_file(rec).write_text(text)
    return rec["trial_id"]


def _rewrite(run, index: int, change) -> str:
    rec = run.records[index]
    data = json.loads(run.side_file(rec).read_text())
    change(data)
    run.side_file(rec).write_text(json.dumps(data, **COMPACT))
    return rec["trial_id"]


def _skip_reason(run, tid: str) -> str:
    items = _loaded(run)
    assert tid not in items.trials
    assert len(items.trials) == len(run.records) - 1  # the others stay usable
    assert len(items.notes) == 1 and tid in items.notes[0]
    assert "left out of paired statistics" in items.notes[0]
    return items.skipped[tid]


def test_missing_side_file(run):
    rec = run.records[1]
    run.side_file(rec).unlink()
    assert "is missing" in _skip_reason(run, rec["trial_id"])


def test_truncated_json(run):
    text = run.side_file(run.records[2]).read_text()
    tid = _damage(run, 2, text[: len(text) // 2])
    assert "not valid JSON" in _skip_reason(run, tid)


def test_wrong_format(run):
    tid = _rewrite(run, 0, lambda d: d.update(format=2))
    assert "format 2, not 1" in _skip_reason(run, tid)


def test_not_an_object(run):
    tid = _damage(run, 0, "[1, 2, 3]")
    assert "not a JSON object" in _skip_reason(run, tid)


def test_doc_ids_and_values_of_different_lengths(run):
    tid = _rewrite(run, 3, lambda d: d["tasks"]["t_math"]["values"].pop())
    assert f"{N} doc_ids but {N - 1} values" in _skip_reason(run, tid)


def test_mean_disagreeing_with_the_records_task_score(run):
    def flip(data):
        values = data["tasks"]["t_code"]["values"]
        values[0] = 1.0 - values[0]

    tid = _rewrite(run, 0, flip)
    reason = _skip_reason(run, tid)
    assert "mean of 't_code'" in reason and "disagrees with the record's task_scores" in reason


def test_a_task_missing_from_the_side_file(run):
    tid = _rewrite(run, 0, lambda d: d["tasks"].pop("t_arc"))
    assert "only in the record: t_arc" in _skip_reason(run, tid)


def test_other_items_than_the_dense_baseline(run):
    def shift(data):
        data["tasks"]["t_general"]["doc_ids"] = [i + 1 for i in range(N)]

    tid = _rewrite(run, 1, shift)
    assert "other items than in dense-" in _skip_reason(run, tid)


def test_a_trial_id_that_is_not_the_file_name(run):
    tid = _rewrite(run, 1, lambda d: d.update(trial_id="ffffffffffffffff"))
    assert "does not match the file name" in _skip_reason(run, tid)


def test_a_dense_key_other_than_the_records(run):
    rec = run.records[2]
    other = trial_file(rec["trial_id"], {t: [0.0] for t in SUITE}, key="feedbeeffeedbeef")
    run.side_file(rec).write_text(json.dumps(other))
    reason = _skip_reason(run, rec["trial_id"])
    assert "dense-feedbeeffeedbeef.json is missing" in reason


def test_a_broken_dense_file_leaves_out_every_trial_that_uses_it(run):
    (run.items / f"dense-{run.key}.json").write_text('{"format": 1, "dense_key"')
    items = _loaded(run)
    assert items.trials == {}
    assert set(items.skipped) == {r["trial_id"] for r in run.records}
    # One note for the one broken file, not one per trial resting on it.
    (note,) = items.notes
    assert note.startswith(f"dense baseline side file items/dense-{run.key}.json is broken (")
    assert "not valid JSON" in note
    assert note.endswith(f": {len(run.records)} trials resting on it left out of paired statistics")


def test_reordered_items_are_paired_by_doc_id(run):
    rec = run.records[0]
    data = json.loads(run.side_file(rec).read_text())
    for task in data["tasks"].values():
        order = list(reversed(range(N)))
        task["doc_ids"] = [task["doc_ids"][i] for i in order]
        task["values"] = [task["values"][i] for i in order]
    run.side_file(rec).write_text(json.dumps(data))
    items = _loaded(run)
    assert rec["trial_id"] in items.trials and items.notes == ()


def test_no_items_directory_means_every_trial_is_noted(tmp_path):
    rec = {"trial_id": "abc", "mix_name": "c4", "seed": 0}
    items = load_items(tmp_path, [rec])
    assert items.trials == {} and "abc.json is missing" in items.skipped["abc"]


def test_read_item_file_on_a_dense_file(run):
    dense = read_item_file(run.items / f"dense-{run.key}.json")
    assert dense.dense_key == run.key and dense.trial_id is None
    assert (
        dense.tasks["t_boolq"].chance == 0.5 and dense.tasks["t_boolq"].dimension == "commonsense"
    )
