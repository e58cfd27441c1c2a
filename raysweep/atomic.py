"""Crash-safe file and directory writes, and node-wide build locks: the one home of both.

Every file raysweep writes for others to read (caches, dense baselines, task files, summaries,
saved models) goes through :func:`atomic_path` (or its text / JSON helpers) or
:func:`replace_dir`: a reader sees the old version or the complete new one, never a part.
``records.jsonl`` is the exception by design: it is appended line by line
(:func:`raysweep.records.append_record`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


class WriteError(OSError):
    """A file the run needs could not be written (a full disk, a read-only folder): its message
    is one line naming the file and the cause; ``errno`` is the cause's."""

    def __init__(self, path: str | Path, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"

    def __reduce__(self) -> tuple[Any, ...]:  # Tune pickles the callback that keeps one
        return type(self), (self.filename, OSError(self.errno, self.strerror))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` when the block succeeds.

    The temporary file lives in the same folder (so ``os.replace`` is atomic) and is removed if
    the block raises. Concurrent writers of the same bytes are safe: the last replace wins.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        fsync(Path(tmp))  # the bytes are on disk before the name points at them
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """``text`` written atomically to ``path``; a failure is a :class:`WriteError` naming it."""
    try:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(path, exc) from exc


def write_json_atomic(path: str | Path, data: Mapping[str, Any]) -> None:
    """``data`` as indented, key-sorted JSON, written atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True))


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_dir(new: str | Path, path: str | Path) -> None:
    """Rename the complete directory ``new`` to ``path`` (same file system); whatever was at
    ``path`` is moved aside first, then removed, so ``path`` is never a partial directory."""
    new, path = Path(new), Path(path)
    old: Path | None = None
    if path.exists() or path.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
        os.replace(path, old / path.name)
    os.replace(new, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def file_lock(lock_path: str | Path) -> Iterator[None]:
    """Exclusive advisory lock on ``lock_path`` (created if missing) for the ``with`` block.

    Concurrent trials on a node take it before building a shared cache entry, so the entry is
    built once; readers never need it, since entries are written atomically.
    """
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
