"""Ray processes a dead driver left behind, found and reaped by the next driver of its output.

A driver that starts its own local Ray writes ``<output>/ray_processes.json``: its own pid and
every process of that Ray (gcs server, raylet, dashboard and its agents), each with its start
time so that a reused pid is never mistaken for one of them. SIGKILL cannot be caught, so a
killed driver leaves them running (re-parented to init); the next driver that claims the same
output reads the file and, if the driver that wrote it is gone, stops what is still alive of
that list (SIGTERM, then SIGKILL after a grace period) and says so in one line.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import psutil

from raysweep.atomic import write_text_atomic

PROCESSES_FILE = "ray_processes.json"
_GRACE_S = 5.0


def _entry(process: psutil.Process) -> dict[str, object]:
    return {"pid": process.pid, "started": process.create_time(), "name": process.name()}


def _alive(entry: dict[str, object]) -> psutil.Process | None:
    """The process of ``entry`` if it still runs (same pid and start time)."""
    try:
        process = psutil.Process(int(entry["pid"]))  # type: ignore[call-overload]
        if abs(process.create_time() - float(entry["started"])) > 0.01:  # type: ignore[arg-type]
            return None  # the pid was reused
        return process if process.status() != psutil.STATUS_ZOMBIE else None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def record_ray_processes(out: Path) -> int:
    """Write this driver's Ray processes (its descendants now) to ``out``; how many."""
    me = psutil.Process(os.getpid())
    children = me.children(recursive=True)
    payload = {"driver": _entry(me), "processes": [_entry(p) for p in children]}
    write_text_atomic(Path(out) / PROCESSES_FILE, json.dumps(payload, indent=1) + "\n")
    return len(children)


def reap_orphans(out: Path) -> list[str]:
    """Stop the Ray processes a dead driver of ``out`` left; the names of those stopped."""
    path = Path(out) / PROCESSES_FILE
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if _alive(payload.get("driver", {"pid": -1, "started": 0})) is not None:
        return []  # its driver still runs (it holds the output's lock: never reached)
    left = [p for p in (_alive(e) for e in payload.get("processes", [])) if p is not None]
    names = []
    for process in left:
        try:
            names.append(f"{process.name()} (pid {process.pid})")
            process.terminate()
        except psutil.NoSuchProcess:
            continue
    _, still = psutil.wait_procs(left, timeout=_GRACE_S)
    for process in still:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    path.unlink(missing_ok=True)
    return names
