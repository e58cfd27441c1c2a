"""pyproject's lower bounds admit no version older than the APIs the code calls."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (package, oldest version providing what the code calls, what it calls)
NEEDED = [
    ("scipy", (1, 15), "analysis/correlations.py: stats.bootstrap(..., rng=Generator)"),
    ("scipy", (1, 11), "analysis/correlations.py: stats.false_discovery_control"),
]


def _lower_bound(package: str) -> tuple[int, ...]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in deps if re.match(rf"{package}\b", d)]
    found = re.search(r">=\s*([\d.]+)", spec)
    assert found, f"{spec!r} has no lower bound"
    return tuple(int(p) for p in found.group(1).split("."))


def test_lower_bounds_cover_the_apis_called():
    for package, version, why in NEEDED:
        assert _lower_bound(package) >= version, f"{package}>={version} needed for {why}"


def test_the_calls_exist_in_the_installed_scipy():
    from scipy import stats

    assert "rng" in inspect.signature(stats.bootstrap).parameters
    assert callable(stats.false_discovery_control)
    assert (ROOT / "analysis" / "correlations.py").read_text().count("rng=np.random") >= 1
