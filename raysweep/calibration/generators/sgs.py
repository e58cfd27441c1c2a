"""SGS: short prefixes of a text source continued by the model, the least likely windows dropped."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from raysweep.specs import GeneratorName

from ..sources import CalibrationSource
from ..text_sources import FILE_PREFIX, TEXT_SOURCES, text_source
from .base import BuiltWindows, Sampling, check_sizes, derive_seed, special_ids

if TYPE_CHECKING:
    import torch

AUTO = "auto"
HUB_PREFIX_SOURCE = "c4"


def default_prefix_source(model: Any) -> str:
    """The prefix source a plug-in world names for this model (the toy world: ``toy_web``, offline,
    for its models; see :mod:`raysweep.worlds`), else ``c4``."""
    from raysweep.worlds import registry

    config = getattr(model, "config", None)
    path = str(getattr(config, "name_or_path", "") or getattr(model, "name_or_path", "") or "")
    return registry().prefix_source(path.rstrip("/").split("/")[-1]) or HUB_PREFIX_SOURCE


@dataclass(frozen=True)
class SGSResult:
    """An SGS draw: the pool, its perplexities and prefixes, and which pool rows were kept."""

    windows: torch.Tensor  # (count, seqlen) = pool[kept]
    pool: torch.Tensor  # (pool_size, seqlen)
    prefixes: torch.Tensor  # (pool_size, prefix_tokens), without the start token
    perplexities: torch.Tensor  # (pool_size,) float64
    kept: tuple[int, ...]  # pool rows kept, in pool order
    prefix_source: str


@dataclass(frozen=True)
class SGS(BuiltWindows, Sampling):
    """SGS, "self-generating then sampling" (Ji et al., ICLR 2025): short prefixes from a text
    source are continued by the model to ``seqlen``; from a pool of ``ceil(count / (1 -
    drop_share))`` windows the ``pool - count`` with the highest perplexity are dropped.

    ``prefix_source`` names a source in the table or ``file:<path>``; ``auto`` means ``toy_web`` for
    the toy models and ``c4`` otherwise. A prefix is the first ``prefix_tokens`` tokens of a document
    (documents in the source's seeded order; shorter ones are skipped), placed after the start
    token. Sampling defaults follow the reference code (temperature 0.6, top-p 0.95, top-k 50,
    repetition penalty 1.2)."""

    temperature: float = 0.6
    top_k: int = 50
    top_p: float = 0.95
    repetition_penalty: float = 1.2
    prefix_source: str = AUTO
    prefix_tokens: int = 16
    drop_share: float = 0.2

    kind = "sgs"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.drop_share, int | float) and 0 <= self.drop_share < 1):
            raise ValueError(f"sgs: drop_share must be in [0, 1), got {self.drop_share!r}")
        if (
            isinstance(self.prefix_tokens, bool)
            or not isinstance(self.prefix_tokens, int)
            or self.prefix_tokens < 1
        ):
            raise ValueError(
                f"sgs: prefix_tokens must be a positive integer, got {self.prefix_tokens!r}"
            )
        if not isinstance(self.prefix_source, str) or not self.prefix_source:
            raise ValueError(
                f"sgs: prefix_source must be a source name, got {self.prefix_source!r}"
            )

    @property
    def offline(self) -> bool:
        """False for a Hub corpus (``auto`` means ``c4`` for real models)."""
        prefix = self.prefix_source
        if prefix.startswith(FILE_PREFIX):
            return True
        return prefix != AUTO and prefix in TEXT_SOURCES and TEXT_SOURCES[prefix].offline

    def describe(self) -> str:
        return (
            f"SGS: model continuations of {self.prefix_tokens}-token prefixes from "
            f"{self.prefix_source} text, highest-perplexity {self.drop_share:.0%} dropped"
        )

    def pool_size(self, count: int) -> int:
        """Windows generated for ``count`` kept ones: ``ceil(count / (1 - drop_share))``."""
        # round() first so that e.g. 8 / 0.8 is 10, not 10.000000000000002 -> 11
        return math.ceil(round(count / (1.0 - self.drop_share), 9))

    def resolved_prefix_source(self, model: Any) -> str:
        return default_prefix_source(model) if self.prefix_source == AUTO else self.prefix_source

    def cache_fingerprint(self, model: Any) -> dict[str, Any]:
        from ..cache import source_fingerprint

        fingerprint = super().cache_fingerprint(model)
        name = self.resolved_prefix_source(model)
        fingerprint["prefix_source"] = [name, source_fingerprint(self._prefix_source(name))]
        return fingerprint

    @staticmethod
    def _prefix_source(name: str) -> CalibrationSource:
        if name in get_args(GeneratorName):
            raise ValueError(f"sgs: prefix_source {name!r} is itself generated; use a text source")
        return text_source(name)

    def prefixes(self, tokenizer: Any, model: Any, n: int, seed: int) -> torch.Tensor:
        """The first ``prefix_tokens`` tokens of ``n`` documents: LongTensor ``(n, prefix_tokens)``."""
        import torch

        from ..loading import iter_documents
        from ..packing import tokenize_documents

        name = self.resolved_prefix_source(model)
        source = self._prefix_source(name)
        rows: list[list[int]] = []
        try:
            docs = tokenize_documents(
                tokenizer, iter_documents(source, derive_seed(seed, "sgs-prefixes"))
            )
            for ids in docs:
                if len(ids) >= self.prefix_tokens:
                    rows.append(list(ids[: self.prefix_tokens]))
                    if len(rows) == n:
                        break
        except Exception as err:  # noqa: BLE001 - any loading failure gets the same advice
            raise ValueError(
                f"sgs: prefix source {name!r} could not be read ({type(err).__name__}: {err}); "
                "point prefix_source at an available source, e.g. a custom source "
                "{generator: sgs, prefix_source: file:<path>}"
            ) from err
        if len(rows) < n:
            raise ValueError(
                f"sgs: prefix source {name!r} has {len(rows)} documents of at least "
                f"{self.prefix_tokens} tokens, {n} are needed"
            )
        return torch.tensor(rows, dtype=torch.long)

    def build(self, *, model: Any, tokenizer: Any, count: int, seqlen: int, seed: int) -> SGSResult:
        """Generate the pool, score it and keep the ``count`` lowest-perplexity windows."""
        from .decoding import draw_and_score

        check_sizes(self.kind, count, seqlen, 1 + self.prefix_tokens)
        start, banned = special_ids(model, tokenizer, self)
        prefixes = self.prefixes(tokenizer, model, self.pool_size(count), seed)
        prompts = [[start, *row] for row in prefixes.tolist()]
        pool, ppl = draw_and_score(model, prompts, seqlen, self, seed, banned)
        # Stable sort: equal perplexities keep pool order, so the drop is deterministic.
        order = np.argsort(ppl.numpy(), kind="stable")
        kept = tuple(sorted(int(i) for i in order[:count]))
        return SGSResult(
            windows=pool[list(kept)],
            pool=pool,
            prefixes=prefixes,
            perplexities=ppl,
            kept=kept,
            prefix_source=self.resolved_prefix_source(model),
        )
