"""The committed toy MoE: small, fused routed experts, the dense toy's tokenizer, prunable."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from raysweep.config import TOY_MOE_MODEL, ModelConfig
from raysweep.models import resolve_model_path
from raysweep.pruning import prune_model
from raysweep.pruning.experts import is_fused_experts
from raysweep.toyworld import TOY_MOE_MODEL_NAME, ensure_toy_model
from raysweep.toyworld.sources import TOY_SOURCES
from raysweep.toyworld.train import token_stream

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def toy_moe():
    model_dir = ensure_toy_model(TOY_MOE_MODEL_NAME)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def _experts(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return {n: m for n, m in model.named_modules() if is_fused_experts(m)}


def test_config_path_resolves_to_the_committed_asset_and_it_is_small():
    model_dir = ensure_toy_model(TOY_MOE_MODEL_NAME)
    assert resolve_model_path(ModelConfig(path=TOY_MOE_MODEL)) == str(model_dir)
    assert model_dir.name == TOY_MOE_MODEL_NAME and "assets" in model_dir.parts
    weights = model_dir / "model.safetensors"
    assert weights.is_file() and weights.stat().st_size <= 10 * 1024 * 1024


def test_every_decoder_layer_is_an_moe_block_with_fused_experts(toy_moe):
    model, _ = toy_moe
    experts = _experts(model)
    assert len(experts) == model.config.num_hidden_layers
    for module in experts.values():
        assert module.gate_up_proj.dim() == 3 and module.down_proj.dim() == 3
        assert module.down_proj.shape[0] == model.config.num_experts
    assert model.config.num_experts_per_tok < model.config.num_experts


def test_shares_the_dense_toy_models_tokenizer(toy_moe):
    model, tokenizer = toy_moe
    dense = ensure_toy_model()
    assert (dense / "tokenizer.json").read_bytes() == (
        ensure_toy_model(TOY_MOE_MODEL_NAME) / "tokenizer.json"
    ).read_bytes()
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.eos_token_id == tokenizer.eos_token_id


def test_wanda_at_half_prunes_the_expert_weights(toy_moe):
    model, tokenizer = toy_moe
    source = next(s for s in TOY_SOURCES if s.name == "toy_web")
    texts = [t for _, t in zip(range(40), source.texts(0), strict=False)]
    ids = token_stream(tokenizer, texts)[: 8 * 64].view(8, 64)
    dense = {n: t.clone() for n, t in model.state_dict().items()}
    try:
        report = prune_model(model, ids, "wanda", 0.5, min_expert_tokens=16)
        expert_params = {
            n: p for n, p in model.named_parameters() if ".mlp.experts." in n and p.dim() == 3
        }
        assert expert_params
        zeros = sum(int((p == 0).sum()) for p in expert_params.values())
        total = sum(p.numel() for p in expert_params.values())
        assert zeros / total == pytest.approx(0.5, abs=0.01)
        assert report.achieved_sparsity == pytest.approx(0.5, abs=0.02)
        assert report.extra["experts"] == len(_experts(model)) * model.config.num_experts
        router = next(n for n in dense if n.endswith("mlp.gate.weight"))
        assert torch.equal(model.get_parameter(router), dense[router])
    finally:
        model.load_state_dict(dense)
