"""Every YAML config the project ships loads against the schema and plans the points it says."""

from pathlib import Path

import pytest

from raysweep.config import load_config
from raysweep.planning import trial_points

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted([*ROOT.glob("configs/*.yaml"), *ROOT.glob("benchmarks/*.yaml")])


def test_the_shipped_configs_are_found():
    names = {p.name for p in SHIPPED}
    assert {"default.yaml", "toy_search.yaml", "toy_mix_ceiling.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_shipped_config_loads_and_plans_points(path):
    cfg = load_config(path)
    assert trial_points(cfg), f"{path} plans no trial"


def test_the_toy_search_prunes_every_mix_with_three_seeds_of_128_windows():
    # The README's search margins are seed means over these settings.
    cfg = load_config(ROOT / "configs" / "toy_search.yaml")
    assert cfg.calibration.n_samples == 128
    assert cfg.calibration.seeds == [0, 1, 2]
    assert cfg.search.seeds == cfg.calibration.seeds
    # 5 sources + the uniform mix, 3 seeds each.
    assert len(trial_points(cfg)) == 18


def test_the_mix_ceiling_probe_matches_the_toy_search_calibration():
    search = load_config(ROOT / "configs" / "toy_search.yaml")
    ceiling = load_config(ROOT / "benchmarks" / "toy_mix_ceiling.yaml")
    assert ceiling.calibration.n_samples == search.calibration.n_samples
    assert ceiling.calibration.seeds == search.calibration.seeds
    # 4 sources + 6 mixes + the uniform mix, 3 seeds each.
    assert len(trial_points(ceiling)) == 33
