"""Crash-safe JSON writes and node-wide locks for the evaluation caches."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from raysweep.atomic import atomic_path, file_lock

__all__ = ["atomic_write_json", "file_lock"]


def atomic_write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` so that readers see either the old file or the complete new one."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
