"""prune_model's progress callback: one call per decoder layer, in order, in every mode."""

from __future__ import annotations

import pytest
import torch

from raysweep.pruning import collect_statistics, prune_model
from tests.pruning.tiny_models import build, calibration

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("method", "mode", "with_statistics"),
    [
        ("magnitude", "sequential", False),
        ("wanda", "sequential", False),
        ("sparsegpt", "oneshot", False),
        ("wanda", "oneshot", True),
    ],
)
def test_progress_is_called_once_per_layer_in_order(method, mode, with_statistics):
    model = build("llama")
    calib = calibration()
    stats = (
        collect_statistics(build("llama"), calib, "cpu", "sparsegpt") if with_statistics else None
    )
    calls: list[tuple[int, int]] = []
    prune_model(model, None if with_statistics else calib, method, 0.5, mode=mode, device="cpu",
                statistics=stats, progress=lambda done, n: calls.append((done, n)))  # fmt: skip
    assert calls == [(1, 2), (2, 2)]


def test_progress_defaults_to_none():
    report = prune_model(build("llama"), calibration(), "wanda", 0.5, device="cpu")
    assert report.achieved_sparsity > 0.4
