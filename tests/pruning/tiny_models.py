"""Tiny seeded decoder-only models built in code, one per supported architecture family."""

from __future__ import annotations

import torch
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    OPTConfig,
    OPTForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

VOCAB = 96
_COMMON = {"vocab_size": VOCAB, "max_position_embeddings": 64}
_LLAMA_LIKE = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


def build(arch: str, seed: int = 0) -> PreTrainedModel:
    """A 2-layer model of ``arch`` with seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**_LLAMA_LIKE, **_COMMON))
    elif arch == "mistral":
        model = MistralForCausalLM(MistralConfig(**_LLAMA_LIKE, **_COMMON, sliding_window=8))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**_LLAMA_LIKE, **_COMMON))
    elif arch == "gemma2":
        # Layer 0 uses a sliding window shorter than the calibration windows, layer 1 full attention.
        model = Gemma2ForCausalLM(
            Gemma2Config(**_LLAMA_LIKE, **_COMMON, head_dim=8, sliding_window=8)
        )
    elif arch == "phi3":
        model = Phi3ForCausalLM(Phi3Config(**_LLAMA_LIKE, **_COMMON, pad_token_id=0))
    elif arch == "gpt2":
        model = GPT2LMHeadModel(
            GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB, n_positions=64)
        )
    elif arch == "opt":
        model = OPTForCausalLM(
            OPTConfig(
                hidden_size=32,
                ffn_dim=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                word_embed_proj_dim=32,
                pad_token_id=1,
                **_COMMON,
            )
        )
    elif arch == "gpt_neox":
        model = GPTNeoXForCausalLM(
            GPTNeoXConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                **_COMMON,
            )
        )
    else:
        raise ValueError(arch)
    return model.eval()


def calibration(n: int = 6, seqlen: int = 16, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(2, VOCAB, (n, seqlen), generator=g)


def with_outlier_features(model: PreTrainedModel, seed: int = 3) -> PreTrainedModel:
    """Give every norm a log-normal gain so input features differ in scale (as in real LLMs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                param.copy_(torch.exp(torch.randn(param.shape, generator=g)))
    return model
