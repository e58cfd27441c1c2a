"""Mix-weight search: Optuna samplers through Ray Tune, maximising worst-case retention."""

from raysweep.search.objectives import METRIC, OBJECTIVES, dimension_metrics, objective_value
from raysweep.search.space import baseline_points, define_by_run, weights_from_u
from raysweep.search.tuner import MixSearchResult, run_mix_search

__all__ = [
    "METRIC",
    "OBJECTIVES",
    "MixSearchResult",
    "baseline_points",
    "define_by_run",
    "dimension_metrics",
    "objective_value",
    "run_mix_search",
    "run_search",
    "weights_from_u",
]


def run_search(*args, **kwargs):  # noqa: ANN002, ANN003 - thin lazy re-export
    from raysweep.search.driver import run_search as _run

    return _run(*args, **kwargs)
