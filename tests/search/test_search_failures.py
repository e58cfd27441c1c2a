"""A search trial that fails deterministically: recorded once under the mix that failed, not
retried, told to Optuna as FAIL, counted by the summary, and the run exits 1."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from raysweep.config import validate_config
from raysweep.planning import trial_points
from raysweep.records import read_records

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _config(out: Path, rows: Path):  # noqa: ANN202
    # The template names a field the rows lack: validation cannot know, every build fails.
    broken = {"dataset": "json", "data_files": str(rows), "template": "Q: {q}\nA: {missing}",
              "dimension": "math"}  # fmt: skip
    return validate_config({
        "name": "f", "output_dir": str(out),
        "model": {"path": "raysweep-toy", "device": "cpu"},
        "calibration": {"sources": ["toy_general_prose"], "n_samples": 4, "seqlen": 32,
                        "custom_sources": {"broken": broken}},
        "pruning": {"methods": ["magnitude"], "sparsities": [0.5]},
        "evaluation": {"suite": "toy", "limit": 4, "batch_size": 32, "max_length": 128,
                       "perplexity": False},
        "search": {"sources": ["broken", "toy_general_prose"], "n_trials": 3,
                   "max_concurrent": 1, "confirm": False},
        "ray": {"max_failures": 2, "dashboard": False},
        "analysis": False,
    })  # fmt: skip


def test_failing_search_trials_are_recorded_under_their_own_mix_once(ray_local, tmp_path,
                                                                     capsys):  # fmt: skip
    from raysweep.run import run_sweep

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"q": f"question {i}"}) + "\n" for i in range(50)))
    out = tmp_path / "run"
    cfg = _config(out, rows)
    assert run_sweep(cfg, trial_points(cfg), mode="search") == 1

    search = [r for r in read_records(out / "records.jsonl").records if r.phase == "search"]
    by_mix = {json.dumps(r.mix, sort_keys=True): r for r in search}
    assert len(search) == len(by_mix) == 3  # one record per proposal, none hidden by another
    equal = by_mix[json.dumps({"broken": 0.5, "toy_general_prose": 0.5})]
    alone = by_mix[json.dumps({"broken": 1.0})]
    good = by_mix[json.dumps({"toy_general_prose": 1.0})]
    assert (equal.status, equal.mix_name, equal.attempts) == ("error", "equal_sources", 1)
    assert (alone.status, alone.mix_name, alone.attempts) == ("error", "broken", 1)
    assert "missing" in equal.error and "missing" in alone.error
    assert good.status == "ok" and good.mix_name == "toy_general_prose"
    assert len({equal.trial_id, alone.trial_id, good.trial_id}) == 3

    storage = f"sqlite:///{out / 'search' / 'optuna.db'}"
    (name,) = optuna.get_all_study_names(storage)
    states = sorted(t.state.name for t in optuna.load_study(study_name=name,
                                                            storage=storage).trials)  # fmt: skip
    assert states == ["COMPLETE", "FAIL", "FAIL"]
    (summary,) = json.loads((out / "search" / "summary.json").read_text())
    assert summary["failed_trials"] == 2
    console = capsys.readouterr().out
    assert "1/3 search trials ok, 2 in error" in console
    assert "2 failed" in console  # the progress line counts them as failures
    assert "record_json" not in capsys.readouterr().err  # no logger prints the records
