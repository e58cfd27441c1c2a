"""Calibration statistics of every prunable module, additive over tokens.

``kind="hessian"`` holds ``sum_t x_t x_t^T`` (in, in) per input (what SparseGPT needs);
``kind="sqnorm"`` holds only its diagonal ``sum_t x_t^2`` (in,) (what Wanda needs). Modules that
read the same input tensor (q/k/v, gate/up) share one entry: ``groups`` maps every module name to
the key of its entry. All tensors are fp32 and live on the CPU once collected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file, save_file

StatisticsKind = Literal["hessian", "sqnorm"]
KINDS: tuple[str, ...] = ("hessian", "sqnorm")
_FORMAT = "raysweep.pruning.LayerStatistics/1"


@dataclass(eq=False)
class LayerStatistics:
    """Sums over ``num_tokens`` calibration tokens; hashable by identity (for ``combine``)."""

    kind: StatisticsKind
    sums: dict[str, torch.Tensor]  # entry key -> (in, in) or (in,)
    groups: dict[str, str]  # module name -> entry key
    num_tokens: float
    # entry key -> tokens that entry accumulated, where fewer than ``num_tokens`` (the routed
    # experts of an MoE block each see only the tokens sent to them); absent keys saw them all.
    counts: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        missing = sorted(set(self.groups.values()) - set(self.sums))
        if missing:
            raise ValueError(f"groups refer to missing entries: {missing}")

    def count(self, key: str) -> float:
        """Calibration tokens behind entry ``key``."""
        return float(self.counts.get(key, self.num_tokens))

    def for_module(self, name: str) -> torch.Tensor:
        try:
            return self.sums[self.groups[name]]
        except KeyError:
            raise KeyError(f"no statistics for module {name!r}") from None

    def diagonal(self) -> LayerStatistics:
        """The ``sqnorm`` statistics (what Wanda needs) of these statistics."""
        if self.kind == "sqnorm":
            return self
        sums = {k: torch.diagonal(v).clone() for k, v in self.sums.items()}
        return LayerStatistics("sqnorm", sums, dict(self.groups), self.num_tokens,
                               dict(self.counts))  # fmt: skip

    @staticmethod
    def combine(weights: Mapping[LayerStatistics, float]) -> LayerStatistics:
        """Statistics of a mixture whose token shares are proportional to ``weights``.

        Each part contributes its per-token mean times its normalised weight; the result is
        scaled to the total token count. When every weight equals that part's share of the
        tokens, this is exactly the statistics of the concatenated calibration set.
        Mixing ``hessian`` with ``sqnorm`` parts gives ``sqnorm``.
        """
        parts = [(s, float(w)) for s, w in weights.items()]
        if not parts:
            raise ValueError("combine needs at least one statistics object")
        if any(w < 0 for _, w in parts) or sum(w for _, w in parts) <= 0:
            raise ValueError(
                f"weights must be >= 0 with a positive sum, got {[w for _, w in parts]}"
            )
        groups = parts[0][0].groups
        for stats, _ in parts[1:]:
            if stats.groups != groups:
                raise ValueError("statistics to combine cover different modules")
        kind: StatisticsKind = "hessian" if all(s.kind == "hessian" for s, _ in parts) else "sqnorm"
        if kind == "sqnorm":
            parts = [(s.diagonal(), w) for s, w in parts]
        total_weight = sum(w for _, w in parts)
        total_tokens = sum(s.num_tokens for s, _ in parts)
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, float] = {}
        for key in parts[0][0].sums:
            acc = torch.zeros_like(parts[0][0].sums[key])
            count = 0.0
            for stats, w in parts:
                if w > 0:
                    scale = w / total_weight * total_tokens / stats.num_tokens
                    acc.add_(stats.sums[key], alpha=scale)
                    count += scale * stats.count(key)
            sums[key] = acc
            if any(key in stats.counts for stats, _ in parts):
                counts[key] = count
        return LayerStatistics(kind, sums, dict(groups), total_tokens, counts)

    def save(self, path: str | Path) -> None:
        """Write one safetensors file (tensors by entry key, the rest as metadata)."""
        metadata = {
            "format": _FORMAT,
            "kind": self.kind,
            "num_tokens": repr(float(self.num_tokens)),
            "groups": json.dumps(self.groups),
            "counts": json.dumps(self.counts),
        }
        tensors = {
            k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.sums.items()
        }
        save_file(tensors, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: str | Path) -> LayerStatistics:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != _FORMAT:
            raise ValueError(
                f"{path} is not a LayerStatistics file (format={metadata.get('format')!r})"
            )
        sums = load_file(str(path))
        return cls(
            kind=metadata["kind"],  # type: ignore[arg-type]
            sums=sums,
            groups=json.loads(metadata["groups"]),
            num_tokens=float(metadata["num_tokens"]),
            counts={k: float(v) for k, v in json.loads(metadata.get("counts", "{}")).items()},
        )
