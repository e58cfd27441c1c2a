"""The pruning methods are one table (statistics kind, typed options, kernel), not if-chains."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from raysweep.config import TrialConfig
from raysweep.names import METHODS
from raysweep.pipeline import method_options
from raysweep.pruning import METHOD_TABLE
from raysweep.pruning.methods import SparseGPTOptions, WandaOptions, method

ROOT = Path(__file__).resolve().parents[2]


def test_one_row_per_method():
    assert tuple(METHOD_TABLE) == METHODS
    assert {m: r.statistics for m, r in METHOD_TABLE.items()} == {
        "magnitude": None, "wanda": "sqnorm", "sparsegpt": "hessian", "ria": "sqnorm"}  # fmt: skip
    assert all((r.mask is None) != (r.solve is None) for r in METHOD_TABLE.values())


def test_options_are_typed_with_their_defaults():
    assert method("wanda").make_options({}) == WandaOptions(16, "layer")
    assert method("sparsegpt").make_options({"block_size": 8}) == SparseGPTOptions(
        0.01, 8, 16, "layer")  # fmt: skip
    with pytest.raises(TypeError, match=r"magnitude takes options \[\], got unknown \['damp'\]"):
        method("magnitude").make_options({"damp": 0.1})
    with pytest.raises(ValueError, match="expert_fallback must be one of"):
        method("wanda").make_options({"expert_fallback": "nope"})
    with pytest.raises(ValueError, match="method must be one of"):
        method("obs")


@pytest.mark.parametrize("name", METHODS)
def test_a_trial_passes_its_methods_options(name):
    trial = TrialConfig(mix={"a": 1.0}, mix_name="a", method=name, damp=0.05, block_size=64)
    expected = {"magnitude": {}, "wanda": {"min_expert_tokens": 16, "expert_fallback": "layer"},
                "sparsegpt": {"damp": 0.05, "block_size": 64, "min_expert_tokens": 16,
                              "expert_fallback": "layer"},
                "ria": {"ria_alpha": 0.5, "ria_per_row": False, "min_expert_tokens": 16,
                        "expert_fallback": "layer"}}[name]  # fmt: skip
    assert method_options(trial) == expected


def test_no_dispatch_on_method_names():
    # Statistics-kind compatibility checks (``kind == "hessian"``) stay; no branch per method and
    # no branch choosing an accumulator.
    chain = re.compile(r"""method\s*[!=]=\s*["']|if self\.kind == ["']""")
    files = ["raysweep/pruning/prune.py", "raysweep/pruning/driver.py", "raysweep/pipeline.py"]
    found = [f"{f}:{i}" for f in files
             for i, line in enumerate((ROOT / f).read_text().splitlines(), 1) if chain.search(line)]  # fmt: skip
    assert found == []
