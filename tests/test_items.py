"""Per-item side files: the format (raysweep.items)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raysweep import items as side
from raysweep.evaluation import CapabilityScores, TaskItems
from raysweep.evaluation.dimensions import Suite, TaskSpec

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
