"""The seeded 2-layer Llama that unit tests build in code (hidden 32, FFN 64, 4 heads)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def tiny_llama(vocab_size: int, seed: int = 0, **config: Any) -> LlamaForCausalLM:
    """A randomly initialised tiny Llama in eval mode; ``config`` overrides LlamaConfig fields."""
    torch.manual_seed(seed)
    fields: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 64,
    }
    fields.update(config)
    return LlamaForCausalLM(LlamaConfig(**fields)).eval()
