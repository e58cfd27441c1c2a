"""Tokenise documents and cut them into fixed-length windows, never padding."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import numpy as np

_TOKENIZE_BATCH = 64  # documents per tokenizer call (fast tokenizers batch in Rust)


def require_eos(tokenizer: Any) -> int:
    """The tokenizer's EOS id, which separates packed documents; a clear error when it has none."""
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError(
            f"tokenizer {type(tokenizer).__name__} has no EOS token (eos_token_id is None); "
            "calibration windows separate documents with EOS, so set tokenizer.eos_token"
        )
    return int(eos)


def tokenize_documents(tokenizer: Any, documents: Iterable[str]) -> Iterator[list[int]]:
    """Token ids of each document, without special tokens, tokenised in batches."""
    documents = iter(documents)
    while batch := list(islice(documents, _TOKENIZE_BATCH)):
        yield from tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]


def pack_windows(
    token_docs: Iterable[Sequence[int]],
    seqlen: int,
    separator: int | None,
    limit: int | None = None,
) -> np.ndarray:
    """Concatenate documents (each followed by ``separator`` unless it is None) and cut the stream
    into consecutive windows of exactly ``seqlen`` tokens, stopping after ``limit`` windows.

    Returns an int64 array of shape ``(n_windows, seqlen)``; a trailing partial window is dropped.
    """
    if seqlen < 1:
        raise ValueError(f"seqlen must be >= 1, got {seqlen}")
    tail: Sequence[int] = [] if separator is None else [separator]
    windows: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    pending_len = 0
    for doc in token_docs:
        if limit is not None and len(windows) >= limit:
            break
        piece = np.asarray([*doc, *tail], dtype=np.int64)
        pending.append(piece)
        pending_len += len(piece)
        if pending_len < seqlen:
            continue
        stream = np.concatenate(pending)
        n_full = len(stream) // seqlen
        windows.extend(stream[: n_full * seqlen].reshape(n_full, seqlen))
        rest = stream[n_full * seqlen :]
        pending, pending_len = [rest], len(rest)
    if limit is not None:
        windows = windows[:limit]
    if not windows:
        return np.empty((0, seqlen), dtype=np.int64)
    return np.stack(windows)
