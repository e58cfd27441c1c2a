"""Experiment tracking through Tune's MLflow callback: one run per trial with its point and its
scores, the report's files in a run of their own, read back with MLflow's client."""

from __future__ import annotations

from pathlib import Path

import pytest

from raysweep.config import SweepConfig
from raysweep.planning import trial_points
from raysweep.preflight import preflight
from tests.toy_sweep import toy_sweep_config

mlflow = pytest.importorskip("mlflow", reason="pip install 'raysweep[mlflow]'")


def _cfg(out: Path, **tracking) -> SweepConfig:
    return toy_sweep_config(out, name="tracked", analysis=True, evaluation__limit=8,
                            tracking={"backend": "mlflow", **tracking})  # fmt: skip


@pytest.mark.ray
@pytest.mark.slow
def test_every_trial_and_the_report_reach_mlflow(ray_local, tmp_path):
    from mlflow.tracking import MlflowClient

    from raysweep.run import run_sweep

    out = tmp_path / "run"
    cfg = _cfg(out)
    assert preflight(cfg) == []
    points = trial_points(cfg)
    assert run_sweep(cfg, points, mode="grid") == 0

    client = MlflowClient(f"sqlite:///{out.resolve() / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if "trial_id" in r.data.params]
    assert sorted(r.data.params["trial_id"] for r in trials) == sorted(p.trial_id for p in points)
    for run in trials:
        assert run.data.params["method"] == "wanda" and run.data.params["sparsity"] == "0.7"
        assert any(k.startswith("mix.") for k in run.data.params)
        assert {"total_retention", "worst_retention", "retention.math", "score.general",
                "achieved_sparsity"} <= set(run.data.metrics)  # fmt: skip
        assert run.data.tags["status"] == "ok"
    (report,) = [r for r in runs if r.info.run_name == "tracked-report"]
    names = {a.path for a in client.list_artifacts(report.info.run_id)}
    assert {"report.md", "report.html"} <= names
    assert Path(report.info.artifact_uri.removeprefix("file://")).is_relative_to(out.resolve())


def test_an_mlflow_server_that_does_not_answer_is_a_preflight_problem(tmp_path):
    cfg = _cfg(tmp_path / "run", uri="http://127.0.0.1:9")
    problems = [p for p in preflight(cfg) if p.startswith("tracking.")]
    assert len(problems) == 1
    assert problems[0].startswith("tracking.uri: the MLflow server 'http://127.0.0.1:9' does not")


def test_a_missing_tracker_package_is_a_preflight_problem(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("No module named 'wandb'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    cfg = _cfg(tmp_path / "run", backend="wandb")
    assert [p for p in preflight(cfg) if p.startswith("tracking.")] == [
        "tracking.backend: 'wandb' needs the wandb package, which is not installed: "
        "pip install 'raysweep[wandb]'"
    ]


@pytest.mark.ray
@pytest.mark.slow
def test_every_trial_reaches_wandb_offline(ray_local, tmp_path):
    pytest.importorskip("wandb", reason="W&B is not installed: pip install 'raysweep[wandb]'")
    from raysweep.run import run_sweep

    out = tmp_path / "run"
    cfg = _cfg(out, backend="wandb", mode="offline")
    assert preflight(cfg) == []
    points = trial_points(cfg)
    assert run_sweep(cfg, points, mode="grid") == 0
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == len(points)
    assert all(any(run.glob("**/*.wandb")) for run in runs)


def test_a_tracker_failing_at_the_report_is_one_line_and_fails_nothing(
    tmp_path, capsys, monkeypatch
):
    import raysweep.tracking as tracking
    from raysweep.run import _track_report

    def down(cfg, out, report_dir):
        raise ConnectionError("tracking server went away")

    monkeypatch.setattr(tracking, "log_report", down)
    _track_report(_cfg(tmp_path / "run"), tmp_path / "run")  # returns: the sweep goes on
    assert capsys.readouterr().err.splitlines() == [
        "[raysweep] tracking: the report was not logged: "
        "ConnectionError('tracking server went away')"
    ]
