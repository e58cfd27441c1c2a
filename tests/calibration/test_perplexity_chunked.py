"""Calibration perplexity in chunks: the same value as the full logits, without their memory."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import Gemma2Config, Gemma2ForCausalLM, GPT2Config, GPT2LMHeadModel

from raysweep.calibration.metrics import next_token_nll, perplexity
from raysweep.pruning.memory import track_peak_memory
from tests.tiny import tiny_llama


def _full_logits_perplexity(model, ids: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, :-1].float()  # (n, seqlen-1, vocab)
        nll = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="sum"
        )
    return math.exp(float(nll) / ids[:, 1:].numel())


def _ids(vocab: int, n: int, seqlen: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (n, seqlen), generator=torch.Generator().manual_seed(seed))


def _gpt2(vocab: int) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=64)
    return GPT2LMHeadModel(config).eval()


def _gemma2(vocab: int, softcap: float) -> Gemma2ForCausalLM:
    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
        final_logit_softcapping=softcap,
    )  # fmt: skip
    model = Gemma2ForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(50.0)  # logits large enough for the soft cap to bite
    return model


@pytest.mark.parametrize("build", [lambda v: tiny_llama(v, seed=3), _gpt2], ids=["llama", "gpt2"])
def test_chunked_equals_full_logits(build):
    model = build(97)
    ids = _ids(97, 5, 24)
    reference = _full_logits_perplexity(model, ids)
    # Chunks of 7 tokens cut across windows; 2 windows per body forward leave a batch of 1.
    got = perplexity(model, ids, batch_size=2, chunk_tokens=7)
    assert got == pytest.approx(reference, rel=1e-5)
    assert perplexity(model, ids) == pytest.approx(reference, rel=1e-5)
    assert next_token_nll(model, ids)[1] == 5 * 23


def test_soft_capped_logits_are_respected():
    model = _gemma2(61, softcap=2.0)
    ids = _ids(61, 3, 20, seed=1)
    reference = _full_logits_perplexity(model, ids)
    uncapped = math.exp(
        next_token_nll(_gemma2(61, softcap=None), ids)[0] / ids[:, 1:].numel()  # type: ignore[arg-type]
    )
    assert abs(uncapped - reference) > 0.1 * reference  # the cap changes the value
    assert perplexity(model, ids, chunk_tokens=5) == pytest.approx(reference, rel=1e-5)


def test_unknown_logit_transform_falls_back_to_the_full_forward():
    model = tiny_llama(53, seed=2)
    plain_forward = type(model).forward

    def scaled(self, *args, **kwargs):
        out = plain_forward(self, *args, **kwargs)
        out.logits = out.logits * 3.0  # a transform the config does not declare
        return out

    model.forward = scaled.__get__(model)  # type: ignore[method-assign]
    ids = _ids(53, 4, 12)
    reference = _full_logits_perplexity(model, ids)
    with pytest.warns(UserWarning, match="full logits per batch"):
        got = perplexity(model, ids, chunk_tokens=3)
    assert got == pytest.approx(reference, rel=1e-5)


def test_peak_memory_stays_far_below_the_full_logits():
    vocab, n, seqlen = 65536, 8, 512
    model = tiny_llama(vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2,
                       max_position_embeddings=seqlen)  # fmt: skip
    ids = _ids(vocab, n, seqlen)
    full_logits_bytes = n * (seqlen - 1) * vocab * 4  # 1.07 GB of fp32 logits
    with track_peak_memory(torch.device("cpu"), interval_s=0.002) as peak:
        start = peak.host
        value = perplexity(model, ids)
    assert math.isfinite(value)
    assert peak.host - start < full_logits_bytes / 4


def test_per_window_nll_in_chunks_equals_each_window_scored_alone():
    from raysweep.calibration.generators.decoding import window_perplexities
    from raysweep.calibration.metrics import window_nll

    model = _gpt2(96)
    ids = _ids(96, 5, 24)
    sums = window_nll(model, ids, batch_size=2, chunk_tokens=7)  # chunks straddle windows
    for i in range(ids.shape[0]):
        alone = math.log(_full_logits_perplexity(model, ids[i : i + 1])) * (ids.shape[1] - 1)
        assert float(sums[i]) == pytest.approx(alone, rel=1e-5)
    ppl = window_perplexities(model, ids, batch_size=3)
    torch.testing.assert_close(ppl, (sums / (ids.shape[1] - 1)).exp(), rtol=1e-6, atol=0)
