"""Where raysweep keeps caches shared by trials on one node."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*, create: bool = True) -> Path:
    """Node-local cache root: ``$RAYSWEEP_CACHE_DIR`` or ``~/.cache/raysweep``.

    Created unless ``create`` is false (a path planned for later, e.g. by ``--validate``, which
    writes nothing).
    """
    root = Path(os.environ.get("RAYSWEEP_CACHE_DIR") or Path.home() / ".cache" / "raysweep")
    if create:
        root.mkdir(parents=True, exist_ok=True)
    return root
