import json
import math
import shutil

import pandas as pd
import pytest

from analysis import BrokenLine, RecordsWarning, flatten_record, load_records, source_means
from tests.analysis.hand import GOLDEN, raw_records, seed_means


def test_truncated_last_line_is_reported_by_number_and_skipped():
    with pytest.warns(RecordsWarning, match=r"golden_records\.jsonl:61: skipped unreadable record"):
        records = load_records(GOLDEN)
    assert len(GOLDEN.read_text().splitlines()) == 61
    assert [b.line for b in records.broken_lines] == [61]
    assert records.broken_lines[0].reason.startswith("not valid JSON: ")
    assert len(records.trials) == 60
    assert len(records.ok) == 59
    assert records.n_errors == 1
    assert records.error_counts() == {"RuntimeError: Cholesky failed": 1}


def test_broken_middle_line_and_blank_lines_do_not_stop_reading(tmp_path):
    lines = GOLDEN.read_text().splitlines()[:3]
    path = tmp_path / "records.jsonl"
    path.write_text(lines[0] + "\n\n" + '{"trial_id": "x", "stat' + "\n[1, 2]\n" + lines[1] + "\n")
    with pytest.warns(RecordsWarning) as caught:
        records = load_records(tmp_path)  # a run directory resolves to its records.jsonl
    assert [str(w.message).split(": skipped")[0] for w in caught] == [
        f"{path}:3",
        f"{path}:4",
    ]
    assert records.broken_lines == (
        BrokenLine(3, "not valid JSON: Unterminated string starting at, column 19"),
        BrokenLine(4, "not a JSON object (list)"),
    )
    assert records.trials["trial_id"].tolist() == ["g001", "g002"]


def test_missing_records_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no records file at .*records\.jsonl"):
        load_records(tmp_path)


def test_flatten_record_dots_mappings_and_keeps_nested_config_as_json():
    row = flatten_record(
        {
            "trial_id": "t",
            "mix": {"c4": 1.0},
            "mix_name": "c4",
            "retention": {"code": 0.5, "math": None},
            "config": {"pruning": {"method": "wanda"}},
        }
    )
    assert row == {
        "trial_id": "t",
        "mix.c4": 1.0,
        "mix_name": "c4",
        "retention.code": 0.5,
        "retention.math": None,
        "config": json.dumps({"pruning": {"method": "wanda"}}),
        "n_sources": 1,
        "source": "c4",
    }
    assert (
        flatten_record({"mix": {"a": 0.5, "b": 0.5}, "mix_name": "uniform"})["source"] == "uniform"
    )


def test_source_means_group_and_average_seeds_like_a_hand_count():
    with pytest.warns(RecordsWarning):
        records = load_records(GOLDEN)
    table = source_means(records.ok)
    expected = seed_means(raw_records(GOLDEN))
    assert set(expected) == {
        ("wanda", "unstructured", 0.5),
        ("wanda", "unstructured", 0.7),
        ("magnitude", "unstructured", 0.5),
    }
    assert len(table) == sum(len(sources) for sources in expected.values()) == 15
    for _, row in table.iterrows():
        hand = expected[(row["method"], row["structure"], row["sparsity"])][row["source"]]
        for column, want in hand.items():
            name = (
                "total_retention"
                if column == "total"
                else f"calib_metrics.{column[6:]}"
                if column.startswith("calib:")
                else f"retention.{column}"
            )
            assert row[name] == pytest.approx(want, rel=1e-12), (row["source"], column)
    # metamath at 50 % has one seed without a code retention: the mean is over the other two.
    row = table[(table["method"] == "wanda") & (table["sparsity"] == 0.5)]
    row = row[row["source"] == "metamath"].iloc[0]
    assert row["n_seeds"] == 3
    codes = [
        r["retention"]["code"]
        for r in raw_records(GOLDEN)
        if r["mix"] == {"metamath": 1.0} and r["sparsity"] == 0.5 and r["method"] == "wanda"
    ]
    assert codes.count(None) == 1
    assert row["retention.code"] == pytest.approx(sum(c for c in codes if c) / 2, rel=1e-12)
    # the failed c4 trial at 70 % (seed 3) is not averaged in.
    c4 = table[
        (table["sparsity"] == 0.7) & (table["source"] == "c4") & (table["method"] == "wanda")
    ]
    assert c4["n_seeds"].tolist() == [3]


def test_retention_columns_are_floats_with_nan_for_missing():
    with pytest.warns(RecordsWarning):
        trials = load_records(GOLDEN).trials
    assert pd.api.types.is_float_dtype(trials["retention.code"])
    assert trials["retention.code"].isna().sum() == 2  # the None above and the failed trial
    assert math.isnan(trials.loc[trials["status"] == "error", "total_retention"].iloc[0])


def test_directory_and_file_load_the_same(tmp_path):
    shutil.copy(GOLDEN, tmp_path / "records.jsonl")
    with pytest.warns(RecordsWarning):
        a = load_records(GOLDEN)
    with pytest.warns(RecordsWarning):
        b = load_records(tmp_path)
    pd.testing.assert_frame_equal(a.trials, b.trials)


def test_a_retried_trial_counts_once_with_its_latest_ok_record(tmp_path):
    first, second = (json.loads(line) for line in GOLDEN.read_text().splitlines()[:2])
    failed = first | {"status": "error", "error": "OOM", "retention": {}}
    rerun = first | {"retention": first["retention"] | {"general": 0.123}}
    lines = [failed, first, second, rerun, failed, {"status": "ok", "mix": {}, "mix_name": "x"}]
    (tmp_path / "records.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    records = load_records(tmp_path)
    assert records.superseded == 3
    assert records.trials["trial_id"].tolist()[:2] == ["g002", "g001"]
    assert records.trials["trial_id"].isna().tolist() == [False, False, True]
    assert records.trials.loc[1, "retention.general"] == 0.123
    assert records.n_errors == 0


def test_legacy_peak_memory_is_the_host_peak_on_cpu_and_unknown_on_cuda():
    cpu = flatten_record({"trial_id": "a", "device": "cpu", "peak_memory_bytes": 10})
    cuda = flatten_record({"trial_id": "b", "device": "cuda:0", "peak_memory_bytes": 10})
    new = flatten_record({"trial_id": "c", "peak_host_bytes": 5, "peak_device_bytes": None})
    assert (cpu["peak_host_bytes"], cpu["peak_device_bytes"]) == (10, None)
    assert (cuda["peak_host_bytes"], cuda["peak_device_bytes"]) == (None, None)
    assert "peak_memory_bytes" not in cpu and "peak_memory_bytes" not in cuda
    assert (new["peak_host_bytes"], new["peak_device_bytes"]) == (5, None)
