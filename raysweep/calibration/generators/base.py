"""What every generator shares: the sampling knobs (:class:`Sampling`), the start and banned token
ids they imply, per-window seeds, argument checks and the code part of a draw's cache key.

Imports no torch (methods that take tensors work on the tensors given), so that the source table
and a config naming generated sources are checked without loading it.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import igsp_select

if TYPE_CHECKING:
    import torch


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (sha256 of their reprs joined)."""
    digest = hashlib.sha256("\x00".join(map(repr, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _module_hash(module: Any) -> str:
    try:
        return hashlib.sha256(inspect.getsource(module).encode()).hexdigest()[:16]
    except (OSError, TypeError):
        return ""


def _generators_code_hash() -> str:
    """One hash of every module of this package: all of them decide what a draw writes."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\x00" + path.read_bytes() + b"\x00")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Sampling:
    """Knobs shared by every generator (see :mod:`raysweep.calibration.generators`)."""

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

    @property
    def offline(self) -> bool:
        """Whether a draw reads nothing from the Hub (the model aside)."""
        return True

    def describe(self) -> str:
        """The source table's one-line description of this generator."""
        raise NotImplementedError

    def temperatures(self, steps: torch.Tensor) -> torch.Tensor:
        """Temperature of each sampled token, given its 0-based index among the sampled tokens,
        per the linear schedule (float32, the shape of ``steps``)."""
        import torch

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
            "code": [
                _module_hash(inspect.getmodule(type(self))),
                _generators_code_hash(),
                _module_hash(igsp_select),
            ],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


class BuiltWindows:
    """Generators whose ``build`` returns the windows together with their provenance."""

    def __call__(
        self, *, model: Any, tokenizer: Any, count: int, seqlen: int, seed: int
    ) -> torch.Tensor:
        return self.build(  # type: ignore[attr-defined]
            model=model, tokenizer=tokenizer, count=count, seqlen=seqlen, seed=seed
        ).windows


def special_ids(model: Any, tokenizer: Any, sampling: Sampling) -> tuple[int, list[int]]:
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


def check_sizes(kind: str, count: int, seqlen: int, prompt_len: int) -> None:
    for label, value in (("count", count), ("seqlen", seqlen)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if seqlen <= prompt_len:
        raise ValueError(
            f"{kind}: seqlen {seqlen} leaves no room to generate after a {prompt_len}-token prompt"
        )
