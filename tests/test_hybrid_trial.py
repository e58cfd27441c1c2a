"""A real trial of a hybrid (Gated DeltaNet + attention) decoder: calibration statistics,
sequential and one-shot pruning with OWL, held-out perplexity, lm-eval scoring, a saved model."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3_5ForCausalLM, Qwen3_5TextConfig

from raysweep.config import EvaluationConfig, ModelConfig, TrialConfig
from raysweep.dense import DenseBaseline
from raysweep.evaluation import CapabilityScores, get_suite
from raysweep.pipeline import prune_trial, run_trial
from raysweep.toyworld import ensure_toy_model

LAYER_TYPES = ["linear_attention", "linear_attention", "linear_attention", "full_attention"]


@pytest.fixture(scope="module")
def hybrid_dir(tmp_path_factory):
    """A random tiny Qwen3.5 text model (3 GDN layers, 1 attention layer) saved with the toy
    world's tokenizer."""
    out = tmp_path_factory.mktemp("hybrid")
    tokenizer = AutoTokenizer.from_pretrained(ensure_toy_model())
    torch.manual_seed(0)
    config = Qwen3_5TextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=4,
        layer_types=LAYER_TYPES, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
        linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=8,
        linear_value_head_dim=8, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    Qwen3_5ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _trial(path, mode: str, **pruning) -> TrialConfig:
    evaluation = EvaluationConfig(suite="toy", limit=2, perplexity=True)
    return TrialConfig(model=ModelConfig(path=str(path), device="cpu"),
                       mix={"toy_general_prose": 1.0}, mix_name="prose", n_samples=4, seqlen=32,
                       method="wanda", sparsity=0.7, mode=mode, evaluation=evaluation,
                       **pruning)  # fmt: skip


@pytest.mark.parametrize("mode", ["sequential", "oneshot"])
def test_hybrid_trial_scores_and_records_what_stayed_dense(hybrid_dir, mode):
    dense = DenseBaseline(
        "test-dense", CapabilityScores({}, {d: 1.0 for d in get_suite("toy").dimensions})
    )
    record = run_trial(_trial(hybrid_dir, mode, allocation="owl"), dense)

    assert record.status == "ok", record.error
    assert record.allocation == "owl" and len(record.layer_sparsity) == 4
    assert sum(record.layer_sparsity) / 4 == pytest.approx(0.7)
    assert len(record.outlier_shares) == 4
    assert record.dense_kept["depthwise_conv"] > 0 and record.dense_kept["vector"] > 0
    assert 0 < record.decoder_zero_fraction < record.achieved_sparsity
    assert record.task_scores and all(math.isfinite(v) for v in record.task_scores.values())
    assert record.perplexity and all(math.isfinite(v) for v in record.perplexity.values())


def test_hybrid_prune_saves_and_reloads(hybrid_dir, tmp_path):
    pruned = prune_trial(_trial(hybrid_dir, "sequential", ignore=[".*linear_attn.*"]))
    model = pruned.loaded.model
    for name, module in model.named_modules():
        if name.endswith("linear_attn.out_proj"):
            assert int((module.weight == 0).sum()) == 0, name  # ignored: dense
        if name.endswith("mlp.down_proj"):
            assert int((module.weight == 0).sum()) > 0, name
    assert pruned.report.dense_kept["ignored"] > 0
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    for (key, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items(),
                                strict=True):  # fmt: skip
        assert torch.equal(a, b), key
