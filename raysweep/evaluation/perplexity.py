"""Held-out perplexity: the language-modelling loss on text the pruner never saw.

Follows the convention of the pruning literature (SparseGPT, Wanda): documents are joined with
blank lines, tokenized once and cut into non-overlapping windows of ``seqlen`` tokens; perplexity is
exp of the mean next-token loss over all windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def heldout_texts(corpus: str) -> list[str]:
    """Documents of a held-out corpus: ``"wikitext2"`` (test split), ``"file:<path>"`` or one a
    plug-in world registers (:mod:`raysweep.worlds`; the toy world's ``"toy"``)."""
    if corpus.startswith("file:"):
        return [Path(corpus[len("file:") :]).expanduser().read_text()]
    if corpus == "wikitext2":
        import datasets

        rows = datasets.load_dataset("Salesforce/wikitext", "wikitext-2-raw-v1", split="test")
        return list(rows["text"])
    from raysweep.worlds import registry

    build = registry().corpus(corpus)
    if build is not None:
        return build()
    known = ", ".join(repr(n) for n in ("wikitext2", *registry().corpus_names()))
    failed = f" ({registry().error})" if registry().error else ""
    raise ValueError(f"unknown perplexity corpus {corpus!r}; use {known} or 'file:<path>'{failed}")


def heldout_perplexity(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    seqlen: int,
    batch_size: int = 1,
    max_windows: int | None = None,
) -> float:
    """exp(mean next-token NLL) of ``model`` over ``seqlen``-token windows of the joined ``texts``."""
    import torch

    from raysweep.calibration.metrics import next_token_nll

    ids = tokenizer("\n\n".join(texts), return_tensors="pt").input_ids[0]
    n_windows = ids.numel() // seqlen
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    if n_windows == 0:
        raise ValueError(
            f"held-out text has {ids.numel()} tokens, fewer than one window of {seqlen}"
        )
    windows = ids[: n_windows * seqlen].view(n_windows, seqlen)  # (n_windows, seqlen)
    # Chunked through the LM head: no (batch, seqlen, vocab) logits tensor.
    with torch.inference_mode():
        total_nll, _ = next_token_nll(model, windows, batch_size)
    return math.exp(total_nll / (n_windows * (seqlen - 1)))
