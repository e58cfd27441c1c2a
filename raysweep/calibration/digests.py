"""Content digests of local calibration files (stdlib only: planning imports it without torch)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .sources import CalibrationSource

_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(name: str) -> str | None:
    """SHA-256 of a local file's content (None when it does not exist here), computed once per
    (path, size, mtime_ns) in a process.

    Content, not stamps, is a local file's identity: a copy or a checkout on another node has
    other mtimes but the same windows, and the trial id composed from it must agree between the
    driver and every worker. The stamps only say when to hash again; hashing reads the file once
    (about 1 GB/s), a fraction of tokenising it for its windows."""
    path = Path(name).expanduser()
    try:
        stat = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    stamp = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if stamp not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[stamp] = digest.hexdigest()
    return _DIGESTS[stamp]


def local_file_digests(source: CalibrationSource) -> dict[str, str]:
    """``{path: content digest}`` of the source's files that exist on this machine."""
    return {name: digest for name in source.data_files if (digest := file_digest(name))}
