"""What the sweep tests check of a run's per-item side files (``<output>/items/``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raysweep.items import read_items
from raysweep.records import TrialRecord


def assert_side_files(out: Path, records: list[TrialRecord]) -> None:
    """One side file per ok record and per dense baseline its records name, nothing else; each
    follows the contract and averages to its record's (or dense baseline's) task scores; the
    per-item values are in neither ``records.jsonl`` nor Tune's result logs."""
    ok = [r for r in records if r.status == "ok"]
    keys = {r.dense_cache_key for r in ok}
    names = sorted(p.name for p in (out / "items").iterdir())
    assert names == sorted([f"{r.trial_id}.json" for r in ok] + [f"dense-{k}.json" for k in keys])
    dense = {k: read_items(out / "items" / f"dense-{k}.json") for k in keys}
    for key, payload in dense.items():
        assert payload["dense_key"] == key
        stored = json.loads((out / "dense" / f"{key}.json").read_text())["scores"]["task_scores"]
        assert set(payload["tasks"]) == set(stored)
        for task, entry in payload["tasks"].items():
            assert sum(entry["values"]) / len(entry["values"]) == pytest.approx(
                stored[task], abs=1e-9
            )
    for r in ok:
        payload = read_items(out / "items" / f"{r.trial_id}.json")
        assert (
            payload["trial_id"] == r.trial_id and payload["dense"] == f"dense-{r.dense_cache_key}"
        )
        assert set(payload["tasks"]) == set(r.task_scores) == set(r.dense_task_scores)
        limit = r.config["evaluation"]["limit"]
        for task, entry in payload["tasks"].items():
            assert len(entry["values"]) == limit and set(entry["values"]) <= {0, 1}
            # Each item named by its index in the task: lm-eval's first items, or a random few.
            assert entry["doc_ids"] == sorted(set(entry["doc_ids"]))
            assert (entry["doc_ids"] == list(range(limit))) == (r.item_selection == "first")
            assert sum(entry["values"]) / limit == pytest.approx(r.task_scores[task], abs=1e-9)
            # Paired with its dense baseline item by item.
            assert entry["doc_ids"] == dense[r.dense_cache_key]["tasks"][task]["doc_ids"]
            mean = sum(dense[r.dense_cache_key]["tasks"][task]["values"]) / limit
            assert mean == pytest.approx(r.dense_task_scores[task], abs=1e-9)
    text = (out / "records.jsonl").read_text()
    assert "doc_ids" not in text and '"items' not in text
    logs = [p.read_text() for p in (out / "tune").rglob("result.json")]
    # (a trial killed before it reported has an empty result.json)
    assert any("record_json" in t for t in logs) and not any("items_json" in t for t in logs)
