"""OWL layer allocation against a numpy transcription of the authors' formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raysweep.pruning.masks import NMStructure
from raysweep.pruning.owl import (
    DEFAULT_LAMBDA,
    DEFAULT_M,
    DEFAULT_NM_LAMBDA,
    DEFAULT_NM_M,
    NM_SUPPORTED,
    check_owl,
    layer_nm,
    layer_sparsities,
    outlier_share,
)

torch.set_num_threads(1)


def _numpy_owl(shares, sparsity, lam):
    """luuyin/OWL prune_wanda_outlier: rescale to [0, 2λ], shift to mean 1 - s, 1 - ratio."""
    d = np.array(shares, dtype=np.float64)
    ratio = (d - d.min()) * (1 / (d.max() - d.min()) * lam * 2)
    ratio = ratio - np.mean(ratio) + (1 - sparsity)
    return 1 - ratio


def _numpy_owl_nm(shares, prune, lam):
    """luuyin/OWL prune_wanda_outlier_structure: pruned per group after the rounded shift."""
    d = np.array(shares, dtype=np.float64)
    ratio = (d - d.min()) * (1 / (d.max() - d.min()) * lam)
    return prune - np.round(ratio - np.mean(ratio))


def test_defaults_are_the_authors_readme_settings():
    assert (DEFAULT_M, DEFAULT_LAMBDA) == (5.0, 0.08)
    assert (DEFAULT_NM_M, DEFAULT_NM_LAMBDA) == (6.0, 2.0) and NM_SUPPORTED


@pytest.mark.parametrize("num_layers", [2, 7, 32])
@pytest.mark.parametrize("sparsity", [0.5, 0.7])
def test_layer_sparsities_equal_the_authors_formula_and_keep_the_mean(num_layers, sparsity):
    rng = np.random.default_rng(num_layers)
    for _ in range(5):
        shares = rng.uniform(0.5, 12.0, num_layers).tolist()
        got = layer_sparsities(shares, sparsity, DEFAULT_LAMBDA)
        np.testing.assert_allclose(got, _numpy_owl(shares, sparsity, DEFAULT_LAMBDA), atol=1e-6)
        assert abs(sum(got) / num_layers - sparsity) < 1e-9  # unweighted over layers
        assert max(got) - min(got) == pytest.approx(2 * DEFAULT_LAMBDA)
        # More outliers, denser.
        order = np.argsort(shares)
        assert all(np.diff(np.array(got)[order]) <= 1e-12)


def test_equal_shares_give_the_uniform_target():
    assert layer_sparsities([3.0] * 4, 0.7, DEFAULT_LAMBDA) == [0.7] * 4
    assert layer_sparsities([2.5], 0.6, DEFAULT_LAMBDA) == [0.6]
    assert layer_nm([1.0] * 3, NMStructure(2, 4), 1.0) == [NMStructure(2, 4)] * 3


def test_outlier_share_counts_entries_strictly_above_m_times_the_mean_of_all():
    q = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    o = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 14.0, 40.0, 0.0])
    # mean over all 16 entries = (4 + 9 + 14 + 40) / 16 = 67 / 16; threshold 3x = 12.5625
    assert outlier_share([q, o], 3.0) == pytest.approx(100 * 2 / 16)
    # Strictly greater: an entry equal to the threshold does not count (mean 2, 2x = 4).
    assert outlier_share([torch.tensor([4.0, 2.0, 0.0, 2.0])], 2.0) == 0.0
    assert outlier_share(iter([torch.zeros(3), torch.ones(1)]), 1.0) == 25.0  # any iterable
    with pytest.raises(ValueError, match="at least one score"):
        outlier_share([], DEFAULT_M)


def test_outlier_share_matches_the_concatenated_count():
    g = torch.Generator().manual_seed(0)
    parts = [torch.rand(6, 8, generator=g) ** 4 for _ in range(3)]
    flat = torch.cat([p.flatten() for p in parts]).double()
    expected = 100 * float((flat > DEFAULT_M * flat.mean()).sum()) / flat.numel()
    assert outlier_share(parts, DEFAULT_M) == pytest.approx(expected)


def test_check_owl_accepts_the_authors_settings_and_rejects_bad_lambdas():
    check_owl(0.7, 0.08)
    check_owl(0.7, 0.08, num_layers=32)
    check_owl(0.5, 0.0)
    check_owl(0.7, 5.0, num_layers=1)  # one layer: no spread
    with pytest.raises(ValueError, match=r"owl_lambda must be >= 0, got -0.01"):
        check_owl(0.7, -0.01)
    with pytest.raises(ValueError, match=r"owl_lambda=0.16 .* must lie in \[0, 0.15\]"):
        check_owl(0.7, 0.16)
    # With L layers the reach is 2λ(L-1)/L: 0.16 fits 4 layers at 70 % (0.7 + 0.24 < 1).
    check_owl(0.7, 0.16, num_layers=4)
    with pytest.raises(ValueError, match=r"owl_lambda=0.2 .* 4 layers owl_lambda must lie in "
                                         r"\[0, 0.2\)"):  # fmt: skip
        check_owl(0.7, 0.2, num_layers=4)
    with pytest.raises(ValueError, match=r"owl_lambda=0.06 .* must lie in \[0, 0.05\]"):
        check_owl(0.1, 0.06)  # the low side: 0.1 - 2 * 0.06 < 0
    with pytest.raises(ValueError, match="owl_lambda"):
        layer_sparsities([1.0, 2.0], 0.7, 0.4)
    # The bound is tight: at the largest allowed λ the extreme layers touch [0, 1).
    got = layer_sparsities([1.0, 0.0, 0.0, 0.0], 0.3, 0.2)  # reach 2 * 0.2 * 3/4 = 0.3
    assert got[0] == pytest.approx(0.0, abs=1e-12) and got[0] >= 0 and max(got) < 1


def test_layer_nm_equals_the_authors_structure_form():
    rng = np.random.default_rng(3)
    nm = NMStructure(3, 8)  # the authors' "5:8": 5 pruned of every 8
    for _ in range(5):
        shares = rng.uniform(0.5, 12.0, 32).tolist()
        got = layer_nm(shares, nm, DEFAULT_NM_LAMBDA)
        assert [s.prune for s in got] == _numpy_owl_nm(shares, nm.prune, DEFAULT_NM_LAMBDA).tolist()
        assert {s.group for s in got} == {8}
        # More outliers, fewer pruned.
        order = np.argsort(shares)
        assert all(np.diff([got[i].prune for i in order]) <= 0)
    check_owl(0.625, DEFAULT_NM_LAMBDA, 32, nm=nm)
    with pytest.raises(ValueError, match=r"owl_lambda=2 can move .* by 2, leaving \[1, 3\]"):
        check_owl(0.5, 2.0, nm=NMStructure(2, 4))
    with pytest.raises(ValueError, match="implies sparsity"):
        check_owl(0.7, 1.0, nm=NMStructure(2, 4))
