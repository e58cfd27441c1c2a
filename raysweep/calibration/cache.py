"""Disk cache of packed windows: content keys, atomic writes, one builder per key on a node."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .sources import CalibrationSource

# Bump when packing or document order changes, so stale windows are never reused.
PACKING_VERSION = 1

_TOKENIZER_FINGERPRINTS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of everything that decides token ids: the full fast-tokenizer JSON (or the vocabulary),
    the class and the special tokens."""
    with contextlib.suppress(TypeError):
        if tokenizer in _TOKENIZER_FINGERPRINTS:
            return _TOKENIZER_FINGERPRINTS[tokenizer]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        body = backend.to_str()
    else:
        body = json.dumps(sorted(tokenizer.get_vocab().items()))
    specials = json.dumps(getattr(tokenizer, "special_tokens_map", {}), sort_keys=True, default=str)
    fingerprint = _sha256(f"{type(tokenizer).__qualname__}\n{specials}\n{body}")
    with contextlib.suppress(TypeError):
        _TOKENIZER_FINGERPRINTS[tokenizer] = fingerprint
    return fingerprint


def _callable_fingerprint(fn: Any) -> str | None:
    """Name plus a hash of the whole defining module's source, so editing a format function or a
    text generator (or the helpers beside it) invalidates the windows built with it."""
    if fn is None:
        return None
    name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
    try:
        module = inspect.getmodule(fn)
        code = inspect.getsource(module if module is not None else fn)
    except (OSError, TypeError):
        code = ""
    return f"{name}:{_sha256(code)[:16]}"


def _file_stamps(files: tuple[str, ...]) -> list[list[Any]]:
    # Local files are keyed by size and mtime too, so editing a file invalidates its windows.
    stamps = []
    for name in files:
        path = Path(name)
        if path.exists():
            stat = path.stat()
            stamps.append([name, stat.st_size, stat.st_mtime_ns])
        else:
            stamps.append([name])
    return stamps


def source_fingerprint(source: CalibrationSource) -> dict[str, Any]:
    """The parts of a source that decide its documents (not its name, dimension or description)."""
    return {
        "kind": source.kind,
        "dataset": source.dataset,
        "config": list(source.configs),
        "split": source.split,
        "revision": source.revision,
        "data_files": _file_stamps(source.data_files),
        "data_dir": source.data_dir,
        "streaming": source.streaming,
        "text_field": source.text_field if source.format is None else None,
        "format": _callable_fingerprint(source.format),
        "contiguous": source.contiguous,
        "builder_options": [list(kv) for kv in source.builder_options],
        "texts": _callable_fingerprint(source.texts),
    }


def cache_key(tokenizer: Any, source: CalibrationSource, seqlen: int, seed: int, count: int) -> str:
    """Hex key of the windows ``source_windows`` returns for these arguments."""
    payload = {
        "packing_version": PACKING_VERSION,
        "raysweep": __version__,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "eos": getattr(tokenizer, "eos_token_id", None),
        # The seed is derived from the source name, so the name is part of the key.
        "name": source.name,
        "source": source_fingerprint(source),
        "seqlen": seqlen,
        "seed": seed,
        "count": count,
    }
    return _sha256(json.dumps(payload, sort_keys=True))


def cache_path(root: Path, key: str) -> Path:
    return root / key[:2] / f"{key}.pt"


def load_windows(path: Path) -> torch.Tensor | None:
    """Cached windows, or None when absent or unreadable (then they are rebuilt)."""
    try:
        payload = torch.load(path, weights_only=True)
    except FileNotFoundError:
        return None
    except Exception:  # a corrupt entry is rebuilt, not fatal
        return None
    return payload["input_ids"]


def save_windows(path: Path, windows: torch.Tensor, meta: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({"input_ids": windows.contiguous(), "meta": json.dumps(meta)}, handle)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for ``path`` so concurrent trials on a node build it once.

    Where ``fcntl`` is missing the lock is a no-op; atomic writes still keep readers safe.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
