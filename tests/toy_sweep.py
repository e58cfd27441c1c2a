"""A two-point toy-world sweep config for tests that run a real sweep (Ray, tracking)."""

from __future__ import annotations

from pathlib import Path

from raysweep.config import SweepConfig, validate_config


def toy_sweep_config(out: Path, **extra) -> SweepConfig:
    """Wanda 70 % on two toy sources, 8 windows of 64 tokens, 16 items a task, no report;
    ``extra`` overrides keys, ``__`` separating levels (``evaluation__limit=8``)."""
    tree = {
        "name": "t",
        "output_dir": str(out),
        "model": {"path": "raysweep-toy", "device": "cpu"},
        "calibration": {"sources": ["toy_general_prose", "toy_math_word"], "uniform_mix": False,
                        "n_samples": 8, "seqlen": 64},
        "pruning": {"methods": ["wanda"], "sparsities": [0.7]},
        "evaluation": {"suite": "toy", "limit": 16, "batch_size": 32, "max_length": 256,
                       "perplexity": False},
        "ray": {"max_failures": 1, "dashboard": False},
        "analysis": False,
    }  # fmt: skip
    for key, value in extra.items():
        node = tree
        *parents, leaf = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return validate_config(tree)
