"""OWL allocation, RIA and DSnoT through ``prune_model``: equal to the authors' algorithms
computed here from the dense model's own layer inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from raysweep.config import ConfigError, load_config
from raysweep.pruning import collect_statistics, find_decoder_stack, prune_model
from raysweep.pruning.architecture import account_decoder, weight_matrix
from tests.pruning.reference import dense_linear_sqnorms
from tests.pruning.tiny_hybrids import build as build_hybrid
from tests.pruning.tiny_models import build, calibration

torch.set_num_threads(1)


def _authors_owl(model: nn.Module, ids: torch.Tensor, s: float, m: float, lam: float) -> np.ndarray:
    """luuyin/OWL: per layer, the percentage of |W| * sqrt(x^2 sums) of all its projections above
    M x their mean; rescaled to [0, 2 lambda], shifted to mean 1 - s; sparsity 1 - ratio."""
    sq = dense_linear_sqnorms(model, ids)
    stack = find_decoder_stack(model)
    ratios = []
    for index in range(len(stack.layers)):
        prefix = f"{stack.prefix}.{index}."
        metric = torch.cat([
            (dict(model.named_modules())[n].weight.double().abs() * v.sqrt()).flatten()
            for n, v in sq.items() if n.startswith(prefix)
        ])  # fmt: skip
        ratios.append(float((metric > m * metric.mean()).sum()) / metric.numel() * 100)
    d = np.array(ratios)
    d = (d - d.min()) * (1 / (d.max() - d.min()) * lam * 2)
    d = d - np.mean(d) + (1 - s)
    return 1 - d


def test_owl_layer_sparsities_equal_the_authors_formula_and_rows_follow_them():
    model = build("llama")
    torch.manual_seed(5)
    model.model.layers.append(build("llama", seed=7).model.layers[0])  # 3 distinct layers
    model.config.num_hidden_layers = 3
    for i, layer in enumerate(model.model.layers):
        layer.self_attn.layer_idx = i
    ids = calibration(8, 16)
    expected = _authors_owl(model, ids, 0.7, 5.0, 0.1)

    report = prune_model(model, ids, "wanda", 0.7, allocation="owl", owl_lambda=0.1)

    assert report.layer_sparsity == pytest.approx(list(expected), abs=1e-6)
    assert float(np.mean(report.layer_sparsity)) == pytest.approx(0.7, abs=1e-9)
    assert max(report.layer_sparsity) - min(report.layer_sparsity) == pytest.approx(0.2)
    for name, unit in account_decoder(model).units.items():
        layer = int(name.split(".")[2])
        w = weight_matrix(unit)
        per_row = int(w.shape[1] * report.layer_sparsity[layer])
        assert ((w == 0).sum(1) == per_row).all(), name


def test_oneshot_owl_from_statistics_equals_sequential_owl_allocation():
    ids = calibration(8, 16)
    seq, one = build_hybrid("qwen3_5_text"), build_hybrid("qwen3_5_text")
    stats = collect_statistics(one, ids, method="sparsegpt")
    a = prune_model(seq, ids, "wanda", 0.7, allocation="owl")
    b = prune_model(one, None, "wanda", 0.7, mode="oneshot", statistics=stats, allocation="owl")
    # Both allocations come from the dense model's statistics: every layer agrees.
    assert a.layer_sparsity == pytest.approx(b.layer_sparsity, abs=1e-9)
    assert a.outlier_shares == pytest.approx(b.outlier_shares, abs=1e-9)
    # The first layer sees the dense inputs in both modes: same masks.
    for (name, pa), (_, pb) in zip(seq.named_parameters(), one.named_parameters(), strict=True):
        if name.startswith("model.layers.0."):
            assert torch.equal(pa == 0, pb == 0), name


def test_owl_on_moe_and_nm_keeps_the_mean_structure():
    model = build_hybrid("qwen3_5_moe_text")
    report = prune_model(model, calibration(8, 16), "sparsegpt", 0.5, "2:4", allocation="owl",
                         owl_lambda=1.5, owl_m=6, min_expert_tokens=0, block_size=16)  # fmt: skip
    assert sorted(set(report.layer_structure)) != ["2:4"]  # the allocation moved something
    assert float(np.mean(report.layer_sparsity)) == pytest.approx(0.5)
    for name, unit in account_decoder(model).units.items():
        structure = report.layer_structure[int(name.split(".")[2])]
        keep, group = map(int, structure.split(":"))
        w = weight_matrix(unit)
        assert ((w == 0).reshape(w.shape[0], -1, group).sum(-1) == group - keep).all(), name


def _reference_ria(w: torch.Tensor, sq: torch.Tensor, s: float, alpha: float = 0.5) -> torch.Tensor:
    a = w.double().abs()
    score = (a / a.sum(0, keepdim=True) + a / a.sum(1, keepdim=True)) * sq.sqrt() ** alpha
    k = int(w.numel() * s)
    order = torch.sort(score.flatten(), stable=True).indices[:k]
    mask = torch.zeros(w.numel(), dtype=torch.bool)
    mask[order] = True
    return mask.reshape(w.shape)


def test_ria_layer_zero_masks_equal_the_authors_saliency():
    model = build("llama")
    ids = calibration(8, 16)
    sq = dense_linear_sqnorms(model, ids)
    dense = {n: dict(model.named_modules())[n].weight.detach().clone() for n in sq}
    prune_model(model, ids, "ria", 0.6)
    checked = 0
    for name in sq:
        if name.startswith("model.layers.0."):
            got = dict(model.named_modules())[name].weight == 0
            assert torch.equal(got, _reference_ria(dense[name], sq[name], 0.6)), name
            checked += 1
    assert checked == 7


def test_dsnot_refines_every_mask_and_keeps_each_rows_count():
    ids = calibration(8, 16)
    base, refined = build("llama"), build("llama")
    prune_model(base, ids, "wanda", 0.6)
    report = prune_model(refined, ids, "wanda", 0.6, refine="dsnot", dsnot_threshold=0.0)
    units = account_decoder(refined).units
    assert report.refined_units == len(units)
    changed = 0
    for name, unit in units.items():
        w, w0 = weight_matrix(unit), weight_matrix(account_decoder(base).units[name])
        assert torch.equal((w == 0).sum(1), (w0 == 0).sum(1)), name
        changed += int(not torch.equal(w == 0, w0 == 0))
    assert changed > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "magnitude", "refine": "dsnot"}, "magnitude pruning never collects"),
        ({"method": "sparsegpt", "refine": "dsnot"}, "refines the masks of mask methods"),
        ({"method": "wanda", "refine": "dsnt"}, "refine must be one of"),
        ({"method": "wanda", "allocation": "owl", "owl_lambda": 0.3},
         r"owl_lambda=0.3 lets a layer's sparsity leave \[0, 1\)"),
        ({"method": "wanda", "allocation": "owls"}, "allocation must be one of"),
    ],
)  # fmt: skip
def test_bad_high_sparsity_choices_fail_before_any_work(kwargs, message):
    model = build("llama")
    before = {n: p.clone() for n, p in model.named_parameters()}
    method = kwargs.pop("method")
    with pytest.raises(ValueError, match=message):
        prune_model(model, calibration(4, 16), method, 0.8, **kwargs)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["pruning.allocations=[owl]", "pruning.sparsities=[0.9]"], "owl_lambda=0.08 lets"),
        (["pruning.refine=dsnot", "pruning.methods=[magnitude]"], "refine: dsnot reads"),
        (["pruning.refine=dsnot", "pruning.methods=[sparsegpt]"], "refine: dsnot refines"),
        (["pruning.allocations=[owled]"], "allocations"),
    ],
)
def test_bad_high_sparsity_config_is_a_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_owl_with_nm_and_a_lambda_that_moves_nothing_is_an_error():
    with pytest.raises(ValueError, match=r"owl_lambda=0.08 moves no layer's N:M count"):
        prune_model(build("llama"), calibration(4, 16), "wanda", 0.5, "2:4", allocation="owl")
    with pytest.raises(ConfigError, match=r"owl_lambda=0.08 moves no layer's N:M count"):
        load_config(None, ["pruning.allocations=[owl]", "pruning.structures=['2:4']"])
