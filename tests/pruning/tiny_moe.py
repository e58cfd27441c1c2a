"""Tiny seeded mixture-of-experts models of several families, built in code."""

from __future__ import annotations

import torch
from transformers import (
    DeepseekV3Config,
    DeepseekV3ForCausalLM,
    GptOssConfig,
    GptOssForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    OlmoeConfig,
    OlmoeForCausalLM,
    PreTrainedModel,
    Qwen2MoeConfig,
    Qwen2MoeForCausalLM,
    Qwen3MoeConfig,
    Qwen3MoeForCausalLM,
)

VOCAB = 96
EXPERTS = 4
_COMMON = {
    "vocab_size": VOCAB,
    "max_position_embeddings": 64,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
FAMILIES = ("mixtral", "qwen3_moe", "olmoe", "qwen2_moe", "gpt_oss", "deepseek_v3")


def build_moe(family: str, seed: int = 0) -> PreTrainedModel:
    """A 2-layer MoE model of ``family``: 4 routed experts, top-2, seeded random weights."""
    torch.manual_seed(seed)
    if family == "mixtral":
        config = MixtralConfig(**_COMMON, intermediate_size=48, num_local_experts=EXPERTS,
                               num_experts_per_tok=2)  # fmt: skip
        model = MixtralForCausalLM(config)
    elif family == "qwen3_moe":
        config = Qwen3MoeConfig(**_COMMON, moe_intermediate_size=24, num_experts=EXPERTS,
                                num_experts_per_tok=2, head_dim=8)  # fmt: skip
        model = Qwen3MoeForCausalLM(config)
    elif family == "olmoe":
        config = OlmoeConfig(**_COMMON, intermediate_size=24, num_experts=EXPERTS,
                             num_experts_per_tok=2)  # fmt: skip
        model = OlmoeForCausalLM(config)
    elif family == "qwen2_moe":
        config = Qwen2MoeConfig(**_COMMON, moe_intermediate_size=24, num_experts=EXPERTS,
                                num_experts_per_tok=2, shared_expert_intermediate_size=40,
                                intermediate_size=48)  # fmt: skip
        model = Qwen2MoeForCausalLM(config)
    elif family == "gpt_oss":
        config = GptOssConfig(**_COMMON, intermediate_size=24, num_local_experts=EXPERTS,
                              num_experts_per_tok=2, head_dim=8, sliding_window=8,
                              layer_types=["sliding_attention", "full_attention"])  # fmt: skip
        model = GptOssForCausalLM(config)
    elif family == "deepseek_v3":
        common = {**_COMMON, "num_key_value_heads": 4}  # multi-head latent attention
        config = DeepseekV3Config(**common, intermediate_size=48, moe_intermediate_size=24,
                                  n_routed_experts=EXPERTS, num_experts_per_tok=2,
                                  n_shared_experts=1, first_k_dense_replace=1, n_group=1,
                                  topk_group=1, kv_lora_rank=16, q_lora_rank=None,
                                  qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8)  # fmt: skip
        model = DeepseekV3ForCausalLM(config)
    else:
        raise ValueError(family)
    _spread(model)
    return model.eval()


def _spread(model: PreTrainedModel) -> None:
    """Random experts and routers at a scale where routing and pruning visibly matter."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2 and ("experts" in name or "gate" in name):
                param.copy_(torch.randn(param.shape, generator=g) * 0.2)
