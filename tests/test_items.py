"""Per-item side files: the format (raysweep.items), a trial's payload, and the driver's writer
putting a trial's side file in place before its record."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from raysweep import items as side
from raysweep.config import EvaluationConfig, TrialConfig
from raysweep.evaluation import CapabilityScores, TaskItems, get_suite
from raysweep.evaluation.dimensions import Suite, TaskSpec
from raysweep.evaluation.subsets import random_subset
from raysweep.records import read_records

SUITE = Suite(
    name="two",
    tasks=(
        TaskSpec("t_general", "general", "acc", 0, 0.25),
        TaskSpec("t_math", "math", "exact_match,strict-match", 5, 0.0),
    ),
)
SCORES = CapabilityScores(
    {"t_general": 0.5, "t_math": 0.375},
    {"general": 0.5, "math": 0.375},
    items={
        "t_general": TaskItems((0, 1, 2, 3), (1.0, 0.0, 1.0, 0.0)),
        "t_math": TaskItems((7, 3), (0.25, 0.5)),
    },
)
TRIAL_ID = "0123456789abcdef"


def test_trial_payload_follows_the_contract_and_round_trips(tmp_path: Path) -> None:
    payload = side.trial_payload(TRIAL_ID, "model@r--two--limitNone--seed0--abc", SCORES, SUITE)
    path = side.write_items(tmp_path, payload)
    assert path == tmp_path / "items" / f"{TRIAL_ID}.json"
    text = path.read_text()
    assert " " not in text and "\n" not in text  # compact separators
    assert text == side.dumps(payload)
    data = json.loads(text)
    assert data == {
        "format": 1,
        "trial_id": TRIAL_ID,
        "dense": "dense-model@r--two--limitNone--seed0--abc",
        "tasks": {
            "t_general": {"dimension": "general", "chance": 0.25, "metric": "acc",
                          "doc_ids": [0, 1, 2, 3], "values": [1, 0, 1, 0]},
            "t_math": {"dimension": "math", "chance": 0.0, "metric": "exact_match,strict-match",
                       "doc_ids": [7, 3], "values": [0.25, 0.5]},
        },
    }  # fmt: skip
    assert all(isinstance(v, int) for v in data["tasks"]["t_general"]["values"])
    assert side.read_items(path) == data
    side.validate(data, task_scores=SCORES.task_scores)  # means equal the scores


def test_dense_payload_is_named_by_its_key(tmp_path: Path) -> None:
    path = side.write_items(tmp_path, side.dense_payload("k1", SCORES, SUITE))
    assert path == side.dense_items_path(tmp_path, "k1") == tmp_path / "items" / "dense-k1.json"
    data = side.read_items(path)
    assert data["dense_key"] == "k1" and "trial_id" not in data and "dense" not in data
    assert set(data["tasks"]) == {"t_general", "t_math"}


def test_scores_without_items_make_no_payload() -> None:
    with pytest.raises(ValueError, match="no per-item values"):
        side.trial_payload(TRIAL_ID, "k", SCORES.without_items(), SUITE)
    # and are written as before: no "items" key in a cache entry or a record's dense scores
    assert "items" not in SCORES.without_items().to_dict()
    assert CapabilityScores.from_dict(SCORES.to_dict()) == SCORES


def _good() -> dict:
    return json.loads(side.dumps(side.trial_payload(TRIAL_ID, "k", SCORES, SUITE)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(format=2), "format-1"),
        (lambda p: p.update(trial_id="xyz"), "16 hex"),
        (lambda p: p.pop("dense"), "expected trial_id and dense"),
        (lambda p: p["tasks"]["t_general"].pop("chance"), "expected keys"),
        (lambda p: p["tasks"]["t_general"]["values"].pop(), "4 doc_ids but 3 values"),
        (lambda p: p["tasks"]["t_general"].update(doc_ids=[0, 0, 1, 2]), "twice"),
        (lambda p: p["tasks"]["t_general"].update(doc_ids=[0, 1, 2, "3"]), "integers"),
        (lambda p: p["tasks"]["t_general"].update(values=[1, 0, None, 0]), "finite"),
        (lambda p: p["tasks"]["t_general"].update(doc_ids=[], values=[]), "non-empty"),
    ],
)
def test_validate_names_what_is_wrong(change, message) -> None:
    payload = _good()
    change(payload)
    with pytest.raises(ValueError, match=message):
        side.validate(payload)


def test_validate_against_a_record_checks_the_means() -> None:
    with pytest.raises(ValueError, match="average 0.5, the score is 0.75"):
        side.validate(_good(), task_scores={**SCORES.task_scores, "t_general": 0.75})
    with pytest.raises(ValueError, match="no score in the record"):
        side.validate(_good(), task_scores={"t_general": 0.5})


def test_a_real_trials_payload_averages_to_its_record() -> None:
    from raysweep.dense import DenseBaseline
    from raysweep.pipeline import run_trial_with_items

    evaluation = EvaluationConfig(suite="toy", limit=5, perplexity=False)
    trial = TrialConfig(mix={"toy_math_word": 1.0}, mix_name="math", n_samples=4, seqlen=32,
                        method="wanda", sparsity=0.6, evaluation=evaluation)  # fmt: skip
    dense = DenseBaseline(
        "the-key", CapabilityScores({}, dict.fromkeys(get_suite("toy").dimensions, 1.0))
    )
    outcome = run_trial_with_items(trial, dense)
    payload = side.validate(json.loads(side.dumps(outcome.items)),
                            task_scores=outcome.record.task_scores)  # fmt: skip
    assert payload["trial_id"] == trial.trial_id and payload["dense"] == "dense-the-key"
    assert set(payload["tasks"]) == set(get_suite("toy").task_names)
    # The schema's default: 5 of each task's 400 items drawn at random; the side file names
    # each by its index in the task, and the record says how the items were chosen.
    assert (outcome.record.item_selection, outcome.record.item_seed) == ("random", 0)
    for spec in get_suite("toy").tasks:
        entry = payload["tasks"][spec.name]
        assert entry["doc_ids"] == random_subset(spec.name, 400, 5, 0)
        assert entry["doc_ids"] != [0, 1, 2, 3, 4]
        assert (entry["dimension"], entry["chance"], entry["metric"]) == (
            spec.dimension, spec.chance, spec.metric)  # fmt: skip
    record = json.loads(outcome.record.to_json())
    assert "items" not in record and "doc_ids" not in outcome.record.to_json()


# --------------------------------------------------------------------------- the driver's writer


def _fake_trial(point: TrialConfig) -> SimpleNamespace:
    return SimpleNamespace(trial_id="tune_0001", num_failures=0,
                           config={"point": point.model_dump(mode="json")})  # fmt: skip


def _reported(point: TrialConfig) -> tuple[dict, dict]:
    from raysweep.pipeline import error_record
    from raysweep.trainables import ITEMS_KEY, RECORD_KEY

    record = error_record(point, "", attempts=1).model_copy(
        update={"status": "ok", "error": None, "task_scores": dict(SCORES.task_scores)}
    )
    payload = side.trial_payload(point.trial_id, "k", SCORES, SUITE)
    return {RECORD_KEY: record.to_json(), ITEMS_KEY: side.dumps(payload)}, payload


def test_record_writer_puts_the_side_file_in_place_before_the_record(tmp_path, monkeypatch):
    from raysweep.trainables import ITEMS_KEY, callbacks

    point = TrialConfig(mix={"toy_web": 1.0}, mix_name="toy_web")
    records = tmp_path / "records.jsonl"
    side_file = side.trial_items_path(tmp_path, point.trial_id)
    seen: list[bool] = []
    real_append = callbacks.append_record

    def append(path, record):  # noqa: ANN001, ANN202
        seen.append(
            side_file.is_file() and side.read_items(side_file)["trial_id"] == record.trial_id
        )
        real_append(path, record)

    monkeypatch.setattr(callbacks, "append_record", append)
    writer = callbacks.RecordWriter(records)
    result, payload = _reported(point)
    writer.on_trial_result(0, [], _fake_trial(point), result)
    assert seen == [True]
    assert json.loads(side_file.read_text()) == payload
    assert ITEMS_KEY not in result  # taken out before Tune logs and keeps the result
    assert "doc_ids" not in records.read_text()
    # The same trial reported again (a resumed driver, a duplicate): nothing is written twice.
    stamp = side_file.stat().st_mtime_ns
    again, _ = _reported(point)
    callbacks.RecordWriter(records).on_trial_result(0, [], _fake_trial(point), again)
    assert len(read_records(records).records) == 1 and side_file.stat().st_mtime_ns == stamp


def test_a_search_trial_over_several_seeds_writes_each_seeds_record_and_side_file(tmp_path):
    from raysweep.trainables import ITEMS_KEY, RECORD_KEY, callbacks

    points = [TrialConfig(mix={"toy_web": 1.0}, mix_name="toy_web", seed=s) for s in (0, 1)]
    reported = [_reported(p)[0] for p in points]
    result = {key: [r[key] for r in reported] for key in (RECORD_KEY, ITEMS_KEY)}
    records = tmp_path / "records.jsonl"
    callbacks.RecordWriter(records).on_trial_result(0, [], _fake_trial(points[0]), result)
    assert [(r.trial_id, r.seed) for r in read_records(records).records] == [
        (p.trial_id, p.seed) for p in points]  # fmt: skip
    for p in points:
        assert (
            side.read_items(side.trial_items_path(tmp_path, p.trial_id))["trial_id"] == p.trial_id
        )
    assert ITEMS_KEY not in result


def test_a_bad_payload_is_reported_and_the_record_still_written(tmp_path, capsys):
    from raysweep.trainables import ITEMS_KEY, callbacks

    point = TrialConfig(mix={"toy_web": 1.0}, mix_name="toy_web")
    result, payload = _reported(point)
    payload["tasks"]["t_math"]["values"] = [1, 1]  # no longer averages to the record's score
    result[ITEMS_KEY] = side.dumps(payload)
    callbacks.RecordWriter(tmp_path / "records.jsonl").on_trial_result(
        0, [], _fake_trial(point), result
    )
    assert "no per-item side file" in capsys.readouterr().err
    assert not (tmp_path / "items").exists()
    assert [r.trial_id for r in read_records(tmp_path / "records.jsonl").records] == [
        point.trial_id
    ]


# ---------------------------------------------------------------- the analysis reader's copy

# analysis reads side files without importing raysweep, so it keeps its own reader; the two
# must agree on the format's names and on what a malformed file is.
_MALFORMED = {
    "wrong format": lambda p: p.update(format=2),
    "no tasks": lambda p: p.pop("tasks"),
    "a task lacks values": lambda p: p["tasks"]["t_general"].pop("values"),
    "lists of different lengths": lambda p: p["tasks"]["t_general"]["values"].pop(),
    "no items": lambda p: p["tasks"]["t_math"].update(doc_ids=[], values=[]),
    "a doc_id is not an integer": lambda p: p["tasks"]["t_math"]["doc_ids"].__setitem__(0, "7"),
    "a value is not a number": lambda p: p["tasks"]["t_math"]["values"].__setitem__(0, "x"),
    "chance is not a number": lambda p: p["tasks"]["t_math"].update(chance=None),
    "dense is not a dense file": lambda p: p.update(dense="baseline"),
}


def test_the_analysis_reader_agrees_with_the_format() -> None:
    import analysis.items as reader
    from raysweep.evaluation.scoring import ITEM_MEAN_TOLERANCE

    assert (reader.FORMAT, reader.ITEMS_DIR) == (side.FORMAT, side.ITEMS_DIR)
    assert side.dense_stem("") == reader.DENSE_PREFIX
    assert reader.SCORE_TOLERANCE == ITEM_MEAN_TOLERANCE


@pytest.mark.parametrize("damage", sorted(_MALFORMED))
def test_a_file_the_writer_refuses_the_analysis_reader_refuses(tmp_path: Path, damage: str):
    import analysis.items as reader

    good = side.trial_payload(TRIAL_ID, "k", SCORES, SUITE)
    path = tmp_path / f"{TRIAL_ID}.json"
    path.write_text(side.dumps(good))
    assert reader.read_item_file(path).trial_id == TRIAL_ID  # the intact file reads
    bad = json.loads(side.dumps(good))
    _MALFORMED[damage](bad)
    with pytest.raises(ValueError):
        side.validate(bad)
    path.write_text(json.dumps(bad))
    with pytest.raises(reader.ItemsError):
        reader.read_item_file(path)
