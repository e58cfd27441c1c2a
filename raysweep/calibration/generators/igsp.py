"""IGSP: model text from short generic cues per capability dimension, selected for low 4-gram
aggregation with perplexity balanced across the dimensions."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..igsp_select import IGSPSelection, select_igsp
from ..mixing import allocate_counts
from ..sources import DIMENSIONS
from .base import BuiltWindows, Sampling, check_sizes, special_ids

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Generic format cues per capability dimension ("" = the start token alone). A few tokens each,
# no corpus text. Cues end without a trailing space: BPE vocabularies attach the space to the next
# word, so a dangling space token would be an unnatural prompt.
DEFAULT_CUES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("general", ("", "The", "In")),
    ("commonsense", ("Question: Why", "What happens if", "Q:")),
    ("code", ("def", "import", "print(")),
    ("math", ("Problem:", "Question: How many", "Calculate")),
)


@dataclass(frozen=True)
class IGSPResult:
    """An IGSP draw: the candidate pool with its labels and perplexities, and the selection."""

    windows: torch.Tensor  # (count, seqlen) = pool[sorted(selection.indices)]
    pool: torch.Tensor  # (pool_size, seqlen)
    labels: tuple[str, ...]  # cue dimension of each pool row
    cues: tuple[str, ...]  # cue text of each pool row ("" = start token alone)
    perplexities: torch.Tensor  # (pool_size,) float64
    selection: IGSPSelection


def _cue_table(cues: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    items = cues.items() if isinstance(cues, Mapping) else cues
    table = []
    for dimension, texts in items:
        if dimension not in DIMENSIONS:
            raise ValueError(
                f"igsp: cue dimension must be one of {', '.join(DIMENSIONS)}, got {dimension!r}"
            )
        texts = (texts,) if isinstance(texts, str) else tuple(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"igsp: cues of {dimension!r} must be a non-empty list of strings")
        table.append((str(dimension), texts))
    if not table:
        raise ValueError("igsp: give cues for at least one dimension")
    return tuple(table)


@dataclass(frozen=True)
class IGSP(BuiltWindows, Sampling):
    """IGSP, information-guided self-calibration: raysweep's reading of the study's protocol (the
    protocol is described in prose only; these steps and defaults are raysweep's choices).

    1. Generate a candidate pool of ``ceil(pool_factor * quota)`` windows per cue dimension (quota =
       the dimension's equal share of ``count``), spread evenly over that dimension's ``cues``:
       short generic format cues (``""`` = the start token alone), never corpus text.
    2. Score every candidate's perplexity under the dense model and its 4-gram profile.
    3. Select ``count`` windows greedily to minimise the set's ``ngram4_aggregation``, with equal
       counts per dimension and each dimension's mean perplexity within ``[median / (1 +
       ppl_tolerance), median * (1 + ppl_tolerance)]`` of the pool's median
       (``raysweep.calibration.igsp_select.select_igsp``). When some dimension cannot reach
       that band (its cues lead to text the model finds much easier or harder than the rest),
       ``widen_band`` (default) raises the tolerance to the smallest feasible one, with a logged
       warning; ``widen_band: false`` makes it an error instead.
    """

    top_p: float = 0.95
    pool_factor: float = 4.0
    ppl_tolerance: float = 0.25
    widen_band: bool = True
    cues: tuple[tuple[str, tuple[str, ...]], ...] = field(default=DEFAULT_CUES)

    kind = "igsp"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.pool_factor, int | float) and self.pool_factor >= 1):
            raise ValueError(f"igsp: pool_factor must be a number >= 1, got {self.pool_factor!r}")
        if not (isinstance(self.ppl_tolerance, int | float) and self.ppl_tolerance >= 0):
            raise ValueError(
                f"igsp: ppl_tolerance must be a number >= 0, got {self.ppl_tolerance!r}"
            )
        if not isinstance(self.widen_band, bool):
            raise ValueError(f"igsp: widen_band must be true or false, got {self.widen_band!r}")
        object.__setattr__(self, "cues", _cue_table(self.cues))

    def describe(self) -> str:
        return (
            "IGSP (raysweep's reading): model text from generic cues, selected for low 4-gram "
            "aggregation with perplexity balanced across dimensions"
        )

    def plan(self, count: int) -> list[tuple[str, str, int]]:
        """``(dimension, cue, n_candidates)`` rows of the pool, dimensions in name order."""
        table = dict(self.cues)
        quotas = allocate_counts(dict.fromkeys(table, 1.0), count)
        rows = []
        for dimension in sorted(table):
            size = math.ceil(round(self.pool_factor * quotas[dimension], 9))
            texts = table[dimension]
            per_cue = allocate_counts({str(i): 1.0 for i in range(len(texts))}, size)
            rows += [(dimension, texts[i], per_cue[str(i)]) for i in range(len(texts))]
        return rows

    def build(
        self, *, model: Any, tokenizer: Any, count: int, seqlen: int, seed: int
    ) -> IGSPResult:
        """Generate and score the candidate pool, then select ``count`` windows."""
        from .decoding import draw_and_score

        check_sizes(self.kind, count, seqlen, 1)
        start, banned = special_ids(model, tokenizer, self)
        plan = [row for row in self.plan(count) if row[2] > 0]
        encoded = {
            cue: tokenizer(cue, add_special_tokens=False)["input_ids"] if cue else []
            for _, cue, _ in plan
        }
        check_sizes(self.kind, count, seqlen, 1 + max(len(ids) for ids in encoded.values()))
        prompts, labels, cues = [], [], []
        for dimension, cue, n in plan:
            prompts += [[start, *encoded[cue]]] * n
            labels += [dimension] * n
            cues += [cue] * n
        pool, ppl = draw_and_score(model, prompts, seqlen, self, seed, banned)
        selection = select_igsp(
            pool, ppl.tolist(), labels, count, self.ppl_tolerance, widen=self.widen_band
        )
        if selection.tolerance > self.ppl_tolerance:
            log.warning(
                "igsp: a cue dimension cannot reach the perplexity band at ppl_tolerance %.3g; "
                "widened to %.3g (mean perplexity per dimension: %s, pool median %.4g)",
                self.ppl_tolerance,
                selection.tolerance,
                {d: round(v, 3) for d, v in selection.mean_perplexity.items()},
                selection.median,
            )
        return IGSPResult(
            windows=pool[sorted(selection.indices)],
            pool=pool,
            labels=tuple(labels),
            cues=tuple(cues),
            perplexities=ppl,
            selection=selection,
        )
