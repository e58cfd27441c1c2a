"""The progress of a long draw: a tqdm bar over windows, and one log line when it ends."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

# Show a progress bar when a draw samples at least this many tokens.
PROGRESS_MIN_TOKENS = 65_536


class Progress:
    """A tqdm bar over windows (long runs only) plus one log line at the end."""

    def __init__(self, label: str, windows: int, tokens: int) -> None:
        self.label, self.windows, self.tokens = label, windows, tokens
        self.start = time.perf_counter()
        self.bar = None
        if tokens >= PROGRESS_MIN_TOKENS:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=windows, desc=label, unit="window", leave=False)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elapsed = time.perf_counter() - self.start
        level = logging.INFO if self.tokens >= PROGRESS_MIN_TOKENS else logging.DEBUG
        log.log(level, "%s: %d windows in %.1f s", self.label, self.windows, elapsed)
