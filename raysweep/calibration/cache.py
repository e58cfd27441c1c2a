"""Disk cache of packed windows: content keys, atomic writes, one builder per key on a node."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..atomic import atomic_path, file_lock
from .digests import file_digest
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


def _file_digests(files: tuple[str, ...]) -> list[list[Any]]:
    # Editing a local file in place invalidates everything built from it.
    return [[name, file_digest(name)] for name in files]


def source_fingerprint(source: CalibrationSource) -> dict[str, Any]:
    """The parts of a source that decide its documents (not its name, dimension or description)."""
    return {
        "kind": source.kind,
        "dataset": source.dataset,
        "config": list(source.configs),
        "split": source.split,
        "revision": source.revision,
        "data_files": _file_digests(source.data_files),
        "data_dir": source.data_dir,
        "streaming": source.streaming,
        "text_field": source.text_field if source.format is None else None,
        "format": _callable_fingerprint(source.format),
        "contiguous": source.contiguous,
        "builder_options": [list(kv) for kv in source.builder_options],
        "texts": _callable_fingerprint(source.texts),
    }


def calibration_identity(
    tokenizer: Any, source: CalibrationSource, seqlen: int, seed: int, count: int
) -> dict[str, Any]:
    """What one source's calibration windows depend on: the source (its documents, local files
    by content), the tokenizer, the packing version, seed, seqlen and count. The window cache
    and the one-shot statistics store both key on it, so neither outlives a changed file or
    tokenizer."""
    return {
        "packing_version": PACKING_VERSION,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "eos": getattr(tokenizer, "eos_token_id", None),
        # The seed is derived from the source name, so the name is part of the key.
        "name": source.name,
        "source": source_fingerprint(source),
        "seqlen": seqlen,
        "seed": seed,
        "count": count,
    }


def cache_key(tokenizer: Any, source: CalibrationSource, seqlen: int, seed: int, count: int) -> str:
    """Hex key of the windows ``source_windows`` returns for these arguments."""
    payload = {
        **calibration_identity(tokenizer, source, seqlen, seed, count),
        "raysweep": __version__,
    }
    return _sha256(json.dumps(payload, sort_keys=True))


# Bump when generation (sampling, scoring, selection) changes in a way the code hashes miss.
GENERATION_VERSION = 1

# Parameters whose values are hashed into a model's fingerprint, and elements sampled from each.
_FINGERPRINT_TENSORS = 8
_FINGERPRINT_ELEMENTS = 4096


def weights_fingerprint(model: Any) -> dict[str, Any]:
    """What identifies a model's weights: its config's ``name_or_path`` and revision (commit hash
    when loaded from the Hub), the names, shapes and dtypes of all parameters, and a hash of up to
    4096 evenly spaced values of each of 8 parameters spread over the model (first and last
    included). Cheap on any device; computed on every call because weights change in place."""
    config = getattr(model, "config", None)
    params = list(model.named_parameters())
    digest = hashlib.sha256()
    for name, p in params:
        digest.update(f"{name}:{tuple(p.shape)}:{p.dtype};".encode())
    picks = sorted({round(i * (len(params) - 1) / max(_FINGERPRINT_TENSORS - 1, 1))
                    for i in range(_FINGERPRINT_TENSORS)}) if params else []  # fmt: skip
    with torch.no_grad():
        for i in picks:
            flat = params[i][1].detach().reshape(-1)
            idx = torch.linspace(0, flat.numel() - 1, min(_FINGERPRINT_ELEMENTS, flat.numel()))
            values = flat[idx.round().long().to(flat.device)].float().cpu()
            digest.update(values.numpy().tobytes())
    return {
        "class": type(model).__qualname__,
        "name_or_path": str(getattr(config, "name_or_path", "") or ""),
        "revision": getattr(config, "_commit_hash", None),
        "weights": digest.hexdigest(),
    }


def generator_fingerprint(generator: Any, model: Any) -> Any:
    """A generator's own key part: its ``cache_fingerprint(model)`` (knobs and code) when it has
    one, else the name and module hash of the callable."""
    method = getattr(generator, "cache_fingerprint", None)
    if callable(method):
        return method(model)
    return _callable_fingerprint(generator)


def generated_cache_key(
    model: Any, tokenizer: Any, source: CalibrationSource, seqlen: int, seed: int, count: int
) -> str:
    """Hex key of the windows a generated source gives for this model and these arguments."""
    payload = {
        "generation_version": GENERATION_VERSION,
        "raysweep": __version__,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "model": weights_fingerprint(model),
        "generator": generator_fingerprint(source.generator, model),
        "seqlen": seqlen,
        "seed": seed,
        "count": count,
    }
    return _sha256(json.dumps(payload, sort_keys=True, default=str))


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
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save({"input_ids": windows.contiguous(), "meta": json.dumps(meta)}, handle)


@contextlib.contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for ``path`` so concurrent trials on a node build it once."""
    with file_lock(path.with_suffix(".lock")):
        yield
