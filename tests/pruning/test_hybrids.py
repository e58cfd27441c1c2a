"""Hybrid decoders (linear attention, state-space, short convolutions) and Llama 4 / Gemma 4 prune
through the one driver: every projection at the target, the rest dense by design and reported."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from raysweep.pruning import find_decoder_stack, prune_model
from raysweep.pruning.architecture import account_decoder, weight_matrix
from raysweep.pruning.experts import ExpertMatrix
from raysweep.pruning.prune import UnprunableWeights, collect_statistics
from tests.pruning.reference import dense_linear_sqnorms
from tests.pruning.tiny_hybrids import build

torch.set_num_threads(1)

# The families the architectures issue names; zamba2 is refused (weights shared by layers).
PRUNED = (
    "qwen3_5_text", "qwen3_5_moe_text", "qwen3_next", "nemotron_h", "granitemoehybrid",
    "falcon_h1", "jamba", "bamba", "olmo_hybrid", "kimi_linear", "lfm2", "mamba2", "mamba",
    "llama4_text", "gemma4_text",
)  # fmt: skip


def _ids(n: int = 4, seqlen: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 96, (n, seqlen), generator=torch.Generator().manual_seed(seed))


def _reference_wanda(weight: torch.Tensor, sqnorm: torch.Tensor, sparsity: float) -> torch.Tensor:
    scores = weight.double().abs() * sqnorm.sqrt()
    k = int(weight.shape[1] * sparsity)
    order = torch.sort(scores, dim=1, stable=True).indices[:, :k]
    mask = torch.zeros_like(weight, dtype=torch.bool)
    mask.scatter_(1, order, True)
    return mask


@pytest.mark.parametrize("arch", PRUNED)
def test_hybrid_prunes_every_projection_and_reports_what_stays_dense(arch, tmp_path):
    model = build(arch)
    ids = _ids()
    account = account_decoder(model)
    assert not account.unreadable
    dense_before = {n: p.detach().clone() for n, p in model.named_parameters()}
    sqnorms = dense_linear_sqnorms(model, ids, layer=0)
    layer0 = {n: weight_matrix(u).detach().clone() for n, u in account.units.items()
              if n in sqnorms}  # fmt: skip

    report = prune_model(model, ids, "wanda", 0.5, min_expert_tokens=0)

    # Every projection, mixer projections included, loses exactly half of each row; modules
    # the layer reads without calling them fall back to magnitude over the whole matrix.
    fallback = set(report.statistics_fallback)
    for name, unit in account.units.items():
        w = weight_matrix(unit)
        relative = name.split(".", 3)[-1] if name.startswith("model.") else name
        if any(name.endswith("." + f) for f in fallback):
            assert int((w == 0).sum()) == int(w.numel() * 0.5), name
        else:
            assert ((w == 0).sum(1) == w.shape[1] // 2).all(), (name, relative)
    # Layer 0's masks, linear-attention / SSM projections included, equal Wanda computed here
    # from the dense layer's own inputs.
    checked = 0
    for name, dense_w in layer0.items():
        if any(name.endswith("." + f) for f in fallback):
            continue
        expected = _reference_wanda(dense_w, sqnorms[name], 0.5)
        assert torch.equal(weight_matrix(account.units[name]) == 0, expected), name
        checked += 1
    assert checked >= 2  # a Mamba-2 layer 0 holds in_proj and out_proj only
    # Dense by design: unchanged, and their shares are what the report says.
    total = account.total
    shares: dict[str, float] = {}
    for name, (reason, param) in account.dense.items():
        assert torch.equal(dict(model.named_parameters())[name], dense_before[name]), name
        shares[reason] = shares.get(reason, 0.0) + param.numel() / total
    assert report.dense_kept == pytest.approx(shares, abs=1e-12)
    # Reported sparsities are the zero fractions they name.
    weights = [weight_matrix(u) for u in account.units.values()]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert report.achieved_sparsity == zeros / sum(w.numel() for w in weights)
    layer_params = {id(p): p for p in find_decoder_stack(model).layers.parameters()}
    assert report.decoder_zero_fraction == pytest.approx(
        sum(int((p == 0).sum()) for p in layer_params.values()) / total, abs=1e-12
    )
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    for (key, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items(),
                                strict=True):  # fmt: skip
        assert torch.equal(a, b), key


@pytest.mark.parametrize("arch", ["qwen3_5_moe_text", "nemotron_h", "jamba"])
def test_sparsegpt_two_four_on_hybrid_mixers(arch):
    model = build(arch)
    report = prune_model(model, _ids(), "sparsegpt", 0.5, "2:4", block_size=16,
                         min_expert_tokens=0)  # fmt: skip
    for name, unit in account_decoder(model).units.items():
        w = weight_matrix(unit)
        if w.shape[1] % 4 == 0 and not any(name.endswith(f) for f in report.statistics_fallback):
            assert ((w == 0).reshape(w.shape[0], -1, 4).sum(-1) == 2).all(), name
    with torch.no_grad():
        assert torch.isfinite(model(_ids()).logits).all()


def test_oneshot_from_statistics_equals_oneshot_from_calibration_on_a_hybrid():
    a, b = build("qwen3_5_text"), build("qwen3_5_text")
    ids = _ids()
    stats = collect_statistics(a, ids, method="wanda")
    prune_model(a, None, "wanda", 0.6, mode="oneshot", statistics=stats)
    prune_model(b, ids, "wanda", 0.6, mode="oneshot")
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb), name


def test_read_without_call_falls_back_to_magnitude_and_says_so():
    model = build("mamba")
    report = prune_model(model, _ids(), "wanda", 0.5)
    assert report.statistics_fallback == {"mixer.dt_proj": "magnitude"}
    dt = model.backbone.layers[0].mixer.dt_proj.weight
    threshold = dt.abs().flatten().kthvalue(dt.numel() // 2).values
    assert (dt.abs()[dt != 0] >= threshold).all()


def test_ignore_keeps_exactly_what_it_matches():
    model = build("qwen3_5_text")
    ids = _ids()
    account = account_decoder(model)
    linear_attn = {n for n in account.units if ".linear_attn." in n}
    assert linear_attn and len(linear_attn) < len(account.units)
    before = {n: weight_matrix(account.units[n]).detach().clone() for n in linear_attn}

    report = prune_model(model, ids, "wanda", 0.5, ignore=["re:.*linear_attn.*"])

    for name, unit in account.units.items():
        w = weight_matrix(unit)
        if name in linear_attn:
            assert torch.equal(w, before[name]), name
        else:
            assert ((w == 0).sum(1) == w.shape[1] // 2).all(), name
    assert report.ignored == len(linear_attn)
    assert report.achieved_sparsity == 0.5
    ignored_numel = sum(before[n].numel() for n in linear_attn)
    assert report.dense_kept["ignored"] == pytest.approx(ignored_numel / account.total)


def test_ignore_pattern_matching_nothing_is_an_error_before_any_work():
    model = build("qwen3_5_text")
    before = {n: p.clone() for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match=r"ignore pattern '\.\*linear_atn\.\*' matches no"):
        prune_model(model, _ids(), "wanda", 0.5, ignore=[".*linear_atn.*"])
    with pytest.raises(ValueError, match="not a regular expression"):
        prune_model(model, _ids(), "wanda", 0.5, ignore=["(unclosed"])
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name


def test_weights_shared_by_several_layers_are_refused_with_the_reason():
    model = build("zamba2")
    with pytest.raises(UnprunableWeights, match="shared by several decoder layers"):
        prune_model(model, _ids(), "wanda", 0.5)


def test_a_fused_layout_raysweep_cannot_read_is_refused():
    model = build("qwen3_5_text")
    layer = find_decoder_stack(model).layers[0]
    layer.mlp.register_parameter("packed", nn.Parameter(torch.ones(2, 4, 4)))
    with pytest.raises(UnprunableWeights, match=r"mlp\.packed: a 3-D tensor in a layout"):
        prune_model(model, _ids(), "wanda", 0.5)


def test_llama4_routed_experts_see_only_their_tokens():
    """Llama 4's experts are pruned one by one from the rows its router sends them: an expert
    whose tokens are all routed elsewhere falls back, one that gets tokens is pruned from them."""
    model = build("llama4_text")
    ids = _ids()
    moe = next(m for m in model.modules() if type(m).__name__ == "Llama4TextMoe")
    routed: dict[int, torch.Tensor] = {}

    def capture(module: nn.Module, args: tuple, output: tuple) -> None:
        scores = output[0]  # (tokens, experts), 0 where not routed
        x = args[0].reshape(-1, args[0].shape[-1])
        for e in range(scores.shape[1]):
            rows = x[scores[:, e] > 0] * scores[scores[:, e] > 0, e, None]
            routed[e] = routed.get(e, 0) + rows.double().square().sum(0)

    handle = moe.router.register_forward_hook(capture)
    with torch.no_grad():
        model(ids)
    handle.remove()
    experts = moe.experts
    dense_up = {e: experts.gate_up_proj[e].t().detach().clone() for e in routed}
    prune_model(model, ids, "wanda", 0.5, min_expert_tokens=0)
    for e, sqnorm in routed.items():
        if isinstance(sqnorm, torch.Tensor) and sqnorm.sum() > 0:
            expected = _reference_wanda(dense_up[e], sqnorm, 0.5)
            assert torch.equal(ExpertMatrix(experts, "gate_up_proj", e).weight == 0, expected), e
