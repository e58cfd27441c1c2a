"""SparseGPT: prune with optimal-brain-surgeon updates from the Hessian ``H = sum_t x_t x_t^T``.

Reference semantics (Frantar & Alistarh, 2023): dampen H by ``damp * mean(diag H)``, take the
upper Cholesky factor U of H^-1, walk the columns in blocks of ``block_size``; in each block choose
the mask over all rows of the block (unstructured: the lowest ``w^2 / U_ii^2``; N:M: per group of
M columns, chosen when the walk reaches the group), zero the masked weights column by column and
push each column's error onto the columns to its right. Only the scale-free shape of H matters, so
sums and means give the same result.

Several weight matrices that read the same input (q/k/v, gate/up) share one Hessian: they are
stacked along the rows and walked together, with every mask still chosen per matrix (``segments``),
which is exactly equivalent to pruning them one by one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from raysweep.pruning.masks import NMStructure, lowest_k_mask

DEFAULT_DAMP = 0.01
DEFAULT_BLOCK_SIZE = 128
CHOLESKY_RETRIES = 3


class HessianNotPositiveDefinite(RuntimeError):
    """Raised when every dampening retry of a Hessian's Cholesky factorisation failed."""


def new_hessian(in_features: int, device: torch.device | str | None = None) -> torch.Tensor:
    return torch.zeros(in_features, in_features, dtype=torch.float32, device=device)


_HESSIAN_PANELS = 4
_PANEL_MIN_FEATURES = 256


def accumulate_hessian(hessian: torch.Tensor, inputs: torch.Tensor) -> None:
    """Add ``X^T X`` of ``inputs`` (..., in_features) to ``hessian`` (in, in) in place.

    X^T X is symmetric: for wide inputs only the row panels right of the diagonal are
    multiplied (about 5/8 of the flops with 4 panels) and mirrored into the lower triangle.
    """
    x = inputs.reshape(-1, inputs.shape[-1]).float()
    width = x.shape[1]
    if width < _PANEL_MIN_FEATURES:
        hessian.addmm_(x.t(), x)
        return
    step = -(-width // _HESSIAN_PANELS)
    edges = [*range(0, width, step), width]
    for a0, a1 in zip(edges[:-1], edges[1:], strict=True):
        hessian[a0:a1, a0:].addmm_(x[:, a0:a1].t(), x[:, a0:])
    for a0, a1 in zip(edges[:-1], edges[1:], strict=True):
        hessian[a1:, a0:a1] = hessian[a0:a1, a1:].t()


def inverse_cholesky_upper(
    hessian: torch.Tensor, damp: float = DEFAULT_DAMP, name: str = "<weight>"
) -> torch.Tensor:
    """Upper Cholesky factor of ``(H + damp * mean(diag H) * I)^-1``; ``hessian`` is kept.

    If a factorisation fails the dampening grows tenfold, up to ``CHOLESKY_RETRIES`` times, then
    HessianNotPositiveDefinite names the module.
    """
    return inverse_cholesky_upper_(hessian.clone(), damp, name)


def inverse_cholesky_upper_(
    h: torch.Tensor, damp: float = DEFAULT_DAMP, name: str = "<weight>"
) -> torch.Tensor:
    """:func:`inverse_cholesky_upper` that consumes the symmetric ``h`` (in, in) in place.

    One (in, in) buffer beside ``h``: the factor, laid out column-major so that LAPACK (and
    cuSOLVER) factor, invert and refactor in it and in ``h`` without copies. ``h`` is damped in
    place and ends up holding the damped inverse. (At in_features 14336 a buffer is 0.77 GiB.)
    The returned factor is a column-major view: read it as any tensor.
    """
    n = h.shape[0]
    factor = torch.empty(n, n, dtype=h.dtype, device=h.device).t()  # column-major
    info = torch.empty((), dtype=torch.int32, device=h.device)
    hc = h.t()  # the same symmetric matrix, column-major
    mean_diag = torch.diagonal(h).mean()
    tried: list[float] = []
    applied = 0.0
    for attempt in range(CHOLESKY_RETRIES + 1):
        frac = damp * 10**attempt
        tried.append(frac)
        torch.diagonal(h).add_((frac - applied) * mean_diag)  # damping grows cumulatively
        applied = frac
        torch.linalg.cholesky_ex(hc, out=(factor, info))
        if int(info) != 0:
            continue
        torch.cholesky_inverse(factor, out=hc)  # h := (H + damping)^-1
        torch.linalg.cholesky_ex(hc, upper=True, out=(factor, info))
        if int(info) == 0:
            return factor
        # The inverse did not factor (ill-conditioned): recover the damped H and damp more.
        h.copy_(torch.linalg.inv(h))
    raise HessianNotPositiveDefinite(
        f"SparseGPT: Hessian of {name} is not positive definite with dampening "
        f"{', '.join(f'{f:g}' for f in tried)} x mean(diag); "
        "use more calibration tokens or a larger damp"
    )


def sparsegpt_prune(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float,
    nm: NMStructure | None = None,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    damp: float = DEFAULT_DAMP,
    segments: Sequence[int] | None = None,
    name: str = "<weight>",
    consume_hessian: bool = False,
) -> torch.Tensor:
    """Return the pruned weight (fp32, same shape) of ``weight`` (rows, cols) given ``hessian``.

    ``segments`` lists the row counts of stacked matrices that share ``hessian``; each one gets
    its own unstructured mask per block. Default: one matrix. With ``consume_hessian`` an fp32
    ``hessian`` is used as the solve's workspace (overwritten): one (cols, cols) buffer less.
    """
    rows, cols = weight.shape
    if nm is not None and (cols % nm.group or block_size % nm.group):
        raise ValueError(
            f"N:M {nm} needs in_features ({cols}) and block_size ({block_size}) divisible by {nm.group}"
        )
    segments = [rows] if segments is None else list(segments)
    if sum(segments) != rows:
        raise ValueError(f"segments {segments} do not add up to {rows} rows")
    # Work on W^T (cols, rows): a column of W is then a contiguous row.
    # One fp32 copy, transposed as it is made (not a transposed fp32 copy, then a contiguous one).
    wt = torch.empty(cols, rows, dtype=torch.float32, device=weight.device)
    wt.copy_(weight.detach().t())
    del weight  # a stacked temporary of the caller's is freed here
    h = hessian.float()
    if h.data_ptr() == hessian.data_ptr() and not consume_hessian:
        h = h.clone()  # the caller keeps its statistics
    dead = torch.diagonal(h) == 0
    if dead.any():
        # Features never active: any value of theirs is free, so zero them and keep H invertible.
        h[dead, dead] = 1.0
        wt[dead] = 0.0
    u = inverse_cholesky_upper_(h, damp, name)
    del h
    bounds = torch.tensor([0, *segments]).cumsum(0).tolist()

    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        count = i2 - i1
        w1 = wt[i1:i2].clone()  # (count, rows)
        u1 = u[i1:i2, i1:i2]
        d = torch.diagonal(u1)  # (count,)
        err = torch.empty_like(w1)
        if nm is None:
            mask = torch.empty(count, rows, dtype=torch.bool, device=wt.device)
            scores = (w1 / d.unsqueeze(1)).square()
            for r0, r1 in zip(bounds[:-1], bounds[1:], strict=True):
                seg = scores[:, r0:r1]
                mask[:, r0:r1] = lowest_k_mask(
                    seg.reshape(-1), int(seg.numel() * sparsity)
                ).reshape(seg.shape)
            # err_i = (w_i - q_i) / d_i = w_i * mask_i / d_i
            scale = mask.float() / d.unsqueeze(1)
        else:
            mask = torch.zeros(count, rows, dtype=torch.bool, device=wt.device)
            scale = torch.zeros(count, rows, dtype=torch.float32, device=wt.device)
        for i in range(count):
            if nm is not None and i % nm.group == 0:
                j = i + nm.group
                group_scores = (w1[i:j] / d[i:j].unsqueeze(1)).square()  # (M, rows)
                mask[i:j] = lowest_k_mask(group_scores.t(), nm.prune).t()
                scale[i:j] = mask[i:j].float() / d[i:j].unsqueeze(1)
            torch.mul(w1[i], scale[i], out=err[i])
            # OBS update of this and the remaining columns of the block.
            w1[i:].addr_(u1[i, i:], err[i], alpha=-1.0)
        wt[i1:i2] = w1.masked_fill_(mask, 0.0)
        if i2 < cols:
            # Lazy update of every column right of the block. (cols-i2, rows)
            wt[i2:].addmm_(u[i1:i2, i2:].t(), err, alpha=-1.0)
    return wt.t()
