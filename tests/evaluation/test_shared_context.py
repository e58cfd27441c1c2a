"""Shared-context scoring gives lm-eval's HFLM log-likelihoods, with fewer forward tokens."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from raysweep.evaluation import evaluate_capabilities, get_suite
from raysweep.evaluation import shared_context as sc
from raysweep.evaluation.harness import _shared_context_lm_class
from tests.evaluation.tiny_world import TinyWorld
from tests.tiny import tiny_llama

ATOL = 1e-4
MAX_LENGTH = 48


def _qwen2(vocab_size: int) -> Qwen2ForCausalLM:
    torch.manual_seed(1)
    config = Qwen2Config(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        initializer_range=0.5,
    )  # fmt: skip
    return Qwen2ForCausalLM(config).eval()


def _gpt2(vocab_size: int) -> GPT2LMHeadModel:
    torch.manual_seed(2)
    config = GPT2Config(
        vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=256,
        initializer_range=0.5,
    )  # fmt: skip
    return GPT2LMHeadModel(config).eval()


def _llama(vocab_size: int, attn: str = "sdpa") -> LlamaForCausalLM:
    return tiny_llama(
        vocab_size, 3, max_position_embeddings=256, initializer_range=0.5, attn_implementation=attn
    )


MODELS = {
    "llama-sdpa": lambda v: _llama(v, "sdpa"),
    "llama-eager": lambda v: _llama(v, "eager"),
    "qwen2": _qwen2,
    "gpt2": _gpt2,
}


def _greedy(model, context: list[int], n: int) -> list[int]:
    ids = list(context)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(context) :]


def _token_requests(model, vocab: int) -> list[tuple[list[int], list[int]]]:
    g = torch.Generator().manual_seed(0)

    def rand(n: int) -> list[int]:
        return torch.randint(4, vocab, (n,), generator=g).tolist()

    shared, alone, ones, greedy_ctx = rand(12), rand(7), rand(20), rand(9)
    requests = [(shared, rand(n)) for n in (1, 3, 5, 2)]  # one context, varying lengths
    requests.append((alone, rand(4)))  # a context of its own
    requests += [(ones, rand(1)) for _ in range(3)]  # one-token choices (lm-eval's logits cache)
    requests.append((greedy_ctx, _greedy(model, greedy_ctx, 3)))  # is_greedy True
    requests.append((greedy_ctx, _greedy(model, greedy_ctx, 2)[:1] + rand(1)))
    requests.append(requests[1])  # a duplicate
    requests.insert(3, (rand(5), rand(2)))  # contexts interleave
    return requests


def _assert_same(ours, stock) -> None:
    assert len(ours) == len(stock)
    for i, ((lp, greedy), (lp_ref, greedy_ref)) in enumerate(zip(ours, stock, strict=True)):
        assert lp == pytest.approx(lp_ref, abs=ATOL), i
        assert greedy == greedy_ref, i


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("max_row_tokens", [MAX_LENGTH, 14])
def test_token_scores_match_lm_evals(world: TinyWorld, name: str, max_row_tokens: int) -> None:
    # With max_row_tokens=14 only requests of up to 15 tokens qualify, and the 12-token context's
    # choices need two rows.
    model = MODELS[name](len(world.tokenizer))
    requests = [
        r
        for r in _token_requests(model, len(world.tokenizer))
        if len(r[0]) + len(r[1]) <= max_row_tokens + 1
    ]
    lm = HFLM(pretrained=model, tokenizer=world.tokenizer, max_length=MAX_LENGTH, batch_size=3)
    stock = lm._loglikelihood_tokens([(None, c, k) for c, k in requests], disable_tqdm=True)
    ours = sc.shared_context_loglikelihoods(
        model, requests, batch_size=3, max_row_tokens=max_row_tokens
    )
    _assert_same(ours, stock)
    if max_row_tokens < MAX_LENGTH:
        assert len(sc._rows(requests, max_row_tokens)) > len({tuple(c) for c, _ in requests})
    assert any(greedy for _, greedy in stock) and not all(greedy for _, greedy in stock)
    assert sc.packing_matches_plain(model, sc.probe_requests(requests))


def _instances(pairs: list[tuple[str, str]]) -> list[Instance]:
    return [
        Instance(request_type="loglikelihood", doc={}, arguments=p, idx=i)
        for i, p in enumerate(pairs)
    ]


PAIRS = [
    ("The colour of the apple is", " red"),
    ("The colour of the apple is", " blue"),
    ("The colour of the apple is", " green or yellow"),
    ("The colour of the apple is", " purple and orange and black"),
    ("What is 3 plus 4?\nAnswer:", " 7"),
    ("What is 3 plus 4?\nAnswer: ", "12"),  # trailing space moves to the continuation
    ("Can a horse fly?\nAnswer:", " yes"),
    ("", "The boat is white"),  # empty context: lm-eval's prefix token
    ("The river is long. " * 12 + "The stone is", " black"),  # longer than MAX_LENGTH
    ("The river is long. " * 12 + "The stone is", " white"),
    ("Can a horse fly?\nAnswer:", " no"),
]


def _lm(lm_class, model, tokenizer, **kw):
    return lm_class(
        pretrained=model, tokenizer=tokenizer, max_length=MAX_LENGTH, batch_size=2, **kw
    )


@pytest.mark.parametrize("name", ["llama-sdpa", "gpt2"])
def test_string_requests_match_stock_hflm(world: TinyWorld, name: str) -> None:
    model = MODELS[name](len(world.tokenizer))
    lm = _lm(_shared_context_lm_class(), model, world.tokenizer)
    truncated = [i for i, (c, k) in enumerate(PAIRS) if len(lm.tok_encode(c + k)) > MAX_LENGTH + 1]
    assert truncated  # the long context takes lm-eval's truncating path
    stock = _lm(HFLM, model, world.tokenizer).loglikelihood(_instances(PAIRS), disable_tqdm=True)
    _assert_same(lm.loglikelihood(_instances(PAIRS), disable_tqdm=True), stock)


def test_tokenizer_without_pad_token(world: TinyWorld) -> None:
    tokenizer = copy.deepcopy(world.tokenizer)
    tokenizer.pad_token = None
    model = _gpt2(len(tokenizer))
    assert model.config.pad_token_id is None
    stock = _lm(HFLM, model, copy.deepcopy(tokenizer)).loglikelihood(
        _instances(PAIRS), disable_tqdm=True
    )
    ours = _lm(_shared_context_lm_class(), model, tokenizer).loglikelihood(
        _instances(PAIRS), disable_tqdm=True
    )
    _assert_same(ours, stock)


def test_tokenization_is_reused_and_scores_follow_the_weights(world: TinyWorld) -> None:
    tokenizer = copy.deepcopy(world.tokenizer)  # a store of its own
    model = _llama(len(tokenizer))
    shared = _shared_context_lm_class()
    first = _lm(shared, model, tokenizer).loglikelihood(_instances(PAIRS), disable_tqdm=True)

    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.zero_()  # a "pruned" variant, same tokenizer
    lm = _lm(shared, model, tokenizer)
    calls = []
    original = lm.tok_encode
    lm.tok_encode = lambda *a, **k: calls.append(a) or original(*a, **k)
    second = lm.loglikelihood(_instances(PAIRS), disable_tqdm=True)
    assert calls == []
    stock = _lm(HFLM, model, tokenizer).loglikelihood(_instances(PAIRS), disable_tqdm=True)
    _assert_same(second, stock)
    assert max(abs(a[0] - b[0]) for a, b in zip(first, second, strict=True)) > 1e-2


class _IgnoresPositions(LlamaForCausalLM):
    def forward(self, input_ids=None, attention_mask=None, position_ids=None, **kwargs):
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)


def test_model_that_disagrees_on_the_probe_takes_the_stock_path(
    world: TinyWorld, caplog: pytest.LogCaptureFixture
) -> None:
    reference = _llama(len(world.tokenizer))
    model = _IgnoresPositions(reference.config).eval()
    model.load_state_dict(reference.state_dict())
    requests = _token_requests(model, len(world.tokenizer))
    assert not sc.packing_matches_plain(model, sc.probe_requests(requests))

    stock = _lm(HFLM, model, world.tokenizer).loglikelihood(_instances(PAIRS), disable_tqdm=True)
    with caplog.at_level(logging.WARNING, logger="raysweep.evaluation.harness"):
        ours = _lm(_shared_context_lm_class(), model, world.tokenizer).loglikelihood(
            _instances(PAIRS), disable_tqdm=True
        )
    assert "packed scoring disagrees" in caplog.text
    _assert_same(ours, stock)


def test_only_loglikelihood_is_overridden() -> None:
    """Scoring is lm-eval's but for loglikelihood; generation is the generation-noting class's
    (lm-eval's generate_until, plus the lengths it notes)."""
    from raysweep.evaluation.harness import _generation_lm_class

    shared = _shared_context_lm_class()
    assert issubclass(shared, _generation_lm_class()) and issubclass(shared, HFLM)
    for name in ("loglikelihood_rolling", "_loglikelihood_tokens"):
        assert getattr(shared, name) is getattr(HFLM, name)
    assert shared.generate_until is _generation_lm_class().generate_until
    assert set(vars(shared)) & {"generate_until", "loglikelihood_rolling"} == set()
    assert "loglikelihood" in vars(shared)


def test_flash_attention_and_encoder_decoders_are_not_packed(world: TinyWorld) -> None:
    model = _llama(len(world.tokenizer))
    assert sc.supports_packing(model)
    model.config._attn_implementation = "flash_attention_2"
    assert not sc.supports_packing(model)


def test_rows_share_contexts_and_respect_the_row_limit() -> None:
    a, b = [5, 6, 7], [8, 9]
    requests = [(a, [1]), (b, [2, 3]), (a, [4, 4, 4]), (a, [1, 2])]
    assert sc._rows(requests, 64) == [((5, 6, 7), [0, 2, 3]), ((8, 9), [1])]
    assert sc._rows(requests, 5) == [((5, 6, 7), [0, 2]), ((5, 6, 7), [3]), ((8, 9), [1])]
    with pytest.raises(ValueError, match="exceeds"):
        sc.shared_context_loglikelihoods(None, [(a, [1, 2, 3])], batch_size=1, max_row_tokens=4)


@pytest.mark.slow
def test_toy_suite_scores_equal_the_stock_path() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raysweep.toyworld import ensure_toy_model

    model_dir = ensure_toy_model()
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    suite = get_suite("toy")
    ours = evaluate_capabilities(model, tokenizer, suite, limit=400)
    stock = evaluate_capabilities(model, tokenizer, suite, limit=400, shared_context=False)
    assert ours.task_scores == stock.task_scores
    assert set(ours.task_scores) == set(suite.task_names)
