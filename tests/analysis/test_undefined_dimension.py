"""A dimension the dense model scores at chance is named, never silently dropped."""

from __future__ import annotations

import json

from analysis import write_report
from raysweep.config import TrialConfig
from raysweep.dense import warn_at_chance


def _record(source: str, value: float) -> dict:
    return {
        "trial_id": source, "sweep": "t", "phase": "grid", "status": "ok", "model": "m",
        "method": "wanda", "structure": "unstructured", "sparsity": 0.5, "mix": {source: 1.0},
        "mix_name": source, "n_samples": 4, "seqlen": 32, "seed": 0,
        "dimension_scores": {"general": value, "math": 0.25},
        "dense_dimension_scores": {"general": 0.9, "math": 0.25},
        "retention": {"general": value / 0.9, "math": None},
        "total_retention": value / 0.9, "worst_retention": value / 0.9,
        "calib_metrics": {"perplexity": 10 * value},
    }  # fmt: skip


def test_report_notes_a_dimension_at_chance(tmp_path):
    path = tmp_path / "records.jsonl"
    lines = [_record(s, v) for s, v in (("a", 0.5), ("b", 0.6), ("c", 0.7), ("d", 0.8))]
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    text = write_report(path, tmp_path / "report", n_resamples=99).report_md.read_text()
    notes = text.split("## Notes")[1]
    assert "Math: the dense model scores 0.250, at or below chance" in notes
    assert "total and worst retention are over the other dimensions only" in notes
    assert "General: the dense" not in notes


def test_driver_warns_when_the_dense_model_is_at_chance(capsys):
    point = TrialConfig(mix={"toy_web": 1.0}, mix_name="toy_web")
    warn_at_chance(point, {"general": 0.9, "commonsense": 0.8, "code": 0.7, "math": 0.25})
    err = capsys.readouterr().err
    assert "WARNING: the dense model scores 0.250 on math, at or below chance (0.250)" in err
    assert "cover only general, commonsense, code" in err
    warn_at_chance(point, {"general": 0.9, "commonsense": 0.8, "code": 0.7, "math": 0.5})
    assert capsys.readouterr().err == ""
