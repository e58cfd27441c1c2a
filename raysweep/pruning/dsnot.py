"""DSnoT (Dynamic Sparse No Training; Zhang et al., ICLR 2024): training-free prune-and-regrow
that refines a base mask row by row, swapping one pruned and one kept weight per cycle so that
the expected output shift ``sum over pruned W_ij * E[x_j]`` of each row moves towards 0.

Statistics per input channel j: ``sums`` (``sum_t x_tj``), ``sqsums`` (``sum_t x_tj^2``, the
Wanda statistic) and the token count; mean and *biased* variance follow (:func:`input_moments`).

Ported from the authors' code (zyxxmu/DSnoT ``lib/prune.py::prune_DSnoT``, statistics from
``lib/layerwrapper.py::WrappedGPT.add_batch``, defaults from ``main.py``'s argparse). One cycle,
for every row at once, with ``e`` the row's error (sum of ``d_ij = W_ij * mu_j`` over its pruned
weights):

- regrow: if ``e > 0`` the pruned weight with the largest ``d / var^p`` (``p`` =
  ``pow_of_var_regrowing``), else the one with the smallest (most negative);
- prune (unstructured): if ``e < 0`` the kept weight with ``d > 0`` of lowest Wanda score, else
  the kept weight with ``d < 0`` of lowest Wanda score; (N:M) the kept weight of the regrown
  weight's own group of M with the lowest base score that has not been touched yet;
- swap iff ``|e| > update_threshold`` (and, when ``same_sign``, the new error keeps the sign
  the row started with); a row that does not swap stops for good. At most ``max_cycles``.

Every row keeps exactly its base count of pruned weights (and N:M groups stay N:M).

Defaults (``main.py``): :data:`DEFAULT_MAX_CYCLES` = 50 (``--max_cycle_time``),
:data:`DEFAULT_UPDATE_THRESHOLD` = 0.1 (``--update_threshold``),
:data:`DEFAULT_POW_OF_VAR_REGROWING` = 1 (``--pow_of_var_regrowing``), all three also the
README's command. ``--pow_of_var_pruning`` (default 1) is parsed but read nowhere: not exposed.
``same_sign=None`` follows the authors per form: off for unstructured (``--without_same_sign``
is ``type=bool, default=True``, so their sign check never runs), always on for N:M (their N:M
branch applies it unconditionally).

Where this differs from the authors, and why:

- Error scale (:data:`DEFAULT_TOKENS_PER_SAMPLE`): their ``sum_metric_row`` is ``sum_t x / number
  of sequences``, i.e. ``seqlen * mean`` with their 2048-token sequences, so ``update_threshold``
  is compared with ``2048 * sum W mu``. Here ``d = W * mean * tokens_per_sample``; the default
  2048 reproduces their threshold per token whatever the calibration window length. This is the
  only place the scale matters (orderings and signs are scale-free).
- Variance: theirs is the token-weighted mean of each forward call's biased variance (one
  sequence per call): the variance *within* sequences. Additive sums only give the variance over
  all tokens, which adds the variance of the per-sequence means. The moments are also subject
  to cancellation when ``|mean| >> std`` (fp32 sums); the subtraction is done in fp64.
- Running out of candidates: their pointers walk on into weights that are not candidates (kept
  weights in the regrow order, zero-``d`` or opposite-sign weights in the prune order), which
  can change a row's count. Here a row whose needed candidate list is exhausted stops. At LLM
  widths this never happens within 50 cycles (each list holds hundreds of weights per row).
- Zero variance: their ``d / var`` gives NaN for kept weights (0/0), sorted as largest. Here
  only pruned weights with ``d != 0`` are regrow candidates; ``d / 0`` is an infinite key.
- The base mask is an input: theirs is the lowest ``int(in * s)`` per row by the initial
  method's metric; any mask works here. Their ``--skip_layer`` (default ``mlp``: DSnoT refines
  only the attention projections and leaves MLP layers with the base mask) is the caller's
  choice, not the kernel's.
- N:M: the prune candidate is ranked by ``base_scores`` (theirs: the initial method's metric;
  default here the Wanda score, which is theirs for ``--initial_method wanda``). Their N:M
  format ``"2:4"`` prunes 2 of 4; raysweep's keeps N and prunes ``nm.prune`` per group.

Not guaranteed (``tests/pruning/test_dsnot.py`` measures it on the calibration inputs): with the
sign check a row's ``|e|`` never grows; without it (the unstructured default) a swap can
overshoot, and at the per-token threshold of ~5e-5 rows rarely stop before ``max_cycles``. On
synthetic layers with a few high-mean channels the output error on X drops (width 2048); where
channel means are small (or rows are narrow), 50 swaps per row can raise it.
"""

from __future__ import annotations

import torch

from raysweep.names import DSNOT_CYCLES, DSNOT_THRESHOLD  # the defaults, in one place
from raysweep.pruning.masks import NMStructure
from raysweep.pruning.wanda import token_chunks

DEFAULT_MAX_CYCLES = DSNOT_CYCLES
DEFAULT_UPDATE_THRESHOLD = DSNOT_THRESHOLD
DEFAULT_POW_OF_VAR_REGROWING = 1.0
DEFAULT_TOKENS_PER_SAMPLE = 2048.0


def accumulate_sums(sums: torch.Tensor, inputs: torch.Tensor) -> None:
    """Add ``sum_t x_t`` of ``inputs`` (..., in_features) to ``sums`` (in_features,) in place."""
    for block in token_chunks(inputs):  # no fp32 copy of a whole bf16 batch
        sums.add_(block.sum(dim=0, dtype=torch.float32))


def input_moments(
    sums: torch.Tensor, sqsums: torch.Tensor, num_tokens: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance (fp32, (in,)) over ``num_tokens`` tokens; the
    variance is clamped at 0 against rounding."""
    if not num_tokens > 0:
        raise ValueError(f"DSnoT needs calibration tokens, got num_tokens={num_tokens}")
    mean = sums.double() / num_tokens
    var = (sqsums.double() / num_tokens - mean.square()).clamp_min(0)
    return mean.float(), var.float()


def _check(weight, mask, sums, sqsums, max_cycles, update_threshold, tokens_per_sample, nm,
           base_scores) -> None:  # fmt: skip
    if weight.dim() != 2 or mask.shape != weight.shape or mask.dtype != torch.bool:
        raise ValueError(
            f"DSnoT needs a 2-D weight and a bool mask of its shape, got {tuple(weight.shape)} "
            f"and {tuple(mask.shape)} {mask.dtype}"
        )
    cols = weight.shape[1]
    if sums.shape != (cols,) or sqsums.shape != (cols,):
        raise ValueError(f"DSnoT statistics must be ({cols},), got {tuple(sums.shape)} and "
                         f"{tuple(sqsums.shape)}")  # fmt: skip
    if max_cycles < 0 or update_threshold < 0 or not tokens_per_sample > 0:
        raise ValueError(
            f"DSnoT needs max_cycles >= 0, update_threshold >= 0 and tokens_per_sample > 0, got "
            f"{max_cycles}, {update_threshold}, {tokens_per_sample}"
        )
    if base_scores is not None and base_scores.shape != weight.shape:
        raise ValueError(f"base_scores must be shaped like the weight {tuple(weight.shape)}")
    if nm is not None:
        if cols % nm.group:
            raise ValueError(f"N:M {nm} needs in_features divisible by {nm.group}, got {cols}")
        per_group = mask.reshape(mask.shape[0], -1, nm.group).sum(-1)
        if not bool((per_group == nm.prune).all()):
            raise ValueError(f"the base mask is not {nm}: every group must prune {nm.prune}")


def _grouped_order(scores: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Column indices of each row by ``group`` ascending, then ``scores`` ascending, ties by
    index (two stable sorts). scores, group: (out, in)."""
    by_score = torch.argsort(scores, dim=1, stable=True)
    return by_score.gather(1, torch.argsort(group.gather(1, by_score), dim=1, stable=True))


def dsnot_refine(
    weight: torch.Tensor,
    mask: torch.Tensor,
    sums: torch.Tensor,
    sqsums: torch.Tensor,
    num_tokens: float,
    *,
    max_cycles: int = DEFAULT_MAX_CYCLES,
    update_threshold: float = DEFAULT_UPDATE_THRESHOLD,
    pow_of_var_regrowing: float = DEFAULT_POW_OF_VAR_REGROWING,
    same_sign: bool | None = None,
    tokens_per_sample: float = DEFAULT_TOKENS_PER_SAMPLE,
    nm: NMStructure | None = None,
    base_scores: torch.Tensor | None = None,
) -> torch.Tensor:
    """The refined prune mask (True = prune; a new tensor) of ``weight`` (out, in) from its base
    ``mask``. Each row prunes exactly as many weights as in ``mask``; with ``nm`` the base mask
    must be N:M and so is the result. ``max_cycles=0`` returns the base mask."""
    _check(weight, mask, sums, sqsums, max_cycles, update_threshold, tokens_per_sample, nm,
           base_scores)  # fmt: skip
    mask = mask.clone()
    rows, cols = weight.shape
    if max_cycles == 0 or rows == 0 or cols == 0:
        return mask
    if same_sign is None:
        same_sign = nm is not None
    mean, var = input_moments(sums, sqsums, num_tokens)
    w = weight.float()
    d = w * (mean * tokens_per_sample).reshape(1, -1)  # (out, in): the authors' W * sum_metric_row
    base = mask.clone()
    error = d.masked_fill(~base, 0).sum(1)  # (out,)
    initial_sign = error.sign()

    # Regrow candidates: pruned weights with d != 0, by d / var^p; negatives lead, positives trail.
    key = d / var.pow(pow_of_var_regrowing).reshape(1, -1) if pow_of_var_regrowing else d
    key = key.masked_fill(~base | (d == 0), 0)  # (out, in)
    regrow_order = torch.argsort(key, dim=1, stable=True)  # (out, in)
    grow_neg_end = (key < 0).sum(1)  # (out,): negatives fill [0, grow_neg_end)
    grow_pos_start = cols - (key > 0).sum(1)  # positives fill [grow_pos_start, cols)
    del key
    grow_neg = torch.zeros(rows, dtype=torch.long, device=w.device)  # walks up
    grow_pos = torch.full((rows,), cols - 1, dtype=torch.long, device=w.device)  # walks down

    if nm is None:
        # Prune candidates: kept weights with d < 0 then d > 0, each by Wanda score ascending.
        kind = torch.full_like(base, 2, dtype=torch.int8)
        kind[~base & (d < 0)] = 0
        kind[~base & (d > 0)] = 1
        wanda = w.abs() * sqsums.float().sqrt().reshape(1, -1)
        prune_order = _grouped_order(wanda, kind)  # (out, in)
        prune_neg_end = (kind == 0).sum(1)
        prune_pos_end = prune_neg_end + (kind == 1).sum(1)
        del kind, wanda
        prune_neg = torch.zeros(rows, dtype=torch.long, device=w.device)
        prune_pos = prune_neg_end.clone()
    else:
        group_scores = (
            w.abs() * sqsums.float().sqrt().reshape(1, -1)
            if base_scores is None
            else base_scores.float()
        )  # (out, in)
        offsets = torch.arange(nm.group, device=w.device)

    index = torch.arange(rows, device=w.device)
    active = torch.ones(rows, dtype=torch.bool, device=w.device)
    for _ in range(max_cycles):
        if not bool(active.any()):
            break
        high = error > 0  # regrow a positive d
        slot = torch.where(high, grow_pos, grow_neg)
        grow_ok = torch.where(high, grow_pos >= grow_pos_start, grow_neg < grow_neg_end)
        grow_idx = regrow_order.gather(1, slot.clamp(0, cols - 1)[:, None]).squeeze(1)
        if nm is None:
            low = error < 0  # prune a positive d
            slot = torch.where(low, prune_pos, prune_neg)
            prune_ok = torch.where(low, prune_pos < prune_pos_end, prune_neg < prune_neg_end)
            prune_idx = prune_order.gather(1, slot.clamp(0, cols - 1)[:, None]).squeeze(1)
        else:
            start = grow_idx - grow_idx % nm.group
            block = start[:, None] + offsets  # (out, M): the regrow candidate's group
            # Untouched kept weights: kept now and in the base mask's kept set.
            eligible = ~(mask | base).gather(1, block)
            scores = group_scores.gather(1, block).masked_fill(~eligible, float("inf"))
            prune_idx = start + scores.argmin(1)
            prune_ok = eligible.any(1)
        after = error + d[index, prune_idx] - d[index, grow_idx]
        update = active & grow_ok & prune_ok & (error.abs() > update_threshold)
        if same_sign:
            update &= after.sign() == initial_sign
        mask[index[update], prune_idx[update]] = True
        mask[index[update], grow_idx[update]] = False
        error = torch.where(update, after, error)
        grow_pos -= (update & high).long()
        grow_neg += (update & ~high).long()
        if nm is None:
            prune_pos += (update & low).long()
            prune_neg += (update & ~low).long()
        active = update
    return mask
