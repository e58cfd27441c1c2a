"""Information metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaForCausalLM

from raysweep.calibration import information_metrics
from tests.tiny import tiny_llama

# Row 0 4-grams: 1234 2341 3412 4123 1234; row 1: 1234 2345 3455 4555 5555.
# 10 occurrences, 8 distinct (1234 three times). Across the row boundary (3,4,1,2 ... ) nothing counts.
IDS = torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4], [1, 2, 3, 4, 5, 5, 5, 5]])


def test_ngram4_aggregation_and_entropy_by_hand():
    m = information_metrics(IDS)
    assert m["ngram4_aggregation"] == pytest.approx(1 - 8 / 10)
    expected = -(0.3 * math.log2(0.3) + 7 * 0.1 * math.log2(0.1))
    assert m["ngram4_entropy"] == pytest.approx(expected)


def test_ngrams_never_cross_windows():
    # As one window: 13 occurrences (3 more across the seam: 2341 3412 4123), still 8 distinct.
    flat = information_metrics(IDS.reshape(1, -1))
    assert flat["ngram4_aggregation"] == pytest.approx(1 - 8 / 13)
    assert information_metrics(IDS)["ngram4_aggregation"] != flat["ngram4_aggregation"]


def test_unigram_metrics_by_hand():
    m = information_metrics(IDS)
    # Tokens: 1 x3, 2 x3, 3 x3, 4 x3, 5 x4 over 16.
    assert m["type_token_ratio"] == pytest.approx(5 / 16)
    expected = -(4 * (3 / 16) * math.log2(3 / 16) + (4 / 16) * math.log2(4 / 16))
    assert m["unigram_entropy"] == pytest.approx(expected)
    assert set(m) == {"ngram4_aggregation", "ngram4_entropy", "type_token_ratio", "unigram_entropy"}


def test_constant_set():
    m = information_metrics(torch.full((3, 6), 9))
    assert m == {
        "ngram4_aggregation": pytest.approx(1 - 1 / 9),
        "ngram4_entropy": 0.0,
        "type_token_ratio": pytest.approx(1 / 18),
        "unigram_entropy": 0.0,
    }


def test_short_windows_have_no_4grams():
    m = information_metrics(torch.tensor([[1, 2, 3]]))
    assert math.isnan(m["ngram4_aggregation"]) and math.isnan(m["ngram4_entropy"])


def test_bad_shape():
    with pytest.raises(
        ValueError, match=r"non-empty \(n_windows, seqlen\) tensor, got shape \(4,\)"
    ):
        information_metrics(torch.arange(4))


def _tiny_llama(seed: int = 0, vocab: int = 50) -> LlamaForCausalLM:
    return tiny_llama(vocab, seed)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    model = _tiny_llama()
    with torch.no_grad():
        model.lm_head.weight.zero_()  # all logits 0: every token has probability 1/50
    m = information_metrics(
        torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(0)), model
    )
    assert m["perplexity"] == pytest.approx(50.0, rel=1e-5)


def test_perplexity_matches_the_mean_loss_over_all_positions():
    model = _tiny_llama(seed=1)
    ids = torch.randint(0, 50, (11, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = math.exp(float(model(input_ids=ids, labels=ids).loss))
    # 11 windows run in batches of 8 and 3: the mean is still over all 11 * 15 predictions.
    assert information_metrics(ids, model)["perplexity"] == pytest.approx(reference, rel=1e-5)
    assert not model.training
