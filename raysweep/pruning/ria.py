"""RIA (Relative Importance and Activations; Zhang et al., ICLR 2024): a weight's share of its
column's and of its row's absolute mass, times its input channel's activation norm to a power.

``score_ij = (|W_ij| / sum_i |W_ij| + |W_ij| / sum_j |W_ij|) * ||X_j||_2 ** alpha``

Ported from the authors' code (biomedical-cybernetics/Relative-importance-and-activation-pruning,
``lib/prune.py::prune_ria``, branch ``prune_method == "ria"``; defaults from ``main.py``'s
argparse). What was taken, and what differs:

- ``alpha`` = 0.5: ``main.py --a`` (default 0.5, "exponent of activation"), also the paper's.
- Statistics: ``sqnorm`` is raysweep's Wanda statistic ``sum_t x_tj^2`` over all calibration
  tokens. The authors' ``scaler_row`` is the same sum divided by the number of calibration
  *sequences* (``WrappedGPT.add_batch``). A constant factor c multiplies every score by
  ``c ** (alpha / 2)`` and changes no selection, per row or per matrix.
- Unstructured selection: the authors' default compares scores across the whole matrix
  (``--per_outneuron`` is off unless passed; the README's commands do not pass it), so
  :data:`DEFAULT_PER_ROW` is False; ``per_row=True`` is their ``--per_outneuron`` ("Wanda's
  tactic"). Per matrix they prune ``W_metric <= sorted[int(numel * s)]``, i.e. one weight more
  than ``floor(numel * s)`` (more on ties); raysweep prunes exactly ``floor(numel * s)`` per
  matrix, or ``floor(in * s)`` per row, like its other methods.
- N:M: the ``M - N`` lowest scores of every group of M consecutive inputs in each row
  (raysweep's ``"N:M"`` keeps N; the authors' ``--sparsity_type N:M`` prunes N, the same for
  2:4 and 4:8). Their optional channel permutation for N:M (``--reallocation`` heuristic channel
  reallocation, ``--lsa`` linear sum assignment) is not implemented; neither is
  ``--reconstruction`` (SparseGPT-style update of the kept weights) nor ``--gptq``.
- Zero rows or columns: the authors divide without a guard, so an all-zero column (or row)
  gives 0/0 = NaN scores, which their sort treats as the largest (never pruned). Here a zero
  sum contributes 0: every weight in such a row or column is 0 and scores lowest.
- Precision: the authors sum ``|W|`` in the weight's dtype (fp16); here everything is fp32.
"""

from __future__ import annotations

import torch

from raysweep.names import RIA_ALPHA, RIA_PER_ROW  # the defaults, in one place
from raysweep.pruning.masks import NMStructure, select_mask

DEFAULT_ALPHA = RIA_ALPHA
DEFAULT_PER_ROW = RIA_PER_ROW


def ria_scores(
    weight: torch.Tensor, sqnorm: torch.Tensor, alpha: float = DEFAULT_ALPHA
) -> torch.Tensor:
    """RIA scores (out, in) in fp32 from ``weight`` (out, in) and ``sqnorm`` (in,).

    Invariants: non-negative; scaling ``sqnorm`` by c scales every score by ``c ** (alpha/2)``;
    ``alpha = 0`` gives relative importance alone (``0 ** 0 = 1`` for dead channels).
    """
    a = weight.abs().float()  # (out, in)
    col = a.sum(dim=0, keepdim=True)  # (1, in): sum over output rows i
    row = a.sum(dim=1, keepdim=True)  # (out, 1): sum over inputs j
    # A zero sum means every |W| it divides is 0: contribute 0 instead of 0/0.
    relative = a / torch.where(col > 0, col, 1.0) + a / torch.where(row > 0, row, 1.0)
    activation = sqnorm.float().sqrt().reshape(1, -1).pow(alpha)  # (1, in)
    return relative * activation


def ria_mask(
    weight: torch.Tensor,
    sqnorm: torch.Tensor,
    sparsity: float,
    nm: NMStructure | None,
    alpha: float = DEFAULT_ALPHA,
    *,
    per_row: bool = DEFAULT_PER_ROW,
) -> torch.Tensor:
    """Prune mask (True = prune): N:M groups along each row if ``nm`` is given; otherwise
    exactly ``floor(numel * sparsity)`` lowest scores of the matrix (the authors' default) or,
    with ``per_row``, exactly ``floor(in * sparsity)`` in every row."""
    return select_mask(ria_scores(weight, sqnorm, alpha), sparsity, nm, per_row=per_row)
