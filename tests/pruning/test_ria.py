"""RIA kernel against an independent loop implementation of the authors' score and selection."""

from __future__ import annotations

import pytest
import torch

from raysweep.pruning.masks import NMStructure
from raysweep.pruning.ria import DEFAULT_ALPHA, DEFAULT_PER_ROW, ria_mask, ria_scores

torch.set_num_threads(1)


def _data(rows: int = 10, cols: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=g)
    x = torch.randn(300, cols, generator=g) * torch.exp(torch.randn(cols, generator=g))
    return weight, (x.double() ** 2).sum(0).float()


def _reference_scores(weight, sqnorm, alpha):
    """Element by element, in float64: column mass, row mass, activation norm ** alpha."""
    w = weight.double().abs()
    rows, cols = w.shape
    out = torch.zeros(rows, cols, dtype=torch.float64)
    for i in range(rows):
        row_mass = sum(float(w[i, j]) for j in range(cols))
        for j in range(cols):
            col_mass = sum(float(w[k, j]) for k in range(rows))
            norm = float(sqnorm[j]) ** 0.5
            out[i, j] = (float(w[i, j]) / col_mass + float(w[i, j]) / row_mass) * norm**alpha
    return out


def _reference_mask(scores, sparsity, nm, per_row):
    """Ascending stable sort, then the first k indices of each row / group / the matrix."""
    rows, cols = scores.shape
    mask = torch.zeros(rows, cols, dtype=torch.bool)
    if nm is not None:
        for i in range(rows):
            for start in range(0, cols, nm.group):
                group = scores[i, start : start + nm.group]
                for j in torch.sort(group, stable=True).indices[: nm.prune].tolist():
                    mask[i, start + j] = True
    elif per_row:
        for i in range(rows):
            mask[i, torch.sort(scores[i], stable=True).indices[: int(cols * sparsity)]] = True
    else:
        flat = torch.sort(scores.reshape(-1), stable=True).indices[: int(rows * cols * sparsity)]
        mask.view(-1)[flat] = True
    return mask


@pytest.mark.parametrize("alpha", [DEFAULT_ALPHA, 0.0, 1.3])
def test_scores_equal_the_formula_computed_entry_by_entry(alpha):
    weight, sq = _data()
    torch.testing.assert_close(
        ria_scores(weight, sq, alpha).double(), _reference_scores(weight, sq, alpha),
        rtol=1e-5, atol=1e-7,
    )  # fmt: skip
    assert ria_scores(weight.half(), sq).dtype == torch.float32


@pytest.mark.parametrize(
    ("sparsity", "nm", "per_row"),
    [(0.5, None, True), (0.7, None, True), (0.5, None, False), (0.6, None, False),
     (0.5, NMStructure(2, 4), False), (0.75, NMStructure(1, 4), False),
     (0.5, NMStructure(4, 8), True)],
)  # fmt: skip
def test_mask_equals_a_sorted_selection(sparsity, nm, per_row):
    for seed in range(3):
        weight, sq = _data(seed=seed)
        mask = ria_mask(weight, sq, sparsity, nm, per_row=per_row)
        expected = _reference_mask(_reference_scores(weight, sq, DEFAULT_ALPHA), sparsity, nm,
                                   per_row)  # fmt: skip
        assert torch.equal(mask, expected), (seed, sparsity, nm, per_row)


def test_exact_counts_per_row_per_matrix_and_per_group():
    weight, sq = _data(rows=10, cols=24)
    assert ria_mask(weight, sq, 0.55, None, per_row=True).sum(1).tolist() == [13] * 10
    assert int(ria_mask(weight, sq, 0.55, None).sum()) == int(240 * 0.55)
    per_group = ria_mask(weight, sq, 0.5, NMStructure(2, 4)).reshape(10, 6, 4).sum(-1)
    assert (per_group == 2).all()
    assert DEFAULT_PER_ROW is False  # the authors' default compares the whole matrix


def test_alpha_zero_is_relative_importance_alone():
    weight, sq = _data()
    a = weight.abs()
    relative = a / a.sum(0, keepdim=True) + a / a.sum(1, keepdim=True)
    torch.testing.assert_close(ria_scores(weight, sq, 0.0), relative)
    # The activations then play no part, dead channels included.
    dead = sq.clone()
    dead[:5] = 0
    assert torch.equal(ria_mask(weight, dead, 0.5, None, 0.0), ria_mask(weight, sq, 0.5, None, 0.0))


@pytest.mark.parametrize("per_row", [True, False])
def test_scaling_sqnorm_changes_no_selection(per_row):
    weight, sq = _data(seed=1)
    # The authors' scaler_row is sqnorm / (number of sequences): a constant factor.
    for factor in (1 / 128, 3.0, 2048.0):
        torch.testing.assert_close(
            ria_scores(weight, sq * factor), ria_scores(weight, sq) * factor ** (DEFAULT_ALPHA / 2)
        )
        for nm in (None, NMStructure(2, 4)):
            assert torch.equal(ria_mask(weight, sq * factor, 0.5, nm, per_row=per_row),
                               ria_mask(weight, sq, 0.5, nm, per_row=per_row))  # fmt: skip


def test_zero_rows_and_columns_score_zero_instead_of_nan():
    weight, sq = _data(rows=6, cols=8)
    weight[2] = 0
    weight[:, 5] = 0
    scores = ria_scores(weight, sq)
    assert torch.isfinite(scores).all()
    assert (scores[2] == 0).all() and (scores[:, 5] == 0).all()
    # Each non-zero row prunes its zero weight first (the zero row prunes its first two).
    mask = ria_mask(weight, sq, 0.25, None, per_row=True)
    assert mask[[0, 1, 3, 4, 5], 5].all() and mask[2].tolist() == [True, True] + [False] * 6
