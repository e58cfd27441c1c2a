"""A real tiny trial's record says what the hardware did (phase timings, separate peaks) and
which dimensions it could not measure."""

from __future__ import annotations

import json

from raysweep.config import EvaluationConfig, TrialConfig
from raysweep.dense import DenseBaseline
from raysweep.evaluation import CapabilityScores, get_suite
from raysweep.pipeline import run_trial

PHASES = ("load_s", "calibrate_s", "calib_metrics_s", "prune_s", "capture_s", "statistics_s",
          "sparsify_s", "propagate_s", "eval_s", "total_s")  # fmt: skip


def test_sequential_trial_records_every_phase_and_host_and_device_peaks():
    evaluation = EvaluationConfig(suite="toy", limit=2, perplexity=False)
    trial = TrialConfig(mix={"toy_general_prose": 1.0}, mix_name="prose", n_samples=4, seqlen=32,
                        method="wanda", evaluation=evaluation)  # fmt: skip
    dims = get_suite("toy").dimensions
    # The dense model at chance on math: math is unmeasurable, and the record says so.
    dense_dims = {d: 0.25 if d == "math" else 1.0 for d in dims}
    dense = DenseBaseline("test-dense", CapabilityScores({}, dense_dims))
    stages, layers = [], []
    record = run_trial(trial, dense, stage=stages.append,
                       progress=lambda done, total: layers.append((done, total)))  # fmt: skip
    # What a trial actor's log shows: each stage, the tasks it scores, every pruned layer.
    tasks = ", ".join(t.name for t in get_suite("toy").tasks)
    assert stages[0] == "loading model" and stages[-2:] == [f"evaluating {tasks}", "done"], stages
    assert layers == [(i, 6) for i in range(1, 7)]  # the toy model's 6 decoder layers
    assert record.status == "ok" and record.device == "cpu"
    assert set(PHASES) <= set(record.timings)
    assert all(record.timings[k] > 0 for k in PHASES), record.timings
    t = record.timings
    assert t["calib_metrics_s"] <= t["calibrate_s"]
    assert t["capture_s"] + t["statistics_s"] + t["sparsify_s"] + t["propagate_s"] <= t["prune_s"]
    assert t["total_s"] >= t["load_s"] + t["calibrate_s"] + t["prune_s"] + t["eval_s"]
    assert record.peak_host_bytes is not None and record.peak_host_bytes > 0
    assert record.peak_device_bytes is None  # no CUDA device: no number, not 0
    assert record.unmeasurable == ["math"] and record.retention["math"] is None
    measured = [record.retention[d] for d in dims if d != "math"]
    assert record.total_retention == sum(measured) / len(measured)
    assert record.worst_retention == min(measured)
    written = json.loads(record.to_json())
    assert written["unmeasurable"] == ["math"]
    assert "peak_memory_bytes" not in written and written["peak_device_bytes"] is None
