"""Where raysweep keeps caches shared by trials on one node."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Node-local cache root: ``$RAYSWEEP_CACHE_DIR`` or ``~/.cache/raysweep`` (created on demand)."""
    root = Path(os.environ.get("RAYSWEEP_CACHE_DIR") or Path.home() / ".cache" / "raysweep")
    root.mkdir(parents=True, exist_ok=True)
    return root
