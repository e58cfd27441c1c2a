"""The toy model's outlier channels: same function, same Wanda masks, different magnitudes."""

from __future__ import annotations

import copy

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from raysweep.pruning import prune_model
from raysweep.toyworld.train import add_outlier_features


def _tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # trained-like norm gains, not all ones
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


def _masks(model) -> dict[str, torch.Tensor]:
    """Zero pattern of every decoder-layer linear (the LM head is never pruned)."""
    return {
        n: m.weight == 0
        for n, m in model.model.layers.named_modules()
        if isinstance(m, torch.nn.Linear)
    }


def test_rescaling_keeps_the_function_and_spreads_channel_scales():
    model = _tiny_llama()
    ids = torch.randint(0, 64, (3, 20), generator=torch.Generator().manual_seed(1))
    before = model(input_ids=ids).logits
    scaled = copy.deepcopy(model)
    add_outlier_features(scaled, sigma=1.5, seed=7)
    after = scaled(input_ids=ids).logits
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    gains = (
        scaled.model.layers[0].input_layernorm.weight / model.model.layers[0].input_layernorm.weight
    )
    assert gains.max() / gains.min() > 20  # heavy-tailed: some channels far larger than others
    q_ratio = (
        scaled.model.layers[1].self_attn.q_proj.weight
        / model.model.layers[1].self_attn.q_proj.weight
    )
    torch.testing.assert_close(q_ratio, q_ratio[:1].expand_as(q_ratio))  # one scale per column
    # Output rows are never scaled: o_proj and down_proj read unscaled activations.
    for name in ("self_attn.o_proj", "mlp.down_proj"):
        assert torch.equal(scaled.get_submodule(f"model.layers.0.{name}").weight,
                           model.get_submodule(f"model.layers.0.{name}").weight)  # fmt: skip
    # The same seed gives the same model.
    again = copy.deepcopy(model)
    add_outlier_features(again, sigma=1.5, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(),
                                                 scaled.state_dict().values(), strict=True))  # fmt: skip


def test_wanda_masks_are_unchanged_while_magnitude_masks_move():
    model = _tiny_llama()
    scaled = copy.deepcopy(model)
    add_outlier_features(scaled, sigma=1.5, seed=7)
    ids = torch.randint(0, 64, (8, 32), generator=torch.Generator().manual_seed(2))
    pruned = {}
    for key, source in (("plain", model), ("scaled", scaled)):
        for method in ("wanda", "magnitude"):
            copy_ = copy.deepcopy(source)
            prune_model(copy_, ids, method, 0.5)
            pruned[key, method] = _masks(copy_)
    for name, mask in pruned["plain", "wanda"].items():
        agreement = (mask == pruned["scaled", "wanda"][name]).float().mean()
        assert agreement > 0.995, (name, agreement)  # float ties only
    for name, mask in pruned["plain", "magnitude"].items():
        moved = (mask != pruned["scaled", "magnitude"][name]).float().mean()
        if name.endswith(("o_proj", "down_proj")):
            assert moved == 0, name
        else:  # reads a rescaled norm output
            assert moved > 0.1, (name, moved)
