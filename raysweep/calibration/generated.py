"""Calibration text written by the model being pruned: ``self_cal``, ``sgs`` and ``igsp``.

Each generator is a frozen dataclass whose fields are its knobs (defaults in code, overridable per
source from YAML through ``source_from_spec``, e.g. ``{generator: igsp, pool_factor: 4}``). Calling
it as ``generator(model=, tokenizer=, count=, seqlen=, seed=)`` returns a LongTensor
``(count, seqlen)``.

Shared conventions:

- **Windows** are exactly ``seqlen`` tokens: the start token (BOS, or EOS with ``start_token:
  eos`` for models trained on EOS-joined text without BOS), then any prompt tokens (an SGS prefix or
  an IGSP cue), then sampled tokens. Nothing is padded.
- **EOS** (``eos: continue``, the default): when the model writes EOS, sampling simply goes on, so
  the window continues with a new document after the separator, as packed corpus windows do.
  ``eos: suppress`` forbids EOS instead, so each window is one long document. The pad token is never
  sampled.
- **Determinism**: window ``i`` of a draw is sampled with uniforms from its own
  ``torch.Generator`` seeded by ``(seed, generator, part, i)`` (inverse-CDF sampling), so it does not
  depend on the batch size or the device (up to floating-point differences in the logits).
- **Sampling** order per step: repetition penalty, banned tokens, temperature, top-k, top-p.
  Temperature follows Self-Cal's linear schedule when ``temperature_initial`` is set:
  ``t_i = t_initial + (i / n) (t_final - t_initial)`` for the ``i``-th sampled token, ``i <= n =
  schedule_tokens``, then ``t_final = temperature``.
- Generation runs batched on the model's device under ``torch.no_grad`` in eval mode, with a progress
  bar (and a log line) for long runs.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch

from raysweep.specs import GeneratedSourceSpec, source_spec

from . import igsp_select
from .igsp_select import IGSPSelection, select_igsp
from .mixing import allocate_counts
from .sources import DIMENSIONS, CalibrationSource
from .text_sources import text_source

log = logging.getLogger(__name__)

# Show a progress bar when a draw samples at least this many tokens.
PROGRESS_MIN_TOKENS = 65_536

AUTO = "auto"
HUB_PREFIX_SOURCE = "c4"

# Generic format cues per capability dimension ("" = the start token alone). A few tokens each,
# no corpus text. Cues end without a trailing space: BPE vocabularies attach the space to the next
# word, so a dangling space token would be an unnatural prompt.
DEFAULT_CUES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("general", ("", "The", "In")),
    ("commonsense", ("Question: Why", "What happens if", "Q:")),
    ("code", ("def", "import", "print(")),
    ("math", ("Problem:", "Question: How many", "Calculate")),
)


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (sha256 of their reprs joined)."""
    digest = hashlib.sha256("\x00".join(map(repr, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _module_hash(module: Any) -> str:
    try:
        return hashlib.sha256(inspect.getsource(module).encode()).hexdigest()[:16]
    except (OSError, TypeError):
        return ""


@dataclass(frozen=True)
class Sampling:
    """Knobs shared by every generator (see the module docstring)."""

    temperature: float = 1.0
    temperature_initial: float | None = None
    schedule_tokens: int = 0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    start_token: str = "bos"
    eos: str = "continue"
    batch_size: int = 32
    score_batch_size: int = 4

    kind = "sampling"
    # Fields that change how fast a draw runs, not what it is (left out of cache keys).
    execution_fields = ("batch_size", "score_batch_size")

    def __post_init__(self) -> None:
        for name in ("temperature", "repetition_penalty"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{self.kind}: {name} must be a number > 0, got {value!r}")
        if self.temperature_initial is not None and not (
            isinstance(self.temperature_initial, int | float) and self.temperature_initial > 0
        ):
            raise ValueError(
                f"{self.kind}: temperature_initial must be a number > 0 or null, "
                f"got {self.temperature_initial!r}"
            )
        for name in ("schedule_tokens", "top_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{self.kind}: {name} must be an integer >= 0, got {value!r}")
        for name in ("batch_size", "score_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{self.kind}: {name} must be a positive integer, got {value!r}")
        if not (isinstance(self.top_p, int | float) and 0 < self.top_p <= 1):
            raise ValueError(f"{self.kind}: top_p must be in (0, 1], got {self.top_p!r}")
        if self.start_token not in ("bos", "eos"):
            raise ValueError(
                f"{self.kind}: start_token must be 'bos' or 'eos', got {self.start_token!r}"
            )
        if self.eos not in ("continue", "suppress"):
            raise ValueError(f"{self.kind}: eos must be 'continue' or 'suppress', got {self.eos!r}")

    def temperatures(self, steps: torch.Tensor) -> torch.Tensor:
        """Temperature of each sampled token, given its 0-based index among the sampled tokens,
        per the linear schedule (float32, the shape of ``steps``)."""
        final = torch.full(steps.shape, float(self.temperature), device=steps.device)
        if self.temperature_initial is None or self.schedule_tokens == 0:
            return final
        frac = steps.clamp(min=0).float() / self.schedule_tokens
        ramp = self.temperature_initial + frac * (self.temperature - self.temperature_initial)
        return torch.where(steps < self.schedule_tokens, ramp, final)

    def params(self) -> dict[str, Any]:
        """Knobs that decide the windows (for cache keys and records)."""
        return {k: v for k, v in asdict(self).items() if k not in self.execution_fields}

    def cache_fingerprint(self, model: Any) -> dict[str, Any]:
        """Everything besides model, tokenizer, seed, count and seqlen that decides the windows."""
        return {
            "kind": self.kind,
            "params": _jsonable(self.params()),
            "code": [_module_hash(inspect.getmodule(type(self))), _module_hash(igsp_select)],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- sampling core


def _special_ids(model: Any, tokenizer: Any, sampling: Sampling) -> tuple[int, list[int]]:
    """The start token id and the ids that must never be sampled."""
    config = getattr(model, "config", None)
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        bos = getattr(config, "bos_token_id", None)
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        eos = getattr(config, "eos_token_id", None)
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    start = bos if sampling.start_token == "bos" else eos
    if start is None and sampling.start_token == "bos":
        start = eos  # GPT-2-like vocabularies: one <|endoftext|> token opens and closes documents
    if start is None:
        raise ValueError(
            f"{sampling.kind}: the tokenizer has no {sampling.start_token.upper()} token to start "
            "generation from (nor the model config); set start_token or use another tokenizer"
        )
    banned = []
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is not None and pad not in (eos, start):
        banned.append(int(pad))
    if sampling.eos == "suppress" and eos is not None and eos != start:
        banned.append(int(eos))
    return int(start), banned


def row_uniforms(seed: int, tag: str, rows: range, steps: int) -> torch.Tensor:
    """Uniforms ``(len(rows), steps)`` on CPU; row ``i`` from its own generator ``(seed, tag, i)``."""
    out = torch.empty(len(rows), steps, dtype=torch.float64)
    for j, i in enumerate(rows):
        gen = torch.Generator().manual_seed(derive_seed(seed, tag, i))
        out[j] = torch.rand(steps, generator=gen, dtype=torch.float64)
    return out


def pick_tokens(
    logits: torch.Tensor,
    uniforms: torch.Tensor,
    seen: torch.Tensor | None,
    banned: list[int],
    temperature: torch.Tensor,
    sampling: Sampling,
) -> torch.Tensor:
    """Sample one token per row. logits ``(B, V)``, uniforms ``(B,)`` in [0, 1), temperature
    ``(B, 1)`` -> ids ``(B,)``."""
    logits = logits.float()
    if seen is not None:
        penalised = torch.where(
            logits > 0, logits / sampling.repetition_penalty, logits * sampling.repetition_penalty
        )
        logits = torch.where(seen, penalised, logits)
    if banned:
        ids = torch.tensor(banned, device=logits.device)
        logits = logits.index_fill(1, ids, -math.inf)
    weights, order = candidate_weights(logits / temperature, sampling)
    keep = weights > 0
    cdf = weights.double().cumsum(-1)  # (B, candidates)
    target = uniforms.to(cdf.device).unsqueeze(1) * cdf[:, -1:]
    pos = torch.searchsorted(cdf, target, right=True)  # (B, 1): first position whose cdf > target
    # Guard against target == total through rounding: fall back to the last kept position.
    positions = torch.arange(keep.shape[1], device=keep.device)
    last = torch.where(keep, positions, -1).max(dim=1, keepdim=True).values
    pos = torch.minimum(pos, last)
    return (pos if order is None else order.gather(1, pos)).squeeze(1)


def candidate_weights(
    logits: torch.Tensor, sampling: Sampling
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Unnormalised sampling weights after top-k then top-p, as Hugging Face's ``generate``
    applies them (``TopKLogitsWarper`` then ``TopPLogitsWarper``): top-p reads the probabilities
    renormalised over the top-k tokens. logits ``(B, V)``, already divided by the temperature ->
    ``(weights (B, C), ids (B, C))`` with the candidates in descending order, or ``(weights
    (B, V), None)`` in token order when nothing is cut; a cut token has weight 0."""
    probs = torch.softmax(logits, dim=-1)
    ranked, order = _ranked(probs, sampling.top_k, sampling.top_p)
    keep = ranked > 0
    if sampling.top_p < 1.0:
        # Top-k's survivors form the distribution top-p cuts (the nucleus probe's are a prefix of
        # the full one, whose mass is 1).
        mass = ranked.sum(-1, keepdim=True) if sampling.top_k else 1.0
        before = (ranked.cumsum(-1) - ranked) / mass  # mass of the tokens ranked above
        keep &= before < sampling.top_p
    if order is not None:
        keep[:, 0] = True  # the most likely token always stays
    return ranked * keep, order


# Nucleus sampling without top-k first looks among this many most likely tokens (a full sort of a
# large vocabulary is slow on CPU); it sorts everything only when their mass is below top_p.
_NUCLEUS_PROBE = 256


def _ranked(
    probs: torch.Tensor, top_k: int, top_p: float
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(probs, None)`` in token order when nothing is cut; else the most likely tokens in
    descending order ``(values (B, k), ids (B, k))``, holding every token top-k/top-p may keep."""
    vocab = probs.shape[-1]
    if top_k:
        return probs.topk(min(top_k, vocab), dim=-1)
    if top_p >= 1.0:
        return probs, None
    values, ids = probs.topk(min(_NUCLEUS_PROBE, vocab), dim=-1)
    if bool((values.sum(-1) >= top_p).all()):
        return values, ids
    return probs.sort(dim=-1, descending=True, stable=True)


def _forward_kwargs(model: Any) -> tuple[dict[str, Any], str]:
    """Extra forward arguments, and the name of the KV-cache argument (``cache`` in recent
    transformers, ``past_key_values`` before)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        params = {}
    # Only the last position's logits are needed while sampling: (B, 1, V) instead of (B, L, V).
    extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    return extra, "cache" if "cache" in params else "past_key_values"


def _kv_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


@torch.no_grad()
def _sample_batch(
    model: Any,
    prompts: Sequence[Sequence[int]],
    seqlen: int,
    uniforms: torch.Tensor,
    banned: list[int],
    sampling: Sampling,
) -> torch.Tensor:
    """Continue ``prompts`` (B rows of any lengths >= 1) to ``(B, seqlen)`` with a KV cache.

    The shortest prompt length is run in one forward pass; after that every position takes the
    row's prompt token while it has one, else a sampled token, so rows with prompts of different
    lengths share a batch without padding. ``uniforms (B, seqlen)``: position ``p`` of a row is
    sampled with ``uniforms[row, p]``.
    """
    device = next(model.parameters()).device
    b = len(prompts)
    lengths = torch.tensor([len(row) for row in prompts], device=device)  # (B,)
    forced = torch.full((b, seqlen), -1, dtype=torch.long)  # prompt tokens, -1 where sampled
    for i, row in enumerate(prompts):
        forced[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    forced = forced.to(device)
    uniforms = uniforms.to(device)
    first = int(lengths.min())
    tokens = torch.empty((b, seqlen), dtype=torch.long, device=device)
    tokens[:, :first] = forced[:, :first]
    extra, cache_arg = _forward_kwargs(model)
    out = model(input_ids=tokens[:, :first], use_cache=True, **extra)
    seen = None  # (B, vocab) tokens already in each row, for the repetition penalty
    if sampling.repetition_penalty != 1.0:
        seen = torch.zeros(b, out.logits.shape[-1], dtype=torch.bool, device=device)
        seen.scatter_(1, tokens[:, :first], True)
    for pos in range(first, seqlen):
        # Index of this token among the row's sampled ones (negative while still in the prompt).
        temps = sampling.temperatures(pos - lengths).unsqueeze(1)  # (B, 1)
        sampled = pick_tokens(out.logits[:, -1], uniforms[:, pos], seen, banned, temps, sampling)
        nxt = torch.where(forced[:, pos] >= 0, forced[:, pos], sampled)  # (B,)
        tokens[:, pos] = nxt
        if seen is not None:
            seen.scatter_(1, nxt.unsqueeze(1), True)
        if pos + 1 < seqlen:
            extra[cache_arg] = _kv_cache(out)
            out = model(input_ids=nxt.unsqueeze(1), use_cache=True, **extra)
    return tokens.cpu()


class _Progress:
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


def sample_windows(
    model: Any,
    prompts: Sequence[Sequence[int]] | torch.Tensor,
    seqlen: int,
    sampling: Sampling,
    seed: int,
    tag: str,
    banned: Sequence[int] = (),
    progress: _Progress | None = None,
) -> torch.Tensor:
    """Continue each prompt (start token included; lengths may differ) to ``seqlen`` tokens.

    Row ``i`` is sampled with uniforms from ``(seed, tag, i)``; returns LongTensor ``(N, seqlen)``.
    """
    prompts = [[int(t) for t in row] for row in prompts]
    longest = max(len(row) for row in prompts)
    if min(len(row) for row in prompts) < 1 or longest >= seqlen:
        raise ValueError(
            f"{sampling.kind}: prompts need 1 to {seqlen - 1} tokens for seqlen {seqlen}, "
            f"got up to {longest}"
        )
    was_training = model.training
    model.eval()
    parts = []
    try:
        for start in range(0, len(prompts), sampling.batch_size):
            rows = range(start, min(start + sampling.batch_size, len(prompts)))
            uniforms = row_uniforms(seed, tag, rows, seqlen)
            batch = prompts[rows.start : rows.stop]
            parts.append(_sample_batch(model, batch, seqlen, uniforms, list(banned), sampling))
            if progress is not None:
                progress.update(len(rows))
    finally:
        model.train(was_training)
    return torch.cat(parts, dim=0)


def window_perplexities(model: Any, windows: torch.Tensor, batch_size: int = 4) -> torch.Tensor:
    """Per-window exp(mean next-token NLL) over positions 1..seqlen-1: float64 ``(N,)``.

    Through the chunked LM head of :func:`raysweep.calibration.metrics.window_nll`: no
    (batch, seqlen, vocab) logits tensor.
    """
    from raysweep.calibration.metrics import window_nll

    sums = window_nll(model, windows, batch_size)
    return (sums / max(1, windows.shape[1] - 1)).exp()


def _check_sizes(kind: str, count: int, seqlen: int, prompt_len: int) -> None:
    for label, value in (("count", count), ("seqlen", seqlen)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if seqlen <= prompt_len:
        raise ValueError(
            f"{kind}: seqlen {seqlen} leaves no room to generate after a {prompt_len}-token prompt"
        )


# ---------------------------------------------------------------- self_cal


class _BuiltWindows:
    """Generators whose ``build`` returns the windows together with their provenance."""

    def __call__(
        self, *, model: Any, tokenizer: Any, count: int, seqlen: int, seed: int
    ) -> torch.Tensor:
        return self.build(  # type: ignore[attr-defined]
            model=model, tokenizer=tokenizer, count=count, seqlen=seqlen, seed=seed
        ).windows


@dataclass(frozen=True)
class SelfCal(Sampling):
    """Self-Cal (Williams, Chrysostomou & Aletras, NAACL 2025): the model writes each window from the
    start token alone, with no external text. The paper's linear temperature schedule is available
    through ``temperature_initial`` / ``schedule_tokens`` (its exact values are not set by default)."""

    kind = "self_cal"

    def __call__(
        self, *, model: Any, tokenizer: Any, count: int, seqlen: int, seed: int
    ) -> torch.Tensor:
        _check_sizes(self.kind, count, seqlen, 1)
        start, banned = _special_ids(model, tokenizer, self)
        prompts = [[start]] * count
        progress = _Progress(self.kind, count, count * seqlen)
        try:
            return sample_windows(model, prompts, seqlen, self, seed, "self_cal", banned, progress)
        finally:
            progress.close()


# ---------------------------------------------------------------- sgs


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
class SGS(_BuiltWindows, Sampling):
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

    def pool_size(self, count: int) -> int:
        """Windows generated for ``count`` kept ones: ``ceil(count / (1 - drop_share))``."""
        # round() first so that e.g. 8 / 0.8 is 10, not 10.000000000000002 -> 11
        return math.ceil(round(count / (1.0 - self.drop_share), 9))

    def resolved_prefix_source(self, model: Any) -> str:
        return default_prefix_source(model) if self.prefix_source == AUTO else self.prefix_source

    def cache_fingerprint(self, model: Any) -> dict[str, Any]:
        from .cache import source_fingerprint

        fingerprint = super().cache_fingerprint(model)
        name = self.resolved_prefix_source(model)
        fingerprint["prefix_source"] = [name, source_fingerprint(self._prefix_source(name))]
        return fingerprint

    @staticmethod
    def _prefix_source(name: str) -> CalibrationSource:
        if name in GENERATORS:
            raise ValueError(f"sgs: prefix_source {name!r} is itself generated; use a text source")
        return text_source(name)

    def prefixes(self, tokenizer: Any, model: Any, n: int, seed: int) -> torch.Tensor:
        """The first ``prefix_tokens`` tokens of ``n`` documents: LongTensor ``(n, prefix_tokens)``."""
        from .loading import iter_documents
        from .packing import tokenize_documents

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
        _check_sizes(self.kind, count, seqlen, 1 + self.prefix_tokens)
        start, banned = _special_ids(model, tokenizer, self)
        size = self.pool_size(count)
        prefixes = self.prefixes(tokenizer, model, size, seed)
        prompts = [[start, *row] for row in prefixes.tolist()]
        progress = _Progress(self.kind, size, size * seqlen)
        try:
            pool = sample_windows(model, prompts, seqlen, self, seed, "sgs", banned, progress)
            ppl = window_perplexities(model, pool, self.score_batch_size)
        finally:
            progress.close()
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


# ---------------------------------------------------------------- igsp


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
class IGSP(_BuiltWindows, Sampling):
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
        _check_sizes(self.kind, count, seqlen, 1)
        start, banned = _special_ids(model, tokenizer, self)
        plan = [row for row in self.plan(count) if row[2] > 0]
        encoded = {
            cue: tokenizer(cue, add_special_tokens=False)["input_ids"] if cue else []
            for _, cue, _ in plan
        }
        _check_sizes(self.kind, count, seqlen, 1 + max(len(ids) for ids in encoded.values()))
        prompts, labels, cues = [], [], []
        for dimension, cue, n in plan:
            prompts += [[start, *encoded[cue]]] * n
            labels += [dimension] * n
            cues += [cue] * n
        progress = _Progress(self.kind, len(prompts), len(prompts) * seqlen)
        try:
            # One draw over the whole pool: rows of different cues share batches.
            pool = sample_windows(model, prompts, seqlen, self, seed, "igsp", banned, progress)
            ppl = window_perplexities(model, pool, self.score_batch_size)
        finally:
            progress.close()
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


# ---------------------------------------------------------------- sources

GENERATORS: dict[str, type[Sampling]] = {"self_cal": SelfCal, "sgs": SGS, "igsp": IGSP}


def _describe(generator: Sampling) -> str:
    if isinstance(generator, SGS):
        return (
            f"SGS: model continuations of {generator.prefix_tokens}-token prefixes from "
            f"{generator.prefix_source} text, highest-perplexity {generator.drop_share:.0%} dropped"
        )
    if isinstance(generator, IGSP):
        return (
            "IGSP (raysweep's reading): model text from generic cues, selected for low 4-gram "
            "aggregation with perplexity balanced across dimensions"
        )
    return "Self-Cal: windows the model samples from the start token alone"


def _is_offline_source(name: str) -> bool:
    from .text_sources import TEXT_SOURCES

    return name in TEXT_SOURCES and TEXT_SOURCES[name].offline


def generated_source(name: str, generator: Sampling, description: str = "") -> CalibrationSource:
    """A table row for a generator instance.

    ``offline`` is false only for SGS reading a Hub corpus (``auto`` means ``c4`` for real models).
    """
    offline = True
    if isinstance(generator, SGS):
        prefix = generator.prefix_source
        offline = prefix.startswith("file:") or (prefix != AUTO and _is_offline_source(prefix))
    return CalibrationSource(
        name=name,
        kind="generated",
        text_field=None,
        offline=offline,
        description=description or _describe(generator),
        generator=generator,
    )


GENERATED_SOURCES: tuple[CalibrationSource, ...] = tuple(
    generated_source(name, cls()) for name, cls in GENERATORS.items()
)

_SPEC_META = tuple(GeneratedSourceSpec.model_fields)


def generated_source_from_spec(name: str, spec: Mapping[str, Any]) -> CalibrationSource:
    """A generated source from a YAML mapping: ``generator`` (``self_cal``, ``sgs`` or ``igsp``) plus
    any of that generator's knobs, e.g. ``{generator: igsp, pool_factor: 4, temperature: 0.8}``;
    ``description`` and ``dimension`` as for other sources."""
    typed = source_spec(name, spec)
    if not isinstance(typed, GeneratedSourceSpec):
        raise ValueError(f"calibration source {name!r}: a generated source names its generator")
    kind = typed.generator
    cls = GENERATORS[kind]
    knobs = {f.name for f in fields(cls)}
    unknown = sorted(set(typed.knobs) - knobs)
    if unknown:
        raise ValueError(
            f"calibration source {name!r}: unknown keys {', '.join(unknown)} for generator "
            f"{kind!r}; allowed: {', '.join([*_SPEC_META, *sorted(knobs)])}"
        )
    options = typed.knobs
    try:
        generator = cls(**options)
    except ValueError as err:
        raise ValueError(f"calibration source {name!r}: {err}") from None
    source = generated_source(name, generator, typed.description or "")
    if typed.dimension is not None:
        source = replace(source, dimension=typed.dimension)
    return source


__all__ = [
    "DEFAULT_CUES",
    "GENERATED_SOURCES",
    "GENERATORS",
    "IGSP",
    "SGS",
    "IGSPResult",
    "SGSResult",
    "Sampling",
    "SelfCal",
    "default_prefix_source",
    "generated_source",
    "generated_source_from_spec",
    "candidate_weights",
    "pick_tokens",
    "sample_windows",
    "window_perplexities",
]
