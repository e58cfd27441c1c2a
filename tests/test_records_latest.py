"""One rule for which record of a trial counts: its last ok record, else its last record."""

from __future__ import annotations

from analysis.records import latest_per_trial as analysis_latest
from raysweep.records import TrialRecord, latest_per_trial


def _rows():
    base = {"model": "m", "method": "wanda", "structure": "unstructured", "sparsity": 0.5,
            "mix": {"a": 1.0}, "mix_name": "a", "n_samples": 8, "seqlen": 64, "seed": 0}  # fmt: skip
    plan = [("x", "error", 1), ("x", "ok", 2), ("y", "ok", 3), ("x", "error", 4), ("y", "ok", 5),
            ("z", "error", 6), ("z", "error", 7)]  # fmt: skip
    return [{**base, "trial_id": t, "status": s, "attempts": n} for t, s, n in plan]


def test_the_latest_ok_record_wins():
    latest = latest_per_trial(TrialRecord.model_validate(r) for r in _rows())
    assert {i: r.attempts for i, r in latest.items()} == {"x": 2, "y": 5, "z": 7}


def test_analysis_applies_the_same_rule_to_raw_rows():
    raw = {r["trial_id"]: r["attempts"] for r in analysis_latest(_rows())}
    typed = latest_per_trial(TrialRecord.model_validate(r) for r in _rows())
    assert raw == {i: r.attempts for i, r in typed.items()}
