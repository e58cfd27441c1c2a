"""A fast in-process multiple-choice scorer with lm-eval's ``acc`` semantics.

Used by the training and trade-off scripts, where starting lm-eval per pruned variant would cost
more than the scoring itself. Context/continuation splitting follows lm-eval's ``_encode_pair``
(trailing context whitespace moves to the continuation; the continuation is the tail of the
jointly encoded string), and ``acc`` is the arg-max of summed continuation log-probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from raysweep.toyworld._common import McItem


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    return ctx, whole[len(ctx) :]


@torch.no_grad()
def choice_logprobs(
    model, tokenizer, items: Sequence[McItem], batch_size: int = 64, delimiter: str = " "
) -> list[list[float]]:
    """Summed log-probability of every choice of every item: ``[item][choice]``."""
    requests: list[tuple[int, int, list[int], int]] = []  # (item, choice, tokens, n_continuation)
    for i, item in enumerate(items):
        for j, choice in enumerate(item.choices):
            ctx, cont = encode_pair(tokenizer, item.context, delimiter + choice)
            requests.append((i, j, ctx + cont, len(cont)))
    order = sorted(range(len(requests)), key=lambda r: -len(requests[r][2]))
    scores = [[0.0] * len(item.choices) for item in items]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        chunk = [requests[r] for r in order[start : start + batch_size]]
        width = max(len(tokens) for _, _, tokens, _ in chunk) - 1
        # Right padding only: causal attention keeps padded tails from touching real positions.
        inputs = torch.full((len(chunk), width), pad, dtype=torch.long)
        for row, (_, _, tokens, _) in enumerate(chunk):
            inputs[row, : len(tokens) - 1] = torch.tensor(tokens[:-1])
        logprobs = torch.log_softmax(
            model(input_ids=inputs.to(device)).logits.float(), dim=-1
        ).cpu()
        for row, (i, j, tokens, n_cont) in enumerate(chunk):
            positions = torch.arange(len(tokens) - 1 - n_cont, len(tokens) - 1)
            targets = torch.tensor(tokens[-n_cont:])
            scores[i][j] = float(logprobs[row, positions, targets].sum())
    return scores


def accuracy(model, tokenizer, items: Sequence[McItem], batch_size: int = 64) -> float:
    """lm-eval ``acc``: fraction of items whose gold choice has the highest log-likelihood."""
    scores = choice_logprobs(model, tokenizer, items, batch_size)
    hits = [
        max(range(len(s)), key=s.__getitem__) == item.label
        for s, item in zip(scores, items, strict=True)
    ]
    return sum(hits) / len(hits)
