"""Names shared by the whole project, with no dependency: import it from anywhere.

``analysis/`` keeps its own copy of :data:`DIMENSIONS` (it must import neither torch nor the
core); ``tests/test_names.py`` asserts the two agree.
"""

from __future__ import annotations

# The grid's mix of equal weight per capability dimension (split evenly among the sources aligned
# to each dimension): ``calibration.uniform_mix``.
UNIFORM_MIX = "uniform"
# The search's first proposal: equal weight per searched source. Records before the two names
# were told apart call it ``uniform`` too (a ``search``-phase record): read as this name.
EQUAL_SOURCES_MIX = "equal_sources"
