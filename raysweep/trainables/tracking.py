"""Ray Tune's MLflow and W&B logger callbacks, logging what :mod:`raysweep.tracking` says a
trial's run holds (its point, its record's numbers)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from raysweep.config import SweepConfig
from raysweep.records import TrialRecord
from raysweep.tracking import (
    ensure_experiment,
    experiment_name,
    result_metrics,
    tracking_uri,
    trial_params,
)
from raysweep.trainables.trial import RECORD_KEY, record_texts


def _guarded(method: Any) -> Any:
    """A logger method whose failure (a tracker that went away mid-sweep) is said once and
    never stops the sweep: the records stay the product."""

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - tracking is a side channel of the records
            if not getattr(self, "_raysweep_warned", False):
                self._raysweep_warned = True
                print(f"[raysweep] tracking failed, the sweep goes on without it: {exc!r:.300}",
                      file=sys.stderr, flush=True)  # fmt: skip

    return wrapper


def _records(result: dict[str, Any]) -> list[TrialRecord]:
    """The records a Tune result carries: one (grid, confirmation) or one per seed (search)."""
    return [TrialRecord.model_validate_json(t) for t in record_texts(result.get(RECORD_KEY))]


def tracking_callbacks(cfg: SweepConfig, out: Path) -> list[Any]:
    """The Tune callbacks of ``cfg.tracking`` (none without it)."""
    if cfg.tracking is None:
        return []
    if cfg.tracking.backend == "mlflow":
        return [_mlflow_callback(cfg, out)]
    return [_wandb_callback(cfg, out)]


def _mlflow_callback(cfg: SweepConfig, out: Path) -> Any:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class RaysweepMLflow(MLflowLoggerCallback):  # type: ignore[misc]
        """Tune's MLflow callback, logging a trial's point and its record's numbers (the
        Tune config also carries the dense baseline, which is no parameter of the trial)."""

        @_guarded
        def log_trial_start(self, trial: Any) -> None:
            if trial not in self._trial_runs:
                tags = {**self.tags, "trial_name": str(trial)}
                run = self.mlflow_util.start_run(tags=tags, run_name=str(trial))
                self._trial_runs[trial] = run.info.run_id
            params = trial_params(trial.config)
            self.mlflow_util.log_params(run_id=self._trial_runs[trial], params_to_log=params)

        @_guarded
        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            records = _records(result)
            if not records or trial not in self._trial_runs:
                return
            self.mlflow_util.log_metrics(run_id=self._trial_runs[trial],
                                         metrics_to_log=result_metrics(records),
                                         step=iteration)  # fmt: skip
            from mlflow.tracking import MlflowClient

            status = "ok" if all(r.status == "ok" for r in records) else "error"
            MlflowClient(self.tracking_uri).set_tag(self._trial_runs[trial], "status", status)

    uri = tracking_uri(cfg.tracking, out)  # type: ignore[arg-type]
    ensure_experiment(uri, experiment_name(cfg), out)
    return RaysweepMLflow(tracking_uri=uri, experiment_name=experiment_name(cfg),
                          tags={"sweep": cfg.name}, save_artifact=False)  # fmt: skip


def _wandb_callback(cfg: SweepConfig, out: Path) -> Any:
    from ray.air.integrations.wandb import WandbLoggerCallback

    class RaysweepWandb(WandbLoggerCallback):  # type: ignore[misc]
        """Tune's W&B callback, logging a trial's point and its record's numbers."""

        @_guarded
        def log_trial_start(self, trial: Any) -> None:
            trial.config.pop("dense", None)  # the dense scores are no parameter of the trial
            super().log_trial_start(trial)

        @_guarded
        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            records = _records(result)
            if records:
                super().log_trial_result(iteration, trial, result_metrics(records))

    assert cfg.tracking is not None
    return RaysweepWandb(project=experiment_name(cfg), mode=cfg.tracking.mode,
                         dir=str(Path(out).resolve()))  # fmt: skip
