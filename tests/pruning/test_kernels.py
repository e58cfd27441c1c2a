"""Kernels on bare weight matrices: mask selection, N:M patterns, SparseGPT and its Cholesky retries."""

from __future__ import annotations

import pytest
import torch

from raysweep.pruning.magnitude import magnitude_mask
from raysweep.pruning.masks import NMStructure, check_sparsity, parse_structure
from raysweep.pruning.sparsegpt import (
    HessianNotPositiveDefinite,
    accumulate_hessian,
    inverse_cholesky_upper,
    inverse_cholesky_upper_,
    new_hessian,
    sparsegpt_prune,
)
from raysweep.pruning.wanda import accumulate_sqnorm, new_sqnorm, wanda_mask

torch.set_num_threads(1)


def _data(rows: int = 12, cols: int = 32, tokens: int = 200, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=g)
    x = torch.randn(tokens, cols, generator=g) * torch.exp(torch.randn(cols, generator=g))
    return weight, x


def test_parse_structure_and_sparsity_checks():
    assert parse_structure("unstructured") is None
    assert parse_structure("2:4") == NMStructure(keep=2, group=4)
    assert parse_structure("4:8").sparsity == 0.5
    with pytest.raises(ValueError, match="'4:2' is impossible"):
        parse_structure("4:2")
    with pytest.raises(ValueError, match="structure 2:4 implies sparsity 0.5, got 0.6"):
        check_sparsity(0.6, NMStructure(2, 4))
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\), got 1.0"):
        check_sparsity(1.0, None)


def test_wanda_prunes_exactly_floor_cols_times_sparsity_per_row():
    weight, x = _data(rows=12, cols=30)
    sq = new_sqnorm(30)
    accumulate_sqnorm(sq, x[:120])
    accumulate_sqnorm(sq, x[120:].reshape(2, 40, 30))  # batches of any shape add up
    torch.testing.assert_close(sq, (x.double() ** 2).sum(0).float())
    mask = wanda_mask(weight, sq, 0.55, None)
    assert mask.sum(1).tolist() == [16] * 12  # floor(30 * 0.55) = 16 in every row
    # Pruned scores never exceed kept scores within a row.
    scores = weight.abs() * sq.sqrt()
    for r in range(12):
        assert scores[r][mask[r]].max() <= scores[r][~mask[r]].min()


def test_magnitude_threshold_is_per_matrix_not_per_row():
    weight, _ = _data(rows=8, cols=16)
    weight[0] *= 0.01  # row 0 is all small: a per-matrix threshold prunes it entirely
    mask = magnitude_mask(weight, 0.4, None)
    assert int(mask.sum()) == int(128 * 0.4)
    assert weight.abs()[mask].max() < weight.abs()[~mask].min()
    assert mask[0].all()
    assert len(set(mask.sum(1).tolist())) > 1


@pytest.mark.parametrize("nm", [NMStructure(2, 4), NMStructure(1, 4), NMStructure(4, 8)])
def test_nm_pattern_is_valid_in_every_group_for_every_method(nm):
    weight, x = _data(rows=10, cols=32)
    sq = (x**2).sum(0)
    h = x.t() @ x
    masks = {
        "magnitude": magnitude_mask(weight, nm.sparsity, nm),
        "wanda": wanda_mask(weight, sq, nm.sparsity, nm),
        "sparsegpt": sparsegpt_prune(weight, h, nm.sparsity, nm, block_size=16) == 0,
    }
    for method, mask in masks.items():
        per_group = mask.reshape(10, 32 // nm.group, nm.group).sum(-1)
        assert (per_group == nm.prune).all(), method
    # Wanda's N:M keeps the N highest scores of each group.
    scores = (weight.abs() * sq.sqrt()).reshape(10, -1, nm.group)
    kept = scores.masked_fill(masks["wanda"].reshape(10, -1, nm.group), -1)
    assert (
        kept.topk(nm.keep, -1).values.min(-1).values >= scores.sort(-1).values[..., nm.prune - 1]
    ).all()


def test_sparsegpt_beats_wanda_beats_magnitude_on_reconstruction():
    weight, x = _data(rows=16, cols=64, tokens=400, seed=5)
    h = new_hessian(64)
    accumulate_hessian(h, x)
    sq = torch.diagonal(h)

    def error(pruned):
        return float(((weight - pruned) @ x.t()).norm() / (weight @ x.t()).norm())

    sgpt = sparsegpt_prune(weight, h, 0.5, block_size=16)
    wanda = weight.masked_fill(wanda_mask(weight, sq, 0.5, None), 0)
    magnitude = weight.masked_fill(magnitude_mask(weight, 0.5, None), 0)
    assert (sgpt == 0).sum() == 16 * 64 // 2  # exactly floor(block * sparsity) per block
    assert error(sgpt) < error(wanda) < error(magnitude)


def test_sparsegpt_stacked_segments_equal_separate_calls():
    weight, x = _data(rows=12, cols=32)
    h = x.t() @ x
    together = sparsegpt_prune(weight, h, 0.5, segments=[4, 8], block_size=8)
    apart = torch.cat(
        [
            sparsegpt_prune(weight[:4], h, 0.5, block_size=8),
            sparsegpt_prune(weight[4:], h, 0.5, block_size=8),
        ]
    )
    assert torch.equal(together == 0, apart == 0)
    torch.testing.assert_close(together, apart)


def test_sparsegpt_dead_features_are_zeroed():
    weight, x = _data(rows=6, cols=16)
    x[:, 3] = 0
    pruned = sparsegpt_prune(weight, x.t() @ x, 0.25, block_size=16)
    assert (pruned[:, 3] == 0).all()


def test_cholesky_retry_uses_ten_times_the_dampening():
    h = torch.diag(torch.tensor([1.0] * 7 + [-0.05]))
    mean = float(torch.diagonal(h).mean())
    upper = inverse_cholesky_upper(h, damp=0.01, name="q")
    # 0.01 * mean leaves the last pivot negative; 0.1 * mean is the first that factorises.
    expected = torch.linalg.inv(h + 0.1 * mean * torch.eye(8))
    torch.testing.assert_close(upper.t() @ upper, expected)
    weight = torch.randn(4, 8)
    assert (sparsegpt_prune(weight, h, 0.5, block_size=8) == 0).sum() == 16


def test_a_consumed_hessian_gives_the_same_weights_and_is_only_overwritten_when_asked():
    weight, x = _data(rows=6, cols=32)
    h = x.t() @ x
    kept = h.clone()
    reference = sparsegpt_prune(weight, h, 0.5, block_size=8)
    assert torch.equal(h, kept)  # the default leaves the caller's statistics alone
    consumed = sparsegpt_prune(weight, h, 0.5, block_size=8, consume_hessian=True)
    torch.testing.assert_close(consumed, reference, rtol=0, atol=1e-6)
    assert not torch.equal(h, kept)  # it served as the solve's workspace
    # the in-place factor equals the one computed on a copy, retries included
    bad = torch.diag(torch.tensor([1.0] * 7 + [-0.05]))
    torch.testing.assert_close(
        inverse_cholesky_upper_(bad.clone(), damp=0.01), inverse_cholesky_upper(bad, damp=0.01)
    )


def test_cholesky_gives_up_after_three_retries_naming_the_layer():
    h = torch.diag(torch.tensor([1.0] * 7 + [-100.0]))
    with pytest.raises(
        HessianNotPositiveDefinite,
        match=r"Hessian of model\.layers\.3\.mlp\.down_proj is not positive definite with "
        r"dampening 0\.01, 0\.1, 1, 10 x mean\(diag\)",
    ):
        sparsegpt_prune(torch.randn(4, 8), h, 0.5, name="model.layers.3.mlp.down_proj")


@pytest.mark.parametrize("width", [40, 300])
def test_hessian_accumulation_is_x_transpose_x(width):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 50, width, generator=g)
    h = new_hessian(width)
    accumulate_hessian(h, x[:2])
    accumulate_hessian(h, x[2])
    flat = x.reshape(-1, width).double()
    torch.testing.assert_close(h.double(), flat.t() @ flat, rtol=1e-5, atol=1e-3)
    assert torch.equal(h, h.t())


def test_lowest_k_mask_matches_a_stable_sort_even_with_ties():
    from raysweep.pruning.masks import lowest_k_mask

    g = torch.Generator().manual_seed(4)
    for scores in (
        torch.randint(0, 3, (6, 20), generator=g).float(),
        torch.rand(6, 20, generator=g),
    ):
        for k in range(21):
            expected = torch.zeros(6, 20, dtype=torch.bool)
            expected.scatter_(1, torch.sort(scores, dim=1, stable=True).indices[:, :k], True)
            assert torch.equal(lowest_k_mask(scores, k), expected), k
