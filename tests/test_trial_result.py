"""What the one trainable reports: every record as one string (Tune's TensorBoard logger skips
it instead of warning with the whole record), and NaN scores for a failed search trial."""

from __future__ import annotations

import json
import logging
import math

import pytest

from raysweep.config import TrialConfig
from raysweep.pipeline import error_record
from raysweep.trainables.trial import ITEMS_KEY, RECORD_KEY, record_texts, trial_result

POINTS = [TrialConfig(mix={"toy_web": 1.0}, mix_name="toy_web", seed=s) for s in (0, 1)]
SEARCH = {"point": POINTS[0].model_dump(mode="json"), "weights": {"toy_web": 1.0},
          "seeds": [0, 1], "objective": "worst_retention", "metrics": ["objective"]}  # fmt: skip


class _Trial:
    def __init__(self, path: str) -> None:
        self.local_path = path

    def init_local_path(self) -> None:
        pass


def _tbx_warnings(result: dict, path: str) -> list[str]:
    from ray.tune.logger import TBXLoggerCallback
    from ray.util.debug import reset_log_once

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    log = logging.getLogger("ray.tune.logger.tensorboardx")
    log.addHandler(handler)
    reset_log_once("invalid_tbx_value")
    try:
        TBXLoggerCallback().log_trial_result(1, _Trial(path), {**result, "training_iteration": 1})
    finally:
        log.removeHandler(handler)
    return seen


@pytest.mark.parametrize("config", [SEARCH, {"point": SEARCH["point"]}])
def test_the_tensorboard_logger_skips_the_records(config, tmp_path):
    records = [error_record(p, "boom", attempts=1) for p in POINTS[: len(config.get("seeds", [0]))]]
    result = trial_result(config, records, [None] * len(records))
    result.pop(ITEMS_KEY)  # the record writer takes the side files out before any logger
    assert [json.loads(t)["trial_id"] for t in record_texts(result[RECORD_KEY])] == [
        r.trial_id for r in records
    ]
    assert _tbx_warnings(result, str(tmp_path)) == []
    # The list it replaced is logged as a histogram and warned about, record and all.
    as_list = {**result, RECORD_KEY: record_texts(result[RECORD_KEY])}
    assert any("record_json" in w for w in _tbx_warnings(as_list, str(tmp_path / "b")))


def test_a_failed_search_trial_reports_nan_for_every_metric():
    records = [error_record(POINTS[0], "boom", attempts=1)]
    result = trial_result({**SEARCH, "metrics": ["retention_math", "retention_code"]}, records,
                          [None])  # fmt: skip
    assert math.isnan(result["retention_math"]) and math.isnan(result["retention_code"])


def test_a_search_trial_that_failed_every_attempt_is_recorded_under_its_own_mix(tmp_path):
    from raysweep.records import read_records
    from raysweep.trainables.callbacks import RecordWriter

    class Failed:
        trial_id = "t1"
        num_failures = 3
        error_file = None
        config = {**SEARCH, "weights": {"toy_web": 0.25, "toy_math_word": 0.75}}

    writer = RecordWriter(tmp_path / "records.jsonl")
    writer.on_trial_error(0, [], Failed())
    writer.on_trial_error(0, [], Failed())  # reported twice: recorded once
    records = read_records(tmp_path / "records.jsonl").records
    assert [(r.mix, r.mix_name, r.seed, r.status, r.attempts) for r in records] == [
        ({"toy_web": 0.25, "toy_math_word": 0.75}, "search", seed, "error", 3) for seed in (0, 1)
    ]
    assert POINTS[0].trial_id not in {r.trial_id for r in records}  # not the base point's id
