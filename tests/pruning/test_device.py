"""Layers visit the GPU one at a time while the model stays on the CPU (skipped without CUDA)."""

from __future__ import annotations

import pytest

from raysweep.pruning import prune_model
from tests.pruning.tiny_models import build, calibration


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_cpu_model_pruned_layer_by_layer_on_cuda(method):
    on_gpu, on_cpu = build("llama"), build("llama")
    report = prune_model(on_gpu, calibration(), method, 0.5, device="cuda")
    prune_model(on_cpu, calibration(), method, 0.5, device="cpu")
    assert all(p.device.type == "cpu" for p in on_gpu.parameters())
    assert report.peak_memory_bytes["device"] > 0
    agree = [
        float(((a == 0) == (b == 0)).float().mean())
        for a, b in zip(on_gpu.parameters(), on_cpu.parameters(), strict=True)
    ]
    assert min(agree) > 0.98
