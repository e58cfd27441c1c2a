"""Self-generated calibration: self_cal, sgs and igsp sources, IGSP's selection, and their cache."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from raysweep.calibration import (
    IGSP,
    SGS,
    SOURCES,
    SelfCal,
    build_calibration_set,
    get_source,
    information_metrics,
    select_igsp,
    source_from_spec,
)
from raysweep.calibration.cache import generated_cache_key
from raysweep.calibration.generators import default_prefix_source
from raysweep.calibration.generators.base import derive_seed
from raysweep.calibration.generators.decoding import sample_windows, window_perplexities
from raysweep.calibration.generators.sampler import pick_tokens
from raysweep.calibration.loading import iter_documents
from raysweep.toyworld.model import DEFAULT_MODEL_DIR
from tests.tiny import tiny_llama

from .conftest import build_tokenizer

SEQLEN = 32


@pytest.fixture(scope="module")
def lm():
    """The shipped toy model when its files are present, else a tiny seeded random Llama."""
    torch.set_num_threads(1)
    if (DEFAULT_MODEL_DIR / "config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODEL_DIR)
        model = AutoModelForCausalLM.from_pretrained(DEFAULT_MODEL_DIR)
    else:
        tokenizer = build_tokenizer()
        model = tiny_llama(len(tokenizer), 0, max_position_embeddings=128,
                           eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    return model.eval(), tokenizer


def start_id(tokenizer) -> int:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


# ---------------------------------------------------------------- sampling rules


def _pick(probs, uniforms, temperature=1.0, seen=None, banned=(), **knobs):
    logits = torch.tensor([probs]).log().expand(len(uniforms), -1)
    temps = torch.full((len(uniforms), 1), temperature)
    seen_t = None if seen is None else torch.tensor([seen]).expand(len(uniforms), -1)
    out = pick_tokens(
        logits, torch.tensor(uniforms, dtype=torch.float64), seen_t, list(banned), temps,
        SelfCal(**knobs),
    )  # fmt: skip
    return out.tolist()


def test_pick_tokens_inverse_cdf_with_top_k_top_p_bans_and_penalty():
    probs = [0.5, 0.3, 0.15, 0.05]  # cdf 0.5, 0.8, 0.95, 1.0
    assert _pick(probs, [0.0, 0.49, 0.6, 0.9, 0.97]) == [0, 0, 1, 2, 3]
    # top-p 0.8 keeps tokens whose higher-ranked mass is < 0.8: {0, 1}, renormalised to 0.625/0.375
    assert _pick(probs, [0.6, 0.7, 0.99], top_p=0.8) == [0, 1, 1]
    assert _pick(probs, [0.0, 0.5, 0.99], top_k=1) == [0, 0, 0]
    assert _pick(probs, [0.0, 0.7, 0.99], top_k=2) == [0, 1, 1]  # 0.5/0.8 = 0.625 split
    # banning token 0 renormalises the rest to 0.6, 0.3, 0.1
    assert _pick(probs, [0.0, 0.59, 0.61, 0.95], banned=[0]) == [1, 1, 2, 3]
    # repetition penalty 2 on the seen token 0: logit log 0.5 < 0 doubles to log 0.25 < log 0.3
    assert _pick(
        probs, [0.0], top_k=1, repetition_penalty=2.0, seen=[True, False, False, False]
    ) == [1]
    # a very high temperature flattens to uniform: cdf 0.25, 0.5, 0.75, 1
    assert _pick(probs, [0.2, 0.3, 0.6, 0.8], temperature=1e6) == [0, 1, 2, 3]


def test_linear_temperature_schedule():
    s = SelfCal(temperature=0.5, temperature_initial=2.0, schedule_tokens=4)
    assert s.temperatures(torch.arange(6)).tolist() == [2.0, 1.625, 1.25, 0.875, 0.5, 0.5]
    assert SelfCal(temperature=0.7).temperatures(torch.arange(3)).tolist() == pytest.approx(
        [0.7] * 3
    )


def test_knob_validation():
    with pytest.raises(ValueError, match=r"^self_cal: temperature must be a number > 0, got 0$"):
        SelfCal(temperature=0)
    with pytest.raises(ValueError, match=r"^sgs: drop_share must be in \[0, 1\), got 1$"):
        SGS(drop_share=1)
    with pytest.raises(ValueError, match=r"^igsp: top_p must be in \(0, 1\], got 1.5$"):
        IGSP(top_p=1.5)
    with pytest.raises(ValueError, match=r"^igsp: cue dimension must be one of general, "):
        IGSP(cues={"poetry": ["Roses"]})


# ---------------------------------------------------------------- self_cal


def test_self_cal_shape_start_token_no_padding(lm):
    model, tok = lm
    windows = SelfCal()(model=model, tokenizer=tok, count=5, seqlen=SEQLEN, seed=0)
    assert windows.shape == (5, SEQLEN) and windows.dtype == torch.long
    assert (windows[:, 0] == start_id(tok)).all()
    assert not (windows == tok.pad_token_id).any()
    suppressed = SelfCal(eos="suppress")(model=model, tokenizer=tok, count=5, seqlen=SEQLEN, seed=0)
    assert not (suppressed[:, 1:] == tok.eos_token_id).any()


def test_self_cal_deterministic_and_independent_of_batching(lm):
    model, tok = lm
    gen = SelfCal(batch_size=4)
    first = gen(model=model, tokenizer=tok, count=6, seqlen=SEQLEN, seed=3)
    assert torch.equal(first, gen(model=model, tokenizer=tok, count=6, seqlen=SEQLEN, seed=3))
    assert not torch.equal(first, gen(model=model, tokenizer=tok, count=6, seqlen=SEQLEN, seed=4))
    # Window i depends on (seed, i) only: other batch sizes and counts give the same rows.
    one_by_one = SelfCal(batch_size=1)(model=model, tokenizer=tok, count=4, seqlen=SEQLEN, seed=3)
    assert torch.equal(one_by_one, first[:4])


def test_greedy_matches_a_step_by_step_reference_without_kv_cache(lm):
    model, tok = lm
    windows = SelfCal(top_k=1)(model=model, tokenizer=tok, count=2, seqlen=20, seed=0)
    ids = torch.full((1, 1), start_id(tok))
    with torch.no_grad():
        while ids.shape[1] < 20:
            logits = model(input_ids=ids).logits[0, -1]
            logits[tok.pad_token_id] = -math.inf  # the pad token is never sampled
            ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)
    assert windows.tolist() == [ids[0].tolist(), ids[0].tolist()]


def test_prompts_of_different_lengths_share_a_batch(lm):
    model, tok = lm
    s = start_id(tok)
    cue = tok("def", add_special_tokens=False)["input_ids"]
    prompts = [[s], [s, *cue], [s, *cue, *cue]]
    together = sample_windows(model, prompts, 24, SelfCal(batch_size=3), 0, "t")
    alone = [sample_windows(model, [p], 24, SelfCal(), 0, "t")[0] for p in prompts]
    assert together[0].tolist() == alone[0].tolist()  # row 0 of both draws uses (0, "t", 0)
    for row, prompt in zip(together.tolist(), prompts, strict=True):
        assert row[: len(prompt)] == prompt


# ---------------------------------------------------------------- sgs


def test_sgs_drops_the_configured_share_and_keeps_source_prefixes(lm):
    model, tok = lm
    gen = SGS(prefix_source="toy_web", prefix_tokens=6)
    res = gen.build(model=model, tokenizer=tok, count=8, seqlen=SEQLEN, seed=1)
    assert gen.pool_size(8) == 10 and res.pool.shape == (10, SEQLEN)
    assert res.windows.shape == (8, SEQLEN) and len(res.kept) == 8  # 2 of 10 dropped = 20 %
    dropped = sorted(set(range(10)) - set(res.kept))
    assert min(res.perplexities[dropped]) >= max(res.perplexities[list(res.kept)])
    assert torch.equal(res.windows, res.pool[list(res.kept)])
    assert (res.windows[:, 0] == start_id(tok)).all()
    assert torch.equal(res.windows[:, 1:7], res.prefixes[list(res.kept)])
    # Prefixes are the first 6 tokens of the prefix source's documents, in its seeded order.
    expected = []
    for doc in iter_documents(get_source("toy_web"), derive_seed(1, "sgs-prefixes")):
        ids = tok(doc, add_special_tokens=False)["input_ids"]
        if len(ids) >= 6:
            expected.append(ids[:6])
        if len(expected) == 10:
            break
    assert res.prefixes.tolist() == expected
    # Perplexity per window is the set perplexity of that window alone.
    for i in (0, 9):
        ref = information_metrics(res.pool[i : i + 1], model)["perplexity"]
        assert float(res.perplexities[i]) == pytest.approx(ref, rel=1e-5)
    quarter = SGS(prefix_source="toy_web", prefix_tokens=6, drop_share=0.25)
    res = quarter.build(model=model, tokenizer=tok, count=6, seqlen=SEQLEN, seed=1)
    assert (len(res.pool), len(res.kept)) == (8, 6)


def test_sgs_prefix_source_defaults(lm):
    model, _ = lm
    toy = copy.copy(model.config)
    toy.name_or_path = "/somewhere/raysweep-toy"
    other = copy.copy(model.config)
    other.name_or_path = "meta-llama/Llama-3.1-8B"
    assert default_prefix_source(type("M", (), {"config": toy})()) == "toy_web"
    assert default_prefix_source(type("M", (), {"config": other})()) == "c4"


def test_sgs_unreadable_prefix_source_is_a_clear_error(lm, tmp_path):
    model, tok = lm
    short = tmp_path / "short.txt"
    short.write_text("hi")
    gen = SGS(prefix_source=f"file:{short}", prefix_tokens=6)
    with pytest.raises(ValueError, match=r"has 0 documents of at least 6 tokens, 5 are needed$"):
        gen.build(model=model, tokenizer=tok, count=4, seqlen=SEQLEN, seed=0)


# ---------------------------------------------------------------- igsp selection (pure)


def test_igsp_selection_by_hand():
    unique, shared, near = [20, 21, 22, 23, 24], [1, 2, 3, 4, 5], [1, 2, 3, 4, 9]
    candidates = [unique, shared, shared, near]
    labels = ["a", "a", "b", "b"]
    ppl = [10.0, 2.0, 2.0, 2.0]  # median 2
    # Wide band: the first (most diverse, lowest index) candidate, then b's best.
    wide = select_igsp(candidates, ppl, labels, 2, tolerance=10.0)
    assert wide.indices == (0, 2) and wide.ngram4_aggregation == 0.0
    # Band [1, 4]: candidate 0 (perplexity 10) cannot be a's only window; b then adds the window
    # sharing one 4-gram with candidate 1 rather than its exact copy: 1 - 3/4.
    tight = select_igsp(candidates, ppl, labels, 2, tolerance=1.0)
    assert tight.indices == (1, 3) and tight.ngram4_aggregation == 0.25
    assert tight.band == (1.0, 4.0) and tight.mean_perplexity == {"a": 2.0, "b": 2.0}


def test_igsp_selection_balances_a_mean_with_out_of_band_windows():
    # Band [4, 4]: a's two windows must average 4, so the diverse window with perplexity 4 (which
    # would leave a needing another 4) is refused and a takes perplexities 1 and 7.
    diverse = list(range(100, 108))
    candidates = [[1, 1, 1, 1, 1, 2], [1, 1, 1, 1, 1, 3], diverse] + [
        [5, 5, 5, 5, 5, k] for k in range(3)
    ]
    ppl = [1.0, 7.0, 4.0, 4.0, 4.0, 4.0]
    labels = ["a", "a", "a", "b", "b", "b"]
    sel = select_igsp(candidates, ppl, labels, 4, tolerance=0.0)
    assert sorted(i for i in sel.indices if labels[i] == "a") == [0, 1]
    assert sel.mean_perplexity == {"a": 4.0, "b": 4.0}


def _synthetic_pool(rng, n=64, seqlen=24):
    rows = []
    for i in range(n):
        if (i // 4) % 2:  # repetitive (every label has both kinds): a short motif repeated
            motif = rng.integers(0, 40, size=rng.integers(2, 5))
            rows.append(np.resize(motif, seqlen))
        else:
            rows.append(rng.integers(0, 40, size=seqlen))
    return np.stack(rows)


def test_igsp_selection_constraints_and_beats_random_subsets():
    rng = np.random.default_rng(0)
    pool = _synthetic_pool(rng)
    labels = [("general", "commonsense", "code", "math")[i % 4] for i in range(64)]
    ppl = rng.lognormal(mean=2.0, sigma=0.4, size=64)
    sel = select_igsp(torch.from_numpy(pool), ppl, labels, 12, tolerance=0.2)
    median = float(np.median(ppl))
    assert sel.band == pytest.approx((median / 1.2, median * 1.2))
    assert len(sel.indices) == len(set(sel.indices)) == 12
    assert {d: sum(labels[i] == d for i in sel.indices) for d in set(labels)} == dict.fromkeys(
        set(labels), 3
    )
    for d, mean in sel.mean_perplexity.items():
        assert mean == pytest.approx(np.mean([ppl[i] for i in sel.indices if labels[i] == d]))
        assert sel.band[0] <= mean <= sel.band[1]
    chosen = torch.from_numpy(pool[list(sel.indices)])
    assert sel.ngram4_aggregation == pytest.approx(
        information_metrics(chosen)["ngram4_aggregation"], abs=1e-12
    )
    for _ in range(20):
        random_pick = torch.from_numpy(pool[rng.choice(64, size=12, replace=False)])
        assert sel.ngram4_aggregation < information_metrics(random_pick)["ngram4_aggregation"]


def test_igsp_selection_errors():
    with pytest.raises(ValueError, match=r"3 candidates, 2 perplexities and 3 labels"):
        select_igsp([[1, 2, 3, 4]] * 3, [1.0, 2.0], ["a"] * 3, 1)
    with pytest.raises(ValueError, match=r"label 'b' has 1 candidates, 2 are needed"):
        select_igsp([[1, 2, 3, 4]] * 4, [1.0] * 4, ["a", "a", "a", "b"], 4)
    with pytest.raises(
        ValueError,
        match=r"label 'b' cannot reach the perplexity band \[1.818, 2.2\] around the pool median 2 "
        r"\(its 1 lowest average 9, its 1 highest 9\); raise the tolerance or the pool size",
    ):
        select_igsp([[1, 2, 3, 4]] * 4, [2.0, 2.0, 2.0, 9.0], ["a", "a", "a", "b"], 2, 0.1)


def test_igsp_selection_widens_an_unreachable_band_just_enough():
    candidates = [[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3, 6], [7, 8, 9, 10]]
    sel = select_igsp(candidates, [2.0, 2.0, 2.0, 9.0], ["a", "a", "a", "b"], 2, 0.1, widen=True)
    # b's only window has perplexity 9 = 2 * (1 + 3.5): the tolerance becomes 3.5.
    assert sel.tolerance == pytest.approx(3.5) and sel.band[1] == pytest.approx(9.0)
    assert sel.indices == (0, 3) and sel.mean_perplexity == {"a": 2.0, "b": 9.0}
    already = select_igsp(
        candidates, [2.0, 2.0, 2.0, 9.0], ["a", "a", "a", "b"], 2, 5.0, widen=True
    )
    assert already.tolerance == 5.0


# ---------------------------------------------------------------- igsp generator


def test_igsp_pool_cues_and_selection(lm):
    model, tok = lm
    gen = IGSP(pool_factor=2, ppl_tolerance=0.5)
    res = gen.build(model=model, tokenizer=tok, count=8, seqlen=SEQLEN, seed=0)
    assert res.pool.shape == (16, SEQLEN) and res.windows.shape == (8, SEQLEN)
    assert [res.labels.count(d) for d in ("code", "commonsense", "general", "math")] == [4] * 4
    for row, cue in zip(res.pool.tolist(), res.cues, strict=True):
        prompt = [start_id(tok), *(tok(cue, add_special_tokens=False)["input_ids"] if cue else [])]
        assert row[: len(prompt)] == prompt
    assert [res.labels[i] for i in sorted(res.selection.indices)].count("math") == 2
    low, high = res.selection.band
    assert res.selection.tolerance >= 0.5
    for d, mean in res.selection.mean_perplexity.items():
        chosen = [float(res.perplexities[i]) for i in res.selection.indices if res.labels[i] == d]
        assert mean == pytest.approx(np.mean(chosen)) and low <= mean <= high
    assert torch.equal(res.windows, res.pool[sorted(res.selection.indices)])
    assert not (res.windows == tok.pad_token_id).any()
    assert torch.allclose(res.perplexities, window_perplexities(model, res.pool), rtol=1e-6)
    again = gen(model=model, tokenizer=tok, count=8, seqlen=SEQLEN, seed=0)
    assert torch.equal(again, res.windows)


# ---------------------------------------------------------------- sources, specs, cache


def test_generated_sources_are_in_the_table():
    for name, cls in (("self_cal", SelfCal), ("sgs", SGS), ("igsp", IGSP)):
        source = SOURCES[name]
        assert source.kind == "generated" and isinstance(source.generator, cls)
    assert (SOURCES["self_cal"].offline, SOURCES["igsp"].offline, SOURCES["sgs"].offline) == (
        True,
        True,
        False,  # auto prefixes read c4 for real models
    )


def test_spec_overrides_generator_knobs():
    source = source_from_spec(
        "igsp_hot",
        {"generator": "igsp", "pool_factor": 4, "temperature": 0.8, "cues": {"code": ["def"]}},
    )
    assert source.kind == "generated" and source.name == "igsp_hot"
    assert source.generator == IGSP(pool_factor=4, temperature=0.8, cues=(("code", ("def",)),))
    toy_sgs = source_from_spec("sgs_toy", {"generator": "sgs", "prefix_source": "toy_web"})
    assert toy_sgs.offline and toy_sgs.generator.prefix_source == "toy_web"
    with pytest.raises(
        ValueError,
        match=r"^calibration source 'x': unknown keys colour for generator 'igsp'; allowed: ",
    ):
        source_from_spec("x", {"generator": "igsp", "colour": "red"})
    with pytest.raises(
        ValueError,
        match=r"^calibration source 'x': self_cal: temperature must be a number > 0, got -1$",
    ):
        source_from_spec("x", {"generator": "self_cal", "temperature": -1})
    with pytest.raises(ValueError, match=r"generator: Input should be 'self_cal', 'sgs' or 'igsp'"):
        source_from_spec("x", {"generator": "magic"})


def test_generated_source_without_a_model_is_a_clear_error(lm):
    _, tok = lm
    with pytest.raises(
        ValueError,
        match=r"^calibration source 'igsp' is generated by the model being pruned; "
        r"pass model= to build it$",
    ):
        build_calibration_set(tok, {"igsp": 1, "toy_code_programs": 1}, 4, SEQLEN, 0)


def test_generated_sets_are_cached(lm, tmp_path):
    model, tok = lm
    calls = []
    hook = model.register_forward_hook(lambda *args: calls.append(1))
    try:
        first = build_calibration_set(
            tok, "self_cal", 3, SEQLEN, 0, model=model, cache_dir=tmp_path
        )
        generated = len(calls)
        assert generated > 0 and first.shape == (3, SEQLEN)
        again = build_calibration_set(
            tok, "self_cal", 3, SEQLEN, 0, model=model, cache_dir=tmp_path
        )
        assert len(calls) == generated and torch.equal(again, first)  # read back, not generated
        # A batch size changes speed, not windows: same key. A temperature is a new key.
        extra = {
            "small_batches": source_from_spec(
                "small_batches", {"generator": "self_cal", "batch_size": 1}
            ),
            "hot": source_from_spec("hot", {"generator": "self_cal", "temperature": 1.5}),
        }
        same = build_calibration_set(
            tok, "small_batches", 3, SEQLEN, 0, model=model, extra_sources=extra, cache_dir=tmp_path
        )
        assert len(calls) == generated and torch.equal(same, first)
        build_calibration_set(
            tok, "hot", 3, SEQLEN, 0, model=model, extra_sources=extra, cache_dir=tmp_path
        )
        assert len(calls) > generated
        # Mixed with a packed source, the generated rows are the cached ones.
        mixed = build_calibration_set(
            tok,
            {"self_cal": 1, "toy_code_programs": 1},
            6,
            SEQLEN,
            0,
            model=model,
            cache_dir=tmp_path,
        )
        assert torch.equal(mixed[:3], first)
    finally:
        hook.remove()
    assert len(list(tmp_path.rglob("*.pt"))) == 3  # self_cal, hot, toy_code_programs
    source = SOURCES["self_cal"]
    key = generated_cache_key(model, tok, source, SEQLEN, 0, 3)
    for changed in (
        generated_cache_key(model, tok, source, SEQLEN, 1, 3),
        generated_cache_key(model, tok, source, SEQLEN + 1, 0, 3),
        generated_cache_key(model, tok, source, SEQLEN, 0, 4),
    ):
        assert changed != key
    other = copy.deepcopy(model)
    with torch.no_grad():
        list(other.parameters())[-1].mul_(2.0)
    assert generated_cache_key(other, tok, source, SEQLEN, 0, 3) != key
    assert generated_cache_key(copy.deepcopy(model), tok, source, SEQLEN, 0, 3) == key


@pytest.mark.parametrize(
    ("top_k", "top_p", "temperature"),
    [(0, 0.9, 1.0), (5, 1.0, 1.0), (5, 0.6, 1.0), (10, 0.8, 0.7), (3, 0.5, 1.5), (40, 0.95, 1.0)],
)
def test_top_k_then_top_p_keep_what_hugging_face_generate_keeps(top_k, top_p, temperature):
    """The sampling distribution is transformers' TemperatureLogitsWarper, TopKLogitsWarper,
    TopPLogitsWarper (in generate's order) applied to fixed logits: top-p cuts the top-k
    probabilities renormalised."""
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    from raysweep.calibration.generators.sampler import candidate_weights

    logits = torch.randn(6, 300, generator=torch.Generator().manual_seed(0)) * 3
    expected = TemperatureLogitsWarper(temperature)(None, logits.clone())
    if top_k:
        expected = TopKLogitsWarper(top_k)(None, expected)
    if top_p < 1.0:
        expected = TopPLogitsWarper(top_p)(None, expected)
    expected = torch.softmax(expected, dim=-1)

    weights, order = candidate_weights(logits / temperature, SelfCal(top_k=top_k, top_p=top_p))
    ours = weights if order is None else torch.zeros_like(logits).scatter(1, order, weights)
    ours = ours / ours.sum(-1, keepdim=True)
    assert torch.equal(ours > 0, expected > 0)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)


def test_top_p_reads_the_top_k_probabilities_renormalised():
    probs = [0.5, 0.3, 0.15, 0.05]  # top-2 renormalised: 0.625, 0.375
    # The second token has 0.625 (not 0.5) of top-k's mass above it: top-p 0.6 cuts it.
    assert _pick(probs, [0.0, 0.7, 0.99], top_k=2, top_p=0.6) == [0, 0, 0]
    assert _pick(probs, [0.0, 0.7, 0.99], top_k=2, top_p=0.65) == [0, 1, 1]
