"""Peak memory of a call: host RSS sampled by a background thread, device from CUDA's counters."""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE")


def current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except OSError:
        # No procfs: the lifetime peak is the best available figure.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class PeakMemory:
    host: int = 0
    device: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"host": self.host, "device": self.device}


@contextmanager
def track_peak_memory(device: torch.device, interval_s: float = 0.01) -> Iterator[PeakMemory]:
    """Peak process RSS (bytes) and peak CUDA allocation on ``device`` during the block.

    RSS is sampled rather than read from the kernel's high-water mark, which is per process and
    cannot be reset without disturbing other measurements in the same process.
    """
    peak = PeakMemory(host=current_rss_bytes())
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval_s):
            peak.host = max(peak.host, current_rss_bytes())

    thread = threading.Thread(target=sample, name="raysweep-rss-sampler", daemon=True)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()
        peak.host = max(peak.host, current_rss_bytes())
        if cuda:
            torch.cuda.synchronize(device)
            peak.device = int(torch.cuda.max_memory_allocated(device))
