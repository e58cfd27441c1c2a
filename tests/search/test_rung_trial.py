"""A search trial scored in rungs: each rung's report, the records a stop there leaves, and a
finished trial's records equal to the one-shot trial's (the toy model, no Ray)."""

from __future__ import annotations

import json

import pytest

from raysweep.config import TrialConfig, validate_config
from raysweep.dense import DenseBaseline, dense_baseline
from raysweep.pipeline import run_trial_with_items
from raysweep.planning import search_points
from raysweep.search.objectives import ITEMS_PER_TASK, ITEMS_SCORED, METRIC, RUNG_KEY
from raysweep.trainables.rungs import run_in_rungs
from raysweep.trainables.trial import ITEMS_KEY, RECORD_KEY, trial_configs, trial_log, trial_result

RUNGS = (3, 7, 12)
MIX = {"toy_math_word": 0.7, "toy_code_programs": 0.3}


@pytest.fixture(scope="module")
def point() -> TrialConfig:
    cfg = validate_config({
        "model": {"path": "raysweep-toy", "device": "cpu"},
        "calibration": {"sources": list(MIX), "n_samples": 4, "seqlen": 64},
        "pruning": {"methods": ["wanda"], "sparsities": [0.5]},
        "evaluation": {"suite": "toy", "limit": RUNGS[-1], "item_selection": "random",
                       "batch_size": 32, "max_length": 256},
        "resources": {"cpu": 1, "gpu": 0, "torch_threads": 1},
        "search": {"mode": "sequential", "early_stopping": "asha", "rungs": list(RUNGS[:-1])},
    })  # fmt: skip
    return search_points(cfg)[0]


def _config(point: TrialConfig, dense, seeds: list[int]) -> dict:  # noqa: ANN001
    return {"point": point.model_dump(mode="json"), "dense": dense.to_dict(),
            "objective": "worst_retention", "metrics": [METRIC], "seeds": seeds,
            "weights": MIX, "rungs": list(RUNGS)}  # fmt: skip


def _run(config: dict, dense, reports: list) -> None:  # noqa: ANN001
    run_in_rungs(config, trial_configs(config), dense, report=reports.append,
                 result=lambda records, items: trial_result(config, records, items),
                 log=trial_log)  # fmt: skip


def test_rungs_report_partial_scores_and_finish_as_the_one_shot_trial(point) -> None:  # noqa: ANN001
    dense = dense_baseline(point, items=True, keep_pristine=False)
    config = _config(point, dense, [0])
    reports: list[dict] = []
    _run(config, dense, reports)
    assert [r[ITEMS_PER_TASK] for r in reports] == list(RUNGS)
    n_tasks = len(dense.scores.task_scores)
    assert [r[ITEMS_SCORED] for r in reports] == [k * n_tasks for k in RUNGS]
    # Before the last rung: a running objective and the records a stop there would leave.
    for report, k in zip(reports[:-1], RUNGS, strict=False):
        assert RECORD_KEY not in report and 0.0 <= report[METRIC] <= 2.0
        (stopped,) = [json.loads(line) for line in report[RUNG_KEY].splitlines()]
        assert (stopped["status"], stopped["stopped_at_items"]) == ("stopped", k)
    # The last: exactly the one-shot trial's record and side file.
    final = reports[-1]
    assert RUNG_KEY not in final
    (record,) = [json.loads(line) for line in final[RECORD_KEY].splitlines()]
    (trial,) = trial_configs(config)
    one_shot = run_trial_with_items(trial, dense)
    assert record["status"] == "ok" and record["stopped_at_items"] is None
    assert record["trial_id"] == one_shot.record.trial_id
    for key in ("task_scores", "retention", "worst_retention", "total_retention"):
        assert record[key] == pytest.approx(getattr(one_shot.record, key), abs=1e-12), key
    assert final[METRIC] == pytest.approx(one_shot.record.worst_retention, abs=1e-12)
    items = json.loads(final[ITEMS_KEY][0])["tasks"]
    assert {t: e["doc_ids"] for t, e in items.items()} == {
        t: e["doc_ids"] for t, e in one_shot.items["tasks"].items()
    }


def test_a_rung_is_the_mean_over_the_seeds(point) -> None:  # noqa: ANN001
    dense = dense_baseline(point, items=True, keep_pristine=False)
    single = []
    for seed in (0, 1):
        config = _config(point, dense, [seed])
        reports: list[dict] = []
        _run(config, dense, reports)
        single.append(reports[0][METRIC])
    config = _config(point, dense, [0, 1])
    both: list[dict] = []
    _run(config, dense, both)
    assert both[0][METRIC] == pytest.approx(sum(single) / 2, abs=1e-12)
    assert len(both[0][RUNG_KEY].splitlines()) == 2  # one stopped record per seed


def test_a_deterministic_failure_is_one_error_record_not_a_retry(point) -> None:  # noqa: ANN001
    import math

    dense = dense_baseline(point, items=True, keep_pristine=False)
    config = _config(point, dense, [0])
    reports: list[dict] = []
    # A dense baseline without per-item values: no rung can be scored, on any attempt.
    _run({**config, "dense": None}, DenseBaseline(dense.key, dense.scores.without_items()),
         reports)  # fmt: skip
    (report,) = reports
    (record,) = [json.loads(line) for line in report[RECORD_KEY].splitlines()]
    assert record["status"] == "error" and "per-item values" in record["error"]
    assert math.isnan(report[METRIC])
