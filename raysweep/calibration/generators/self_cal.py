"""Self-Cal: windows the model writes from the start token alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .base import Sampling, check_sizes, special_ids
from .progress import Progress

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SelfCal(Sampling):
    """Self-Cal (Williams, Chrysostomou & Aletras, NAACL 2025): the model writes each window from the
    start token alone, with no external text. The paper's linear temperature schedule is available
    through ``temperature_initial`` / ``schedule_tokens`` (its exact values are not set by default)."""

    kind = "self_cal"

    def describe(self) -> str:
        return "Self-Cal: windows the model samples from the start token alone"

    def __call__(
        self, *, model: Any, tokenizer: Any, count: int, seqlen: int, seed: int
    ) -> torch.Tensor:
        from .decoding import sample_windows

        check_sizes(self.kind, count, seqlen, 1)
        start, banned = special_ids(model, tokenizer, self)
        prompts = [[start]] * count
        progress = Progress(self.kind, count, count * seqlen)
        try:
            return sample_windows(model, prompts, seqlen, self, seed, "self_cal", banned, progress)
        finally:
            progress.close()
