"""Tiny seeded hybrid decoders (linear attention, state-space, short convolutions, MoE), built in code.

Every model is float32, in eval mode (Mamba mixers take the hookable torch path only in eval mode),
hidden size 32, vocab :data:`VOCAB`, 64 positions, and runs on the CPU through the torch fallback
kernels (no ``fla`` / ``causal_conv1d`` / ``mamba_ssm``). Layer patterns (what each decoder layer
holds besides its norms) and the parameters that are not ``nn.Linear`` weights:

- ``qwen3_5_text``: [GDN, GDN, GDN, attn] + dense MLP each. GDN = Gated DeltaNet
  (``linear_attn``: ``in_proj_qkv``, ``in_proj_z``, ``in_proj_a``, ``in_proj_b``, ``out_proj``;
  not linear: ``conv1d`` (depthwise, kernel 4), ``A_log``, ``dt_bias``, gated ``norm``).
  Attention has a gated ``q_proj`` (2x rows) and ``q_norm`` / ``k_norm``.
- ``qwen3_5_moe_text``: as ``qwen3_5_text`` with an MoE block on every layer: fused ``experts``
  (3-D ``gate_up_proj`` / ``down_proj``), router ``gate``, ``shared_expert`` MLP and its
  one-row ``shared_expert_gate``.
- ``qwen3_next``: [GDN, GDN, GDN, attn], MoE on every layer (as ``qwen3_5_moe_text``); its GDN
  packs the projections as ``in_proj_qkvz`` and ``in_proj_ba``.
- ``nemotron_h``: [mamba2, moe, attn, mlp]: one mixer per layer. Mamba-2 = ``mixer.in_proj``
  (packed z | x, B, C | dt) and ``out_proj``; not linear: ``conv1d``, ``A_log``, ``D``,
  ``dt_bias``, gated ``norm``. MoE = fused experts (no gate: ReLU^2), router ``gate`` with
  ``e_score_correction_bias``, ``shared_experts``.
- ``granitemoehybrid``: [mamba2, mamba2, mamba2, attn], each with an MoE block (fused
  ``input_linear`` / ``output_linear`` experts, ``router``) and a ``shared_mlp``.
- ``falcon_h1``: 2 layers, each with attention *and* a Mamba-2 mixer (``mamba``) in parallel,
  plus an MLP; not linear: ``conv1d``, ``A_log``, ``D``, ``dt_bias`` (no gated norm).
- ``jamba``: [mamba, attn] with a dense MLP on layer 0 and MoE on layer 1 (fused experts,
  ``router``). Mamba-1 = ``in_proj``, ``x_proj``, ``dt_proj`` (its weight read without calling
  the module), ``out_proj``; not linear: ``conv1d``, ``A_log``, ``D``, ``dt_layernorm`` /
  ``b_layernorm`` / ``c_layernorm``.
- ``bamba``: [mamba2, attn, mamba2, mamba2] + dense MLP each.
- ``olmo_hybrid``: [GDN, GDN, GDN, attn] + MLP, post-norm; its GDN (``linear_attn``) reuses
  attention's names (``q_proj``, ``k_proj``, ``v_proj``, ``a_proj``, ``b_proj``, ``g_proj``,
  ``o_proj``); not linear: ``conv1d``, ``A_log``, ``dt_bias``, ``o_norm``.
- ``kimi_linear``: [KDA, KDA, KDA, MLA attn] (all under ``self_attn``), layer 0 dense MLP, the
  others MoE (fused experts, router ``gate``, shared experts). KDA (Kimi delta attention):
  linears ``q/k/v/f_a/f_b/b/g_a/g_b/o_proj``; not linear: ``conv1d``,
  ``forget_gate.A_log`` (1, 1, heads, 1), ``forget_gate.dt_bias``, ``o_norm``.
- ``lfm2``: [conv, conv, attn, conv] + gated MLP. The conv block: ``in_proj`` / ``out_proj``
  linears around a depthwise ``conv`` (kernel 3).
- ``zamba2``: [mamba2, hybrid, mamba2, hybrid]: every layer is a Mamba-2 block; hybrid layers
  also run the one *shared* transformer block (``shared_transformer``: attention + MLP on
  2 x hidden inputs, with LoRA-style ``gate_up_proj_adapter_list``) followed by a per-layer
  ``linear``. The shared block's parameters are the *same* tensors in layers 1 and 3 (tied
  weights, as in the checkpoints; the modules are distinct objects): one weight, two layers.
- ``mamba2``: 2 pure Mamba-2 layers.
- ``mamba``: 2 pure Mamba-1 layers (``mixer``: as Jamba's, without the dt/B/C norms).
- ``llama4_text``: 2 layers, [chunked attn + MoE, full attn (no RoPE) + dense MLP]. MoE = fused
  experts stored transposed (experts, H, 2I), ``router`` (a linear), ``shared_expert``.
- ``gemma4_text``: [sliding, sliding, sliding, full] attention layers with per-layer input
  embeddings (``per_layer_input_gate`` / ``per_layer_projection`` linears); every layer carries
  a dense MLP *and* a routed MoE block beside it (``enable_moe_block``: fused ``experts``
  directly under the layer, ``router`` = ``proj`` linear + ``scale`` / ``per_expert_scale``
  vectors).

``python -m tests.pruning.tiny_hybrids`` prints each model's layer types and the decoder-layer
parameters that are not ``nn.Linear`` weights.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
import transformers
from torch import nn
from transformers import PreTrainedModel

VOCAB = 96  # as tests.pruning.tiny_models.VOCAB
HIDDEN = 32
_COMMON: dict[str, Any] = {
    "vocab_size": VOCAB,
    "hidden_size": HIDDEN,
    "max_position_embeddings": 64,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}  # tie_word_embeddings: each config's default, as its checkpoints (Zamba2 ties its shared block
# through the same mechanism)
_ATTN = {"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8}
# Gated DeltaNet (Qwen3.5 / Qwen3-Next): 2 key heads, 4 value heads of 8 dims.
_GDN = {
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 8,
    "linear_value_head_dim": 8,
    "linear_conv_kernel_dim": 4,
}
_GDN_PATTERN = ["linear_attention", "linear_attention", "linear_attention", "full_attention"]
_MOE = {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 24}
# Mamba-2 mixers: 8 heads x 8 dims = 2 x hidden, one group; chunk 8 divides the 16-token windows.
_MAMBA2 = {
    "mamba_n_heads": 8,
    "mamba_d_head": 8,
    "mamba_n_groups": 1,
    "mamba_d_state": 16,
    "mamba_d_conv": 4,
    "mamba_expand": 2,
    "mamba_chunk_size": 8,
}

# arch -> (config class, model class, config overrides); every class named in transformers.
_TABLE: dict[str, tuple[str, str, dict[str, Any]]] = {
    "qwen3_5_text": (
        "Qwen3_5TextConfig",
        "Qwen3_5ForCausalLM",
        {**_ATTN, **_GDN, "intermediate_size": 64, "num_hidden_layers": 4,
         "layer_types": _GDN_PATTERN},
    ),
    "qwen3_5_moe_text": (
        "Qwen3_5MoeTextConfig",
        "Qwen3_5MoeForCausalLM",
        {**_ATTN, **_GDN, **_MOE, "shared_expert_intermediate_size": 40, "num_hidden_layers": 4,
         "layer_types": _GDN_PATTERN},
    ),
    "qwen3_next": (
        "Qwen3NextConfig",
        "Qwen3NextForCausalLM",
        {**_ATTN, **_GDN, **_MOE, "intermediate_size": 64, "shared_expert_intermediate_size": 40,
         "num_hidden_layers": 4, "layer_types": _GDN_PATTERN},
    ),
    "nemotron_h": (
        "NemotronHConfig",
        "NemotronHForCausalLM",
        {**_ATTN, "layers_block_type": ["linear_attention", "moe", "full_attention", "mlp"],
         "num_hidden_layers": 4, "intermediate_size": 64,
         "mamba_num_heads": 8, "mamba_head_dim": 8, "n_groups": 1, "ssm_state_size": 16,
         "conv_kernel": 4, "expand": 2, "chunk_size": 8, "n_routed_experts": 4,
         "num_experts_per_tok": 2, "n_shared_experts": 1, "moe_intermediate_size": 24,
         "moe_shared_expert_intermediate_size": 24},
    ),
    "granitemoehybrid": (
        "GraniteMoeHybridConfig",
        "GraniteMoeHybridForCausalLM",
        {**_MAMBA2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 24,
         "num_hidden_layers": 4, "layer_types": _GDN_PATTERN, "num_local_experts": 4,
         "num_experts_per_tok": 2, "shared_intermediate_size": 40},
    ),
    "falcon_h1": (
        "FalconH1Config",
        "FalconH1ForCausalLM",
        {**_ATTN, **_MAMBA2, "mamba_d_ssm": 64, "intermediate_size": 64,
         "num_hidden_layers": 2},
    ),
    "jamba": (
        "JambaConfig",
        "JambaForCausalLM",
        {"num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64,
         "num_hidden_layers": 2, "attn_layer_period": 2, "attn_layer_offset": 1,
         "expert_layer_period": 2, "expert_layer_offset": 1, "num_experts": 4,
         "num_experts_per_tok": 2, "mamba_d_state": 8,
         "mamba_d_conv": 4, "mamba_expand": 2, "mamba_dt_rank": 4},
    ),
    "bamba": (
        "BambaConfig",
        "BambaForCausalLM",
        {**_MAMBA2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64,
         "num_hidden_layers": 4, "attn_layer_indices": [1]},
    ),
    "olmo_hybrid": (
        "OlmoHybridConfig",
        "OlmoHybridForCausalLM",
        {"num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64,
         "num_hidden_layers": 4, "layer_types": _GDN_PATTERN, "linear_num_key_heads": 2,
         "linear_num_value_heads": 2, "linear_key_head_dim": 8, "linear_value_head_dim": 16,
         "linear_conv_kernel_dim": 4},
    ),
    "kimi_linear": (
        "KimiLinearConfig",
        "KimiLinearForCausalLM",
        {"num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 64,
         "num_hidden_layers": 4, "layer_types": _GDN_PATTERN,
         "mlp_layer_types": ["dense", "sparse", "sparse", "sparse"], "num_experts": 4,
         "num_experts_per_token": 2, "moe_intermediate_size": 24, "num_shared_experts": 1,
         "kv_lora_rank": 16, "q_lora_rank": None, "qk_rope_head_dim": 8, "qk_nope_head_dim": 8,
         "v_head_dim": 8, "linear_head_dim": 8, "linear_num_heads": 4,
         "linear_conv_kernel_dim": 4},
    ),
    "lfm2": (
        "Lfm2Config",
        "Lfm2ForCausalLM",
        {"num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64,
         "num_hidden_layers": 4, "block_auto_adjust_ff_dim": False,
         "layer_types": ["conv", "conv", "full_attention", "conv"], "full_attn_idxs": [2]},
    ),
    "zamba2": (
        "Zamba2Config",
        "Zamba2ForCausalLM",
        {"num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 64,
         "num_hidden_layers": 4, "layers_block_type": ["mamba", "hybrid", "mamba", "hybrid"],
         "mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2, "mamba_ngroups": 1,
         "n_mamba_heads": 8, "chunk_size": 8, "num_mem_blocks": 1,
         "adapter_rank": 8},
    ),
    "mamba2": (
        "Mamba2Config",
        "Mamba2ForCausalLM",
        {"num_heads": 8, "head_dim": 8, "state_size": 16, "n_groups": 1, "expand": 2,
         "conv_kernel": 4, "chunk_size": 8, "time_step_rank": 4, "num_hidden_layers": 2},
    ),
    "mamba": (
        "MambaConfig",
        "MambaForCausalLM",
        {"state_size": 8, "expand": 2, "conv_kernel": 4, "time_step_rank": 4,
         "num_hidden_layers": 2, "intermediate_size": 64},
    ),
    "llama4_text": (
        "Llama4TextConfig",
        "Llama4ForCausalLM",
        {**_ATTN, "intermediate_size": 24, "intermediate_size_mlp": 64, "num_hidden_layers": 2,
         "num_local_experts": 4, "num_experts_per_tok": 1, "moe_layers": [0],
         "no_rope_layers": [1, 0], "attention_chunk_size": 8,
         "layer_types": ["chunked_attention", "full_attention"]},
    ),
    "gemma4_text": (
        "Gemma4TextConfig",
        "Gemma4ForCausalLM",
        {**_ATTN, "intermediate_size": 64, "num_hidden_layers": 4, "sliding_window": 8,
         "layer_types": ["sliding_attention"] * 3 + ["full_attention"],
         "vocab_size_per_layer_input": VOCAB, "hidden_size_per_layer_input": 8,
         "enable_moe_block": True, "num_experts": 4, "top_k_experts": 2,
         "moe_intermediate_size": 24, "global_head_dim": 8},
    ),
}  # fmt: skip

ARCHS: tuple[str, ...] = tuple(_TABLE)


def config_for(arch: str) -> transformers.PretrainedConfig:
    """The tiny config of ``arch`` (float32, eager attention)."""
    config_cls, _, overrides = _TABLE[arch]
    kwargs = {**_COMMON, **overrides}
    if config_cls in ("MambaConfig", "Mamba2Config"):  # no positions
        kwargs.pop("max_position_embeddings")
    config = getattr(transformers, config_cls)(**kwargs)
    config._attn_implementation = "eager"
    return config


def build(arch: str, seed: int = 0) -> PreTrainedModel:
    """A tiny ``arch`` model with seeded random weights, float32, in eval mode."""
    if arch not in _TABLE:
        raise ValueError(f"unknown arch {arch!r}; known: {ARCHS}")
    model_cls = getattr(transformers, _TABLE[arch][1])
    config = config_for(arch)
    torch.manual_seed(seed)
    model = model_cls(config).to(torch.float32)
    return model.eval()


def non_linear_parameters(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Decoder-layer parameters that are not ``nn.Linear`` weights (first occurrence of each
    relative name), by name relative to the layer: what pruning leaves dense."""
    from raysweep.pruning import find_decoder_stack

    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    found: dict[str, tuple[int, ...]] = {}
    for index, layer in enumerate(find_decoder_stack(model).layers):
        for name, param in layer.named_parameters():
            if id(param) not in linear:
                found.setdefault(f"{index}.{name}", tuple(param.shape))
    return found


def _main() -> None:
    torch.set_num_threads(1)
    archs = sys.argv[1:] or ARCHS
    for arch in archs:
        model = build(arch)
        with torch.no_grad():
            logits = model(torch.randint(0, VOCAB, (2, 16))).logits
        config = model.config
        pattern = (
            getattr(config, "layer_types", None)
            or getattr(config, "layers_block_type", None)
            or "-"
        )
        print(f"== {arch} ({type(model).__name__}) finite={bool(torch.isfinite(logits).all())}")
        print(f"   layers: {pattern}")
        for name, shape in non_linear_parameters(model).items():
            print(f"   {name}: {list(shape)}")


if __name__ == "__main__":
    _main()
