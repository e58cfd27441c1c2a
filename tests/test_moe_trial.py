"""A real trial of a mixture-of-experts model: experts pruned, coverage measured, all recorded."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, Qwen3MoeConfig, Qwen3MoeForCausalLM

from raysweep.config import EvaluationConfig, ModelConfig, TrialConfig
from raysweep.dense import DenseBaseline
from raysweep.evaluation import CapabilityScores, get_suite
from raysweep.pipeline import run_trial
from raysweep.toyworld import ensure_toy_model

LAYERS, EXPERTS, TOP_K = 2, 4, 2


@pytest.fixture(scope="module")
def moe_dir(tmp_path_factory):
    """A random tiny Qwen3-MoE saved with the toy world's tokenizer."""
    out = tmp_path_factory.mktemp("moe")
    tokenizer = AutoTokenizer.from_pretrained(ensure_toy_model())
    torch.manual_seed(0)
    config = Qwen3MoeConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=LAYERS,
                            num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                            moe_intermediate_size=24, num_experts=EXPERTS,
                            num_experts_per_tok=TOP_K, max_position_embeddings=256,
                            bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    Qwen3MoeForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.parametrize("mode", ["sequential", "oneshot"])
def test_moe_trial_records_experts_and_coverage(moe_dir, mode):
    evaluation = EvaluationConfig(suite="toy", limit=2, perplexity=False)
    trial = TrialConfig(model=ModelConfig(path=str(moe_dir), device="cpu"),
                        mix={"toy_general_prose": 1.0}, mix_name="prose", n_samples=4, seqlen=32,
                        method="wanda", sparsity=0.5, mode=mode, min_expert_tokens=20,
                        evaluation=evaluation)  # fmt: skip
    dense = DenseBaseline(
        "test-dense", CapabilityScores({}, {d: 1.0 for d in get_suite("toy").dimensions})
    )
    record = run_trial(trial, dense)

    assert record.status == "ok"
    assert record.experts == LAYERS * EXPERTS
    assert record.expert_fallback == "layer"
    tokens = torch.tensor(record.expert_tokens)
    assert tokens.shape == (LAYERS, EXPERTS)
    assert (tokens.sum(dim=1) == 4 * 32 * TOP_K).all()  # every token, top-k times, per layer
    short = int((tokens < 20).sum())
    assert record.experts_fallback == short
    coverage = record.calib_metrics["expert_coverage"]
    assert coverage == pytest.approx(1 - short / (LAYERS * EXPERTS))
    assert 0.0 <= record.calib_metrics["routing_entropy"] <= 1.0
    # The target applies to the prunable matrices; the dense routers count in the decoder's zero
    # fraction and in what was kept dense.
    assert record.achieved_sparsity == 0.5
    assert 0.4 < record.decoder_zero_fraction < 0.5
    assert record.dense_kept["router"] > 0
