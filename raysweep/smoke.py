"""``--smoke-test``: the same sweep, cut down to a handful of cheap points."""

from __future__ import annotations

from raysweep.config import SweepConfig


def smoke_config(cfg: SweepConfig) -> SweepConfig:
    """Two sources (plus the uniform mix), one sparsity, one method, small sets and task limits."""
    cal = cfg.calibration.model_copy(
        update={
            "sources": cfg.calibration.sources[:2],
            "mixes": cfg.calibration.mixes[:1],
            "n_samples": min(cfg.calibration.n_samples, 16),
            "seeds": cfg.calibration.seeds[:1],
        }
    )
    pru = cfg.pruning.model_copy(
        update={
            "methods": cfg.pruning.methods[:1],
            "sparsities": cfg.pruning.sparsities[-1:],
            "structures": cfg.pruning.structures[:1],
        }
    )
    ev = cfg.evaluation.model_copy(update={"limit": min(cfg.evaluation.limit or 40, 40)})
    search = None
    if cfg.search is not None:
        search = cfg.search.model_copy(update={"n_trials": 4, "max_concurrent": 2, "limit": 40})
    return cfg.model_copy(
        update={
            "name": cfg.name,
            "output_dir": cfg.output_dir.rstrip("/") + "-smoke",
            "calibration": cal,
            "pruning": pru,
            "evaluation": ev,
            "search": search,
        }
    )
