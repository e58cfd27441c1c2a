"""Every supported architecture family prunes through the same driver and still runs."""

from __future__ import annotations

import pytest
import torch
from transformers.pytorch_utils import Conv1D

from raysweep.pruning import find_decoder_stack, iter_prunable, prune_model
from tests.pruning.tiny_models import build, calibration

torch.set_num_threads(1)

# (architecture, decoder stack, prunable modules per layer)
CASES = [
    ("llama", "model.layers", 7),
    ("mistral", "model.layers", 7),
    ("qwen2", "model.layers", 7),
    ("gemma2", "model.layers", 7),
    ("phi3", "model.layers", 4),  # fused qkv_proj and gate_up_proj
    ("gpt2", "transformer.h", 4),  # Conv1D, weights stored (in, out)
    ("opt", "model.decoder.layers", 6),
    ("gpt_neox", "gpt_neox.layers", 4),
]


@pytest.mark.parametrize(("arch", "prefix", "per_layer"), CASES)
def test_architecture_prunes_and_runs(arch, prefix, per_layer):
    model = build(arch)
    calib = calibration(4, 16)
    stack = find_decoder_stack(model)
    assert stack.prefix == prefix
    modules = iter_prunable(model)
    assert len(modules) == 2 * per_layer
    outside = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(prefix)}

    report = prune_model(model, calib, "wanda", 0.5, batch_size=3)

    for name, module in modules.items():
        # Each output row (a column of a Conv1D weight) loses exactly half of its inputs.
        matrix = module.weight.t() if isinstance(module, Conv1D) else module.weight
        assert ((matrix == 0).sum(1) == matrix.shape[1] // 2).all(), name
        assert report.per_module[name] == 0.5
    for key, value in model.state_dict().items():
        if key in outside:
            assert torch.equal(value, outside[key]), key
    with torch.no_grad():
        logits = model(calib).logits
    assert logits.shape == (4, 16, model.config.vocab_size)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ["gpt2", "phi3"])
def test_sparsegpt_two_four_on_transposed_and_fused_weights(arch):
    model = build(arch)
    prune_model(model, calibration(4, 16), "sparsegpt", 0.5, "2:4", block_size=16)
    for name, module in iter_prunable(model).items():
        matrix = module.weight.t() if isinstance(module, Conv1D) else module.weight
        assert ((matrix == 0).reshape(matrix.shape[0], -1, 4).sum(-1) == 2).all(), name
