"""Custom sources and inline suites are typed specs (raysweep/specs.py) that the schema checks
itself; importing and validating the schema loads neither torch nor Ray nor lm-eval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from raysweep.config import ConfigError, SweepConfig, validate_config

ROOT = Path(__file__).resolve().parents[1]
TREE = {
    "calibration": {
        "sources": ["mine", "gen"],
        "custom_sources": {
            "mine": {"dataset": "json", "data_files": "/data/x.jsonl", "template": "Q: {q}"},
            "gen": {"generator": "sgs", "prefix_source": "mine", "temperature": 1},
        },
    },
    "evaluation": {
        "suite": {
            "name": "s",
            "tasks": [{"name": "arc_easy", "dimension": "Commonsense", "chance": 0}],
        }
    },  # fmt: skip
}


HEAVY = ("torch", "ray", "lm_eval", "optuna", "transformers", "datasets")


def _heavy_modules_after(code: str) -> str:
    """What of ``HEAVY`` a fresh interpreter has loaded after running ``code``."""
    code += f"\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_importing_and_validating_the_schema_loads_nothing_heavy():
    code = (
        "import json\n"
        "import raysweep.config as c\n"
        f"c.SweepConfig.model_validate(json.loads({json.dumps(TREE)!r}))\n"
    )
    assert _heavy_modules_after(code) == "[]"


def test_checking_source_names_against_the_table_loads_nothing_heavy():
    """What loading a config and ``--validate`` do with source names before any work: custom
    sources built from their specs (a generated one included), every name looked up in the source
    table (Hub presets, the generated rows, a world's offline source), the grid planned."""
    tree = {
        "calibration": {
            "sources": ["c4", "wikitext2", "self_cal", "sgs", "igsp", "toy_web", "mine", "gen"],
            "mixes": [{"name": "half", "weights": {"c4": 1, "gen": 1}}],
            "custom_sources": TREE["calibration"]["custom_sources"],
        },
        "evaluation": {},
    }
    code = (
        "import json\n"
        "from raysweep.calibration import SOURCES, SGS, get_source\n"
        "from raysweep.config import validate_config\n"
        "from raysweep.planning import trial_points\n"
        f"cfg = validate_config(json.loads({json.dumps(tree)!r}))\n"
        "assert trial_points(cfg) and isinstance(get_source('sgs').generator, SGS)\n"
        "assert {'self_cal', 'sgs', 'igsp', 'toy_web'} <= set(SOURCES)\n"
    )
    assert _heavy_modules_after(code) == "[]"


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("custom_sources", {"mine": {"datset": "x"}}, "unknown key 'datset'"),
        ("custom_sources", {"mine": {"path": "/x", "dataset": "d"}}, "give either path or"),
        ("custom_sources", {"mine": {"generator": "magic"}}, "generator: Input should be"),
        ("suite", {"tasks": [{"name": "x", "dimension": "math"}]}, "tasks.0.chance is required"),
    ],
)
def test_the_schema_refuses_a_bad_spec_with_its_place(where, value, message):
    tree = {"calibration": {"sources": ["c4"]}, "evaluation": {}}
    section = "calibration" if where == "custom_sources" else "evaluation"
    tree[section][where] = value
    with pytest.raises(ConfigError, match=rf"{section}\.{where}.*{message}"):
        validate_config(tree)


def test_specs_are_kept_as_written():
    cfg = SweepConfig.model_validate(TREE)
    assert cfg.calibration.custom_sources["gen"]["temperature"] == 1
    assert cfg.evaluation.suite["tasks"][0] == {"name": "arc_easy", "dimension": "Commonsense",
                                                "chance": 0}  # fmt: skip
