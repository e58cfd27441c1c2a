import json
from pathlib import Path

import pytest

from raysweep.records import TrialRecord, append_record, finished_ids, read_records, trial_id_for


def _record(i: int, status: str = "ok") -> TrialRecord:
    return TrialRecord(
        trial_id=f"t{i}",
        status=status,  # type: ignore[arg-type]
        model="raysweep-toy",
        method="wanda",
        structure="unstructured",
        sparsity=0.6,
        achieved_sparsity=0.6,
        mix={"toy_math": 0.25, "toy_code": 0.75},
        mix_name="m",
        n_samples=16,
        seqlen=128,
        seed=i,
        calib_metrics={"ngram4_aggregation": 0.125, "perplexity": 7.5},
        retention={"math": 0.5, "code": None},
        total_retention=0.5,
        worst_retention=0.5,
        timings={"total_s": 1.0},
        versions={"raysweep": "0.1.0"},
    )


def test_record_round_trip(tmp_path):
    path = tmp_path / "records.jsonl"
    recs = [_record(0), _record(1, "error")]
    for r in recs:
        append_record(path, r)
    back = read_records(path)
    assert back.records == recs
    assert back.bad_lines == []
    assert finished_ids(path) == {"t0"}


def test_truncated_last_line_is_reported_and_next_append_survives(tmp_path):
    path = tmp_path / "records.jsonl"
    append_record(path, _record(0))
    full = _record(1).to_json()
    with open(path, "a") as f:
        f.write(full[: len(full) // 2])  # a crash mid-write: no newline
    with pytest.warns(UserWarning, match=r"records.jsonl:2: skipped unreadable record"):
        back = read_records(path)
    assert [r.trial_id for r in back.records] == ["t0"]
    assert [ln for ln, _ in back.bad_lines] == [2]
    append_record(path, _record(2))
    back = read_records(path, warn=False)
    assert [r.trial_id for r in back.records] == ["t0", "t2"]
    assert [ln for ln, _ in back.bad_lines] == [2]


def test_trial_id_is_order_independent_and_sensitive():
    a = trial_id_for({"x": 1, "mix": {"a": 0.5, "b": 0.5}})
    b = trial_id_for({"mix": {"b": 0.5, "a": 0.5}, "x": 1})
    c = trial_id_for({"mix": {"b": 0.5, "a": 0.5}, "x": 2})
    assert a == b != c
    assert len(a) == 16


def test_record_rejects_unknown_fields():
    data = json.loads(_record(0).to_json())
    data["surprise"] = 1
    with pytest.raises(ValueError, match="surprise"):
        TrialRecord.model_validate(data)


def _legacy(device: str) -> dict:
    """A record as written before host and device peaks were separate fields."""
    data = json.loads(_record(0).to_json())
    del data["peak_host_bytes"], data["peak_device_bytes"]
    return data | {"peak_memory_bytes": 123_456, "device": device}


def test_new_records_write_separate_peaks_and_no_legacy_field():
    data = json.loads(_record(0).model_copy(update={"peak_host_bytes": 7}).to_json())
    assert data["peak_host_bytes"] == 7 and data["peak_device_bytes"] is None
    assert "peak_memory_bytes" not in data


def test_legacy_peak_loads_as_the_host_peak_on_cpu_and_unsplit_on_cuda(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(_legacy("cpu")) + "\n" + json.dumps(_legacy("cuda:0")) + "\n")
    cpu, cuda = read_records(path).records
    assert (cpu.peak_host_bytes, cpu.peak_device_bytes, cpu.peak_memory_bytes) == (
        123_456,
        None,
        123_456,
    )
    assert (cuda.peak_host_bytes, cuda.peak_device_bytes, cuda.peak_memory_bytes) == (
        None,
        None,
        123_456,
    )
    assert json.loads(cuda.to_json())["peak_memory_bytes"] == 123_456  # kept on rewrite


def test_failures_are_classified_and_described():
    import torch

    from raysweep.config import TrialConfig
    from raysweep.pipeline import describe_failure, error_record, is_deterministic

    try:
        try:
            Path("/nonexistent/x.txt").read_text()
        except FileNotFoundError as inner:
            raise RuntimeError("dataset generation failed") from inner
    except RuntimeError as exc:
        wrapped = exc
    assert is_deterministic(wrapped)  # the root cause is a missing file
    assert not is_deterministic(RuntimeError("worker lost"))
    assert not is_deterministic(torch.OutOfMemoryError("CUDA out of memory"))
    trial = TrialConfig(mix={"toy_web": 1.0}, mix_name="toy_web")
    text = describe_failure(wrapped, "calibrating", trial)
    first, second = text.splitlines()[:2]
    assert first == f"calibrating of {trial.label} failed: RuntimeError: dataset generation failed"
    assert second.startswith("  from FileNotFoundError: [Errno 2]")
    record = error_record(trial, text + "x" * 10_000, attempts=1)
    assert record.error.startswith(first) and record.error.endswith("x" * 100)
    assert len(record.error) < 4100
