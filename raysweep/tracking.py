"""Experiment tracking, opt-in (``tracking:``), through Ray Tune's own logger callbacks
(:mod:`raysweep.trainables.tracking`); this module holds what needs no Ray.

Every trial (grid, search, confirmation) becomes one run of the tracker: its point as parameters
(method, sparsity, structure, allocation, refinement, seed, calibration sizes, mix weights) and,
from its record, its dimension scores, retentions, achieved sparsity and timings as metrics. The
report's files go to one more run, named ``<sweep>-report``. MLflow writes to
``sqlite:///<output>/mlflow.db`` unless ``tracking.uri`` names another store, with artifacts under
``<output>/mlflow-artifacts``; W&B runs offline unless ``tracking.mode: online``.

:func:`tracking_problems` is part of the preflight: a missing package or a tracking server that
does not answer is a configuration problem before any work, never a crash mid-sweep.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from raysweep.config import SweepConfig, TrackingConfig, TrialConfig
from raysweep.records import TrialRecord

_EXTRAS = {"mlflow": "mlflow-skinny", "wandb": "wandb"}


def tracking_uri(tracking: TrackingConfig, out: Path) -> str:
    return tracking.uri or f"sqlite:///{Path(out).resolve() / 'mlflow.db'}"


def experiment_name(cfg: SweepConfig) -> str:
    assert cfg.tracking is not None
    return cfg.tracking.experiment or cfg.name


def trial_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a trial's run, from its Tune config: ``point`` (a TrialConfig dump) and,
    for a search trial, the proposed ``weights``."""
    point = dict(config["point"])
    weights = config.get("weights")
    if isinstance(weights, Mapping) and any(float(w) > 0 for w in weights.values()):
        point.update(mix={s: float(w) for s, w in weights.items() if float(w) > 0})
    trial = TrialConfig.model_validate(point)
    params: dict[str, Any] = {
        "trial_id": trial.trial_id, "phase": trial.phase, "model": trial.model.path,
        "method": trial.method, "sparsity": trial.sparsity, "structure": trial.structure,
        "allocation": trial.allocation, "refine": trial.refine, "mode": trial.mode,
        "mix_name": trial.mix_name, "seed": trial.seed, "n_samples": trial.n_samples,
        "seqlen": trial.seqlen, "suite": json.dumps(trial.evaluation.suite)[:250],
    }  # fmt: skip
    params.update({f"mix.{source}": weight for source, weight in trial.mix.items()})
    return params


def result_metrics(records: list[TrialRecord]) -> dict[str, float]:
    """A Tune result's metrics: its record's, or the mean over a search trial's seeds."""
    rows = [record_metrics(r) for r in records]
    keys = dict.fromkeys(k for row in rows for k in row)
    return {k: sum(row[k] for row in rows if k in row) / sum(k in row for row in rows)
            for k in keys}  # fmt: skip


def record_metrics(record: TrialRecord) -> dict[str, float]:
    """The numbers of a trial's record, flat: ``retention.<dim>``, ``score.<dim>``, ..."""
    metrics: dict[str, float] = {}
    for key in ("total_retention", "worst_retention", "achieved_sparsity", "decoder_zero_fraction"):
        value = getattr(record, key)
        if value is not None:
            metrics[key] = float(value)
    for prefix, values in (("retention", record.retention), ("score", record.dimension_scores),
                           ("dense_score", record.dense_dimension_scores),
                           ("perplexity", record.perplexity), ("timing", record.timings),
                           ("calib", record.calib_metrics)):  # fmt: skip
        metrics.update({f"{prefix}.{k}": float(v) for k, v in values.items() if v is not None})
    return metrics


def ensure_experiment(uri: str, name: str, out: Path) -> str:
    """The experiment's id, created with its artifacts under ``<output>/mlflow-artifacts``
    (MLflow's default is a folder in the working directory, which Tune changes)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = (Path(out).resolve() / "mlflow-artifacts").as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def log_report(cfg: SweepConfig, out: Path, report_dir: Path) -> str | None:
    """Log the report's files as the artifacts of one run ``<sweep>-report``; its run id."""
    if cfg.tracking is None or cfg.tracking.backend != "mlflow":
        return None
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(cfg.tracking, out)
    client = MlflowClient(uri)
    run = client.create_run(ensure_experiment(uri, experiment_name(cfg), out),
                            run_name=f"{cfg.name}-report", tags={"sweep": cfg.name})  # fmt: skip
    client.log_artifacts(run.info.run_id, str(report_dir))
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def tracking_problems(cfg: SweepConfig) -> list[str]:
    """Preflight lines: the tracker's package is missing, or its server does not answer."""
    if cfg.tracking is None:
        return []
    backend = cfg.tracking.backend
    try:
        __import__(backend)
    except ImportError:
        return [f"tracking.backend: {backend!r} needs the {_EXTRAS[backend]} package, which is "
                f"not installed: pip install 'raysweep[{backend}]'"]  # fmt: skip
    if backend == "mlflow" and (cfg.tracking.uri or "").startswith(("http://", "https://")):
        return _server_problem(cfg.tracking.uri or "")
    if backend == "wandb" and cfg.tracking.mode == "online":
        import os

        if not os.environ.get("WANDB_API_KEY"):
            return ["tracking.mode: 'online' needs WANDB_API_KEY (or 'offline' and wandb sync)"]
    return []


def _server_problem(uri: str) -> list[str]:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).close()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return [f"tracking.uri: the MLflow server {uri!r} does not answer ({reason})"]
    return []
