"""Every file the analysis writes is written atomically: into a temporary file beside the
target, flushed to disk, then renamed over it. A full disk or a kill mid-write leaves the
previous file (or none), never a truncated one; the ``OSError`` reaches the caller."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomic(path: Path, write: Callable[[IO[Any]], Any], *, binary: bool = False) -> Path:
    """Call ``write(handle)`` on a temporary file in ``path``'s folder, then rename it to
    ``path``. The temporary file is removed when anything fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        mode, encoding = ("wb", None) if binary else ("w", "utf-8")
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_atomic(path, lambda handle: handle.write(text))


def print_and_write(text: str, write: Callable[[Path], list[Path]], out: Path) -> int:
    """A command's last step: print its Markdown, write its files into ``out`` and name them.
    0, or 2 with one line when ``out`` cannot be written."""
    print(text, end="")
    try:
        files = write(out)
    except OSError as exc:
        print(f"error: cannot write to {out}: {exc}", file=sys.stderr)
        return 2
    print(f"written: {', '.join(str(f) for f in files)}")
    return 0
