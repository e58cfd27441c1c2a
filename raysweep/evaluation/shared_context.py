"""Log-likelihoods of many continuations of one context from a single forward pass.

A multiple-choice item asks for ``log p(continuation | context)`` of every choice, and all choices
share the context. Instead of one row ``context + continuation`` per choice, a row here holds the
context once followed by every continuation but its last token::

    tokens     c0 c1 c2 c3 | a0 a1 | b0 | d0 d1 d2
    positions   0  1  2  3 |  4  5 |  4 |  4  5  6
    segment     0  0  0  0 |  1  1 |  2 |  3  3  3

A 4-D additive attention mask lets each segment attend to the context and causally to itself, and
position ids restart at the context length in every segment, so each continuation sees exactly
the sequence it would see alone. The logits at the last context token predict every
continuation's first token; the logits inside a segment predict its later tokens.

The result for each request is lm-eval's ``(sum of continuation log-probs, is_greedy)``, as
``HFLM._loglikelihood_tokens`` computes it from a separate row per request.

This module is plain PyTorch (no lm-eval): the adapter in :mod:`raysweep.evaluation.harness`
tokenizes, decides which requests may be packed and calls :func:`shared_context_loglikelihoods`.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

Request = tuple[Sequence[int], Sequence[int]]

# Attention implementations that apply a custom 4-D float mask as given (flash attention cannot).
_MASKED_ATTENTION = ("eager", "sdpa")


def _accepts(model: Any, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def supports_packing(model: Any) -> bool:
    """Whether ``model`` takes a 4-D float attention mask and explicit position ids.

    A model can still disagree numerically (positions it ignores, virtual prefix tokens):
    :func:`packing_matches_plain` checks that on real requests.
    """
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        return False
    if getattr(config, "_attn_implementation", None) not in _MASKED_ATTENTION:
        return False
    return _accepts(model, "attention_mask") and _accepts(model, "position_ids")


def _model_dtype(model: Any) -> torch.dtype:
    dtype = getattr(model, "dtype", None)
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    return next(p.dtype for p in model.parameters() if p.is_floating_point())


def _model_device(model: Any) -> torch.device:
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    return next(model.parameters()).device


def _rows(
    requests: Sequence[Request], max_row_tokens: int
) -> list[tuple[tuple[int, ...], list[int]]]:
    """(context, request indices) per row: requests grouped by identical context token ids.

    A group whose packed row would exceed ``max_row_tokens`` is split over several rows, each
    with the context again, so no row is longer than the longest single request it replaces.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (context, _) in enumerate(requests):
        groups.setdefault(tuple(context), []).append(i)
    rows = []
    for context, members in groups.items():
        current: list[int] = []
        extra = 0
        for i in members:
            add = len(requests[i][1]) - 1
            if current and len(context) + extra + add > max_row_tokens:
                rows.append((context, current))
                current, extra = [], 0
            current.append(i)
            extra += add
        rows.append((context, current))
    return rows


def _row_length(requests: Sequence[Request], row: tuple[tuple[int, ...], list[int]]) -> int:
    context, members = row
    return len(context) + sum(len(requests[i][1]) - 1 for i in members)


def _score_batch(
    model: Any,
    requests: Sequence[Request],
    batch: list[tuple[tuple[int, ...], list[int]]],
    out: list[tuple[float, bool] | None],
    softmax_dtype: torch.dtype | None,
) -> None:
    width = max(_row_length(requests, row) for row in batch)
    ids, positions, segments = [], [], []
    score_row: list[int] = []
    score_col: list[int] = []
    targets: list[int] = []
    spans: list[tuple[int, int]] = []  # (request index, number of scored tokens)
    for b, (context, members) in enumerate(batch):
        n_ctx = len(context)
        row_ids, row_pos, row_seg = list(context), list(range(n_ctx)), [0] * n_ctx
        for s, i in enumerate(members, start=1):
            continuation = list(requests[i][1])
            start = len(row_ids)
            body = continuation[:-1]
            row_ids += body
            row_pos += range(n_ctx, n_ctx + len(body))
            row_seg += [s] * len(body)
            score_row += [b] * len(continuation)
            score_col += [n_ctx - 1, *range(start, start + len(body))]
            targets += continuation
            spans.append((i, len(continuation)))
        pad = width - len(row_ids)
        # Padding ids are arbitrary: no real token attends to them (they come last).
        ids.append(row_ids + [0] * pad)
        positions.append(row_pos + [0] * pad)
        segments.append(row_seg + [-1] * pad)

    device = _model_device(model)
    dtype = _model_dtype(model)
    input_ids = torch.tensor(ids, dtype=torch.long, device=device)  # (batch, width)
    position_ids = torch.tensor(positions, dtype=torch.long, device=device)  # (batch, width)
    seg = torch.tensor(segments, dtype=torch.long, device=device)  # (batch, width)
    index = torch.arange(width, device=device)
    causal = index[None, :] <= index[:, None]  # (query, key)
    # (batch, query, key): the key is context (or padding, for padding queries) or in the
    # query's own segment.
    visible = (seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None])
    allowed = (causal[None] & visible)[:, None]  # (batch, 1, query, key)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)

    kwargs: dict[str, Any] = {}
    if _accepts(model, "logits_to_keep"):
        # Project only the scored positions (their union over the batch) onto the vocabulary.
        keep = sorted(set(score_col))
        where = {col: k for k, col in enumerate(keep)}
        score_col = [where[col] for col in score_col]
        kwargs["logits_to_keep"] = torch.tensor(keep, dtype=torch.long, device=device)
    with torch.no_grad():
        logits = model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            use_cache=False,
            **kwargs,
        ).logits  # (batch, width or kept positions, vocab)
        rows_t = torch.tensor(score_row, device=device)
        cols_t = torch.tensor(score_col, device=device)
        target_t = torch.tensor(targets, device=device)
        logprobs = F.log_softmax(logits[rows_t, cols_t], dim=-1, dtype=softmax_dtype)  # (n, vocab)
        token_lp = logprobs.gather(1, target_t[:, None]).squeeze(1)  # (n,)
        greedy = logprobs.argmax(dim=-1) == target_t  # (n,)
    lengths = [n for _, n in spans]
    for (i, _), lp, hit in zip(spans, token_lp.split(lengths), greedy.split(lengths), strict=True):
        out[i] = (float(lp.sum()), bool(hit.all()))


def shared_context_loglikelihoods(
    model: Any,
    requests: Sequence[Request],
    *,
    batch_size: int,
    max_row_tokens: int,
    softmax_dtype: torch.dtype | None = None,
) -> list[tuple[float, bool]]:
    """``(log p(continuation | context), is_greedy)`` per ``(context ids, continuation ids)``.

    Requests with identical context ids share one row; a forward pass takes ``batch_size`` rows.
    Every context and continuation must be non-empty and ``len(context) + len(continuation)``
    at most ``max_row_tokens + 1`` (lm-eval would not truncate them). Results come back in the
    order of ``requests``.
    """
    for context, continuation in requests:
        if not context or not continuation:
            raise ValueError("contexts and continuations must be non-empty")
        if len(context) + len(continuation) > max_row_tokens + 1:
            raise ValueError(
                f"request of {len(context)} + {len(continuation)} tokens exceeds "
                f"max_row_tokens + 1 = {max_row_tokens + 1}"
            )
    rows = sorted(_rows(requests, max_row_tokens), key=lambda r: -_row_length(requests, r))
    out: list[tuple[float, bool] | None] = [None] * len(requests)
    for start in range(0, len(rows), max(1, batch_size)):
        _score_batch(model, requests, rows[start : start + batch_size], out, softmax_dtype)
    done = [r for r in out if r is not None]
    assert len(done) == len(requests), "every request is in exactly one row"
    return done


def plain_loglikelihoods(
    model: Any, requests: Sequence[Request], softmax_dtype: torch.dtype | None = None
) -> list[tuple[float, bool]]:
    """The same quantities from one unmasked row ``(context + continuation)[:-1]`` per request,
    as lm-eval computes them."""
    device = _model_device(model)
    out = []
    with torch.no_grad():
        for context, continuation in requests:
            ids = torch.tensor([[*context, *continuation][:-1]], device=device)  # (1, seq)
            logits = model(ids).logits[0, -len(continuation) :]  # (cont, vocab)
            logprobs = F.log_softmax(logits, dim=-1, dtype=softmax_dtype)
            target = torch.tensor(list(continuation), device=device)
            token_lp = logprobs.gather(1, target[:, None]).squeeze(1)
            out.append((float(token_lp.sum()), bool((logprobs.argmax(-1) == target).all())))
    return out


def probe_requests(requests: Sequence[Request], max_requests: int = 4) -> list[Request]:
    """A few requests of one context, chosen to exercise the mask: the group with the most
    packed continuation tokens, its longest continuations first."""
    groups: dict[tuple[int, ...], list[Request]] = {}
    for request in requests:
        groups.setdefault(tuple(request[0]), []).append(request)
    if not groups:
        return []
    best = max(groups.values(), key=lambda g: sum(len(c) - 1 for _, c in g))
    return sorted(best, key=lambda r: -len(r[1]))[:max_requests]


def packing_matches_plain(
    model: Any, requests: Sequence[Request], softmax_dtype: torch.dtype | None = None
) -> bool:
    """Whether packed and one-row-per-request scoring agree on ``requests`` (one context).

    Tolerances allow for a different summation order: 1e-3 in float32 and wider types, 5e-2
    (per request) in half precision.
    """
    if not requests:
        return True
    atol = 1e-3 if torch.finfo(_model_dtype(model)).bits >= 32 else 5e-2
    packed = shared_context_loglikelihoods(
        model,
        requests,
        batch_size=1,
        max_row_tokens=sum(len(c) + len(k) for c, k in requests),
        softmax_dtype=softmax_dtype,
    )
    plain = plain_loglikelihoods(model, requests, softmax_dtype)
    return all(abs(a[0] - b[0]) <= atol for a, b in zip(packed, plain, strict=True))


__all__ = [
    "packing_matches_plain",
    "plain_loglikelihoods",
    "probe_requests",
    "shared_context_loglikelihoods",
    "supports_packing",
]
