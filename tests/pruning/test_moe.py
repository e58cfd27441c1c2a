"""Routed experts of fused MoE blocks are pruned from the tokens routed to them."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from raysweep.pruning import iter_prunable, prune_model
from raysweep.pruning.architecture import find_decoder_stack
from raysweep.pruning.experts import (
    ExpertMatrix,
    RoutingCounts,
    counting_routed_tokens,
    is_fused_experts,
    recording_routed_inputs,
)
from raysweep.pruning.prune import UnprunableWeights
from tests.pruning.tiny_moe import EXPERTS, FAMILIES, VOCAB, build_moe

torch.set_num_threads(1)


def _ids(n: int = 4, seqlen: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randint(2, VOCAB, (n, seqlen), generator=torch.Generator().manual_seed(seed))


def _experts_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if is_fused_experts(m)]


def _block_of(model: nn.Module, experts_name: str) -> nn.Module:
    return model.get_submodule(experts_name.rpartition(".")[0])


def _decoder_zero_fraction(model: nn.Module) -> float:
    """Zeros over every decoder-layer parameter."""
    params = list(find_decoder_stack(model).layers.parameters())
    return sum(int((p == 0).sum()) for p in params) / sum(p.numel() for p in params)


def _routing(model: nn.Module, ids: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(hidden (tokens, H), top_k_index (tokens, k)) each experts module receives, dense model."""
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []
    for name, module in _experts_of(model):

        def hook(mod, args, name=name):
            seen[name] = (args[0].detach().clone(), args[1].detach().clone())

        handles.append(module.register_forward_pre_hook(hook))
    with torch.no_grad():
        model(ids)
    for h in handles:
        h.remove()
    return seen


def _intermediate(experts: nn.Module, e: int, x: torch.Tensor) -> torch.Tensor:
    up = "gate_up_proj" if experts.has_gate else "up_proj"
    w = getattr(experts, up)[e]
    h = x @ w if experts.is_transposed else x @ w.t()
    if experts.has_bias:
        h = h + getattr(experts, f"{up}_bias")[e]
    return experts._apply_gate(h) if experts.has_gate else experts.act_fn(h)


def _wanda_reference(weight: torch.Tensor, sqnorm: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Per output row, the ``sparsity`` share of weights with the lowest |W| * ||x||."""
    score = weight.abs().float() * sqnorm.sqrt()
    k = int(weight.shape[1] * sparsity)
    order = score.argsort(dim=1)[:, :k]
    return torch.zeros_like(score, dtype=torch.bool).scatter_(1, order, True)


def _expert_views(experts: nn.Module, e: int) -> dict[str, torch.Tensor]:
    return {p: ExpertMatrix(experts, p, e).weight for p in ("gate_up_proj" if experts.has_gate
            else "up_proj", "down_proj")}  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES)
def test_every_expert_pruned_and_sparsity_is_honest(family, tmp_path):
    model = build_moe(family)
    ids = _ids()
    stack = find_decoder_stack(model)
    routers = {n: p.clone() for n, p in model.named_parameters()
               if ".mlp." in n and ("gate.weight" in n or "router" in n)}  # fmt: skip
    outside = {
        k: v.clone() for k, v in model.state_dict().items() if not k.startswith(stack.prefix)
    }
    assert routers

    report = prune_model(model, ids, "wanda", 0.5, min_expert_tokens=0)

    units = iter_prunable(model)
    experts = [n for n, u in units.items() if isinstance(u, ExpertMatrix)]
    assert len(experts) == 2 * EXPERTS * len(_experts_of(model))
    for name, unit in units.items():
        view = unit.weight if isinstance(unit, ExpertMatrix) else unit.weight
        assert ((view == 0).sum(1) == view.shape[1] // 2).all(), name
        assert report.per_module[name] == 0.5
    for name, p in model.named_parameters():
        if name in routers:
            assert torch.equal(p, routers[name]), name
    for key, value in model.state_dict().items():
        if key in outside:
            assert torch.equal(value, outside[key]), key
    # The target applies to the prunable matrices; the decoder as a whole keeps routers, norms
    # and biases dense, and the report names their share.
    assert report.achieved_sparsity == 0.5
    assert report.decoder_zero_fraction == pytest.approx(_decoder_zero_fraction(model), abs=1e-12)
    assert report.decoder_zero_fraction < 0.5
    decoder = sum(p.numel() for p in stack.layers.parameters())
    assert report.dense_kept["router"] == pytest.approx(
        sum(p.numel() for p in routers.values()) / decoder, abs=1e-12
    )
    assert report.extra["experts"] == EXPERTS * len(_experts_of(model))
    with torch.no_grad():
        logits = model(ids).logits
    assert torch.isfinite(logits).all()

    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    for (k, a), (k2, b) in zip(model.state_dict().items(), reloaded.state_dict().items(),
                               strict=True):  # fmt: skip
        assert k == k2 and torch.equal(a, b), k
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, logits, atol=1e-5)


@pytest.mark.parametrize("family", ["mixtral", "gpt_oss", "qwen2_moe"])
def test_sparsegpt_two_four_in_every_expert(family):
    model = build_moe(family)
    report = prune_model(model, _ids(), "sparsegpt", 0.5, "2:4", block_size=8, min_expert_tokens=0)
    for name, unit in iter_prunable(model).items():
        view = unit.weight
        groups = (view == 0).reshape(view.shape[0], -1, 4).sum(-1)
        assert (groups == 2).all(), name
    assert report.extra["experts_fallback"] == 0


def test_sparsegpt_solves_pooled_fallbacks_in_every_expert():
    model = build_moe("qwen3_moe")
    report = prune_model(model, _ids(), "sparsegpt", 0.5, "2:4", block_size=8,
                         min_expert_tokens=10**6, expert_fallback="layer")  # fmt: skip
    assert report.extra["experts_fallback"] == report.extra["experts"] == 2 * EXPERTS
    for name, unit in iter_prunable(model).items():
        groups = (unit.weight == 0).reshape(unit.weight.shape[0], -1, 4).sum(-1)
        assert (groups == 2).all(), name


@pytest.mark.parametrize("family", ["mixtral", "qwen3_moe", "olmoe", "qwen2_moe", "gpt_oss"])
def test_layer0_expert_masks_come_from_routed_tokens(family):
    model = build_moe(family)
    ids = _ids()
    routing = _routing(model, ids)
    name, experts = _experts_of(model)[0]
    assert name.startswith("model.layers.0.")
    hidden, index = routing[name]
    originals = {e: {p: w.detach().clone() for p, w in _expert_views(experts, e).items()}
                 for e in range(EXPERTS)}  # fmt: skip
    with torch.no_grad():
        inputs = {e: hidden[(index == e).any(dim=1)] for e in range(EXPERTS)}
        mids = {e: _intermediate(experts, e, x) for e, x in inputs.items()}

    prune_model(model, ids, "wanda", 0.5, min_expert_tokens=1)

    for e in range(EXPERTS):
        if inputs[e].shape[0] == 0:
            continue
        for p, before in originals[e].items():
            x = inputs[e] if p != "down_proj" else mids[e]
            expected = _wanda_reference(before, x.float().square().sum(0), 0.5)
            after = _expert_views(experts, e)[p]
            assert torch.equal(after == 0, expected), (e, p)


@pytest.mark.parametrize("policy", ["layer", "magnitude", "dense"])
def test_unreached_experts_follow_the_fallback(policy):
    model = build_moe("mixtral")
    ids = _ids(1, 1)  # one token, top-2 of 4 experts: two experts per layer see nothing
    routing = _routing(model, ids)
    name, experts = _experts_of(model)[0]
    hidden, index = routing[name]
    reached = set(index.flatten().tolist())
    assert len(reached) == 2
    originals = {e: {p: w.detach().clone() for p, w in _expert_views(experts, e).items()}
                 for e in range(EXPERTS)}  # fmt: skip

    report = prune_model(model, ids, "wanda", 0.5, min_expert_tokens=1, expert_fallback=policy)

    assert report.extra["experts_fallback"] == 2 * 2  # two per layer, two layers
    assert report.extra["expert_fallback"] == policy
    for e in set(range(EXPERTS)) - reached:
        for p, before in originals[e].items():
            after = _expert_views(experts, e)[p]
            if policy == "dense":
                assert torch.equal(after, before), (e, p)
                continue
            if policy == "magnitude":  # lowest |W| over the whole matrix
                k = before.numel() // 2
                order = before.abs().flatten().argsort()[:k]
                expected = torch.zeros(before.numel(), dtype=torch.bool)
                expected = expected.scatter_(0, order, True).reshape(before.shape)
                assert torch.equal(after == 0, expected), (e, p)
                continue
            elif p == "gate_up_proj":
                # pooled over the block's experts: every token entering the block, top_k times
                expected = _wanda_reference(before, hidden.float().square().sum(0), 0.5)
            else:
                continue  # pooled intermediate activations: checked for exact sparsity below
            assert torch.equal(after == 0, expected), (e, p)
        if policy == "layer":
            down = _expert_views(experts, e)["down_proj"]
            assert ((down == 0).sum(1) == down.shape[1] // 2).all()
    for e in reached:
        for p in originals[e]:
            after = _expert_views(experts, e)[p]
            assert ((after == 0).sum(1) == after.shape[1] // 2).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_routed_forward_matches_the_model_and_sees_every_routed_token(family):
    model = build_moe(family)
    ids = _ids(2, 8)
    seen: list[tuple[int, str, int]] = []
    with torch.no_grad():
        reference = model(ids).logits
        modules = [m for _, m in _experts_of(model)]
        with recording_routed_inputs(modules, lambda m, e, p, x: seen.append((e, p, len(x)))):
            recorded = model(ids).logits
    assert torch.allclose(recorded, reference, atol=1e-6), family
    k = model.config.num_experts_per_tok
    first = [n for e, p, n in seen if p != "down_proj"]
    # every layer's experts together see every token k times
    assert sum(first) == len(modules) * ids.numel() * k, family


def test_oneshot_equals_sequential_on_the_first_layer():
    a, b = build_moe("qwen2_moe"), build_moe("qwen2_moe")
    ids = _ids()
    prune_model(a, ids, "wanda", 0.5, mode="sequential", min_expert_tokens=0)
    prune_model(b, ids, "wanda", 0.5, mode="oneshot", min_expert_tokens=0)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        if name.startswith("model.layers.0."):
            assert torch.equal(pa == 0, pb == 0), name


def test_a_decoder_matrix_no_method_prunes_is_a_loud_error():
    model = build_moe("mixtral")
    layer = find_decoder_stack(model).layers[0]
    layer.register_parameter("mystery", nn.Parameter(torch.ones(4, 4)))
    with pytest.raises(UnprunableWeights, match=r"model\.layers\.0\.mystery"):
        prune_model(model, _ids(), "magnitude", 0.5)


def test_routing_counts_and_coverage_metrics():
    model = build_moe("olmoe")
    ids = _ids(3, 10)
    with torch.no_grad(), counting_routed_tokens(model) as counts:
        model(ids)
    routing = _routing(model, ids)
    assert counts.layers == list(routing)
    for row, name in enumerate(counts.layers):
        expected = torch.bincount(routing[name][1].flatten(), minlength=EXPERTS)
        assert torch.equal(counts.tokens[row], expected)
    assert int(counts.tokens.sum()) == len(counts.layers) * ids.numel() * 2

    hand = RoutingCounts(["a", "b"], torch.tensor([[5, 5, 5, 5], [20, 0, 0, 0]]))
    metrics = hand.metrics(min_tokens=5)
    assert metrics["expert_coverage"] == pytest.approx(5 / 8)
    assert metrics["routing_entropy"] == pytest.approx(0.5)  # 1 (uniform) and 0 (one expert)
    assert RoutingCounts([], torch.zeros(0, 0, dtype=torch.long)).metrics(16) == {}
