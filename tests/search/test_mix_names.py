"""The grid's uniform mix (equal per dimension) and the search's equal-per-source mix have
different names, in records and in the search summary; old records stay readable."""

from __future__ import annotations

import json

from raysweep.records import TrialRecord, append_record, read_records
from raysweep.search.driver import _write_summary, mix_label


def _record(**changes) -> TrialRecord:
    row = {"trial_id": "t", "status": "ok", "model": "m", "method": "wanda",
           "structure": "unstructured", "sparsity": 0.5, "mix": {"a": 0.5, "b": 0.5},
           "mix_name": "uniform", "n_samples": 8, "seqlen": 64, "seed": 0,
           "retention": {"math": 0.9}, "total_retention": 0.9, "worst_retention": 0.9}  # fmt: skip
    return TrialRecord.model_validate({**row, **changes})


def test_the_searchs_equal_weights_are_not_called_uniform():
    assert mix_label({"a": 0.5, "b": 0.5}) == "equal_sources"
    assert mix_label({"a": 1.0, "b": 0.0}) == "a"
    assert mix_label({"a": 0.7, "b": 0.3}) == "search"


def test_an_old_search_record_called_uniform_reads_as_equal_sources(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(_record(phase="search").model_dump(mode="json")) + "\n")
    with path.open("a") as f:  # as written before the rename
        f.write(json.dumps({**_record(phase="search").model_dump(mode="json"),
                            "mix_name": "uniform"}) + "\n")  # fmt: skip
    append_record(path, _record(phase="grid"))
    names = [(r.phase, r.mix_name) for r in read_records(path).records]
    assert names == [("search", "equal_sources")] * 2 + [("grid", "uniform")]


def test_the_summary_shows_the_two_under_two_labels(tmp_path):
    row = {"mix": {"a": 0.5, "b": 0.5}, "retention": {"math": 0.9}, "total_retention": 0.9,
           "worst_retention": 0.9, "retention_above_chance": {}, "status": "ok"}  # fmt: skip
    summary = {"search": "wanda unstructured 0.5", "objective": "worst_retention", "n_trials": 3,
               "wall_s": 1.0, "storage": "sqlite:///x", "best_weights": {"a": 0.5, "b": 0.5},
               "search_suite": {"suite": "toy", "limit": 12},
               "search_suite_rows": {"best_mix": row, "equal_sources": row},
               "full_suite_rows": {"best_mix": row, "uniform": row}}  # fmt: skip
    _write_summary(tmp_path, [summary])
    md = (tmp_path / "summary.md").read_text()
    inside, confirmed = md.split("**confirmed")
    assert "| equal weight per source |" in inside and "uniform" not in inside
    assert "| uniform mix (equal weight per dimension) |" in confirmed
    assert "per source" not in confirmed
