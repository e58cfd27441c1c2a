"""Ray Tune trainables, the Tune wiring of the grid sweep and the dense baseline's Ray task."""

from raysweep.trainables.grid import GridOutcome, compute_dense, run_grid
from raysweep.trainables.trial import ITEMS_KEY, RECORD_KEY, sweep_trial

__all__ = ["ITEMS_KEY", "RECORD_KEY", "GridOutcome", "compute_dense", "run_grid", "sweep_trial"]
