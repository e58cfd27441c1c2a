"""Ray Tune trainables and the Tune wiring of the grid sweep."""

from raysweep.trainables.grid import GridOutcome, run_grid
from raysweep.trainables.trial import RECORD_KEY, sweep_trial

__all__ = ["RECORD_KEY", "GridOutcome", "run_grid", "sweep_trial"]
