"""The experiment's own Wanda and trade-off finder, checked against independent references."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from raysweep.toyworld.tradeoff import find_tradeoffs, wanda_prune


def _tiny_model():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64)  # fmt: skip
    return LlamaForCausalLM(config).eval()


def test_wanda_first_layer_mask_matches_reference_and_rows_are_exactly_half():
    model = _tiny_model()
    ids = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(1))
    layer = model.model.layers[0]
    with torch.no_grad():
        x = layer.input_layernorm(model.model.embed_tokens(ids)).reshape(-1, 32)  # (tokens, hidden)
        score = (
            layer.self_attn.q_proj.weight.abs() * x.double().pow(2).sum(0).sqrt().float()[None, :]
        )
    expected_keep = score >= score.sort(dim=1).values[:, 16:17]  # largest 16 of 32 per row
    wanda_prune(model, ids, 0.5, batch_size=2)
    kept = layer.self_attn.q_proj.weight != 0
    assert torch.equal(kept, expected_keep)
    for module in model.model.layers.modules():
        if isinstance(module, torch.nn.Linear):
            zeros = (module.weight == 0).sum(dim=1)
            assert torch.equal(zeros, torch.full_like(zeros, module.in_features // 2))
    assert model.lm_head.weight.count_nonzero() == model.lm_head.weight.numel()


def test_find_tradeoffs_requires_non_overlapping_seed_ranges():
    table = {
        "a": {
            "general": [0.9, 0.92],
            "commonsense": [0.5, 0.5],
            "code": [0.5, 0.6],
            "math": [0.4, 0.45],
        },
        "b": {
            "general": [0.7, 0.8],
            "commonsense": [0.5, 0.5],
            "code": [0.55, 0.65],
            "math": [0.6, 0.62],
        },
    }
    rows = find_tradeoffs(table)
    assert rows == [
        {
            "A": "a",
            "B": "b",
            "X": "general",
            "Y": "math",
            "margin_x": 0.16,
            "margin_y": 0.185,
            "range_gap": 0.1,
        }
    ]
    # Overlapping seed ranges on either side: no trade-off.
    table["b"]["general"] = [0.7, 0.9]
    assert find_tradeoffs(table) == []
