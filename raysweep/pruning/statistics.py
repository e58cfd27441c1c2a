"""Calibration statistics of every prunable module, additive over tokens.

``kind="hessian"`` holds ``sum_t x_t x_t^T`` (in, in) per input (what SparseGPT needs);
``kind="sqnorm"`` holds only its diagonal ``sum_t x_t^2`` (in,) (what Wanda needs). Modules that
read the same input tensor (q/k/v, gate/up) share one entry: ``groups`` maps every module name to
the key of its entry. All tensors are fp32 and live on the CPU once collected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file

StatisticsKind = Literal["hessian", "sqnorm"]
KINDS: tuple[str, ...] = ("hessian", "sqnorm")
_FORMAT = "raysweep.pruning.LayerStatistics/1"
_FIRST = "first:"  # tensor-name prefix of the first moments in a saved file


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
    # Prunable modules whose weight the layer reads without calling them (Mamba's ``dt_proj``):
    # no input statistics exist; the prune falls back to magnitude for them and says so.
    uncalled: list[str] = field(default_factory=list)
    # entry key -> ``sum_t x_t`` (in,): first moments, for input means and variances (DSnoT).
    # Empty in statistics written before they were kept.
    firsts: dict[str, torch.Tensor] = field(default_factory=dict)

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
                               dict(self.counts), list(self.uncalled),
                               dict(self.firsts))  # fmt: skip

    def first_moment(self, name: str) -> torch.Tensor:
        """``sum_t x_t`` (in,) of module ``name``'s inputs; KeyError if not kept."""
        key = self.groups[name]
        if key not in self.firsts:
            raise KeyError(
                f"no first moments for module {name!r}: statistics written before raysweep kept "
                "them (rebuild the statistics store)"
            )
        return self.firsts[key]

    @property
    def nbytes(self) -> int:
        """Bytes held by the tensors."""
        return sum(t.numel() * t.element_size() for t in self.sums.values())

    @staticmethod
    def combine(
        weights: Mapping[LayerStatistics, float], num_tokens: float | None = None
    ) -> LayerStatistics:
        """Statistics of a mixture whose token shares are proportional to ``weights``.

        Each part contributes its per-token mean times its normalised weight; the result is
        scaled to ``num_tokens`` (default: the parts' total token count). When every weight
        equals that part's share of the tokens, this is exactly the statistics of the
        concatenated calibration set. Mixing ``hessian`` with ``sqnorm`` parts gives ``sqnorm``.
        """
        parts = [(s, float(w)) for s, w in weights.items()]
        if not parts:
            raise ValueError("combine needs at least one statistics object")
        kind: StatisticsKind = "hessian" if all(s.kind == "hessian" for s, _ in parts) else "sqnorm"
        total = sum(s.num_tokens for s, _ in parts) if num_tokens is None else num_tokens
        acc = StatisticsAccumulator(kind, [w for _, w in parts], total)
        for stats, w in parts:
            acc.add(stats, w)
        return acc.result()

    def save(self, path: str | Path, metadata: Mapping[str, str] | None = None) -> None:
        """Write one safetensors file (tensors by entry key, the rest as metadata).

        ``metadata`` adds string entries of the caller's own (a store's key digest, say).
        """
        header = dict(metadata or {})
        header.update(
            {
                "format": _FORMAT,
                "kind": self.kind,
                "num_tokens": repr(float(self.num_tokens)),
                "groups": json.dumps(self.groups),
                "counts": json.dumps(self.counts),
                "uncalled": json.dumps(self.uncalled),
            }
        )
        tensors = {
            k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.sums.items()
        }
        tensors.update({_FIRST + k: v.detach().to("cpu", torch.float32).contiguous()
                        for k, v in self.firsts.items()})  # fmt: skip
        save_file(tensors, str(path), metadata=header)

    @staticmethod
    def read_metadata(path: str | Path) -> dict[str, str]:
        """The safetensors header metadata of a file written by :meth:`save` (tensors unread)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != _FORMAT:
            raise ValueError(
                f"{path} is not a LayerStatistics file (format={metadata.get('format')!r})"
            )
        return dict(metadata)

    @classmethod
    def load(cls, path: str | Path, kind: StatisticsKind | None = None) -> LayerStatistics:
        """Read a file written by :meth:`save`.

        ``kind="sqnorm"`` of a Hessian file keeps only the diagonals, read one tensor at a time
        (never the whole file's Hessians at once).
        """
        from safetensors import safe_open

        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != _FORMAT:
                raise ValueError(
                    f"{path} is not a LayerStatistics file (format={metadata.get('format')!r})"
                )
            stored = metadata["kind"]
            if kind == "hessian" and stored != "hessian":
                raise ValueError(f"{path} holds {stored} statistics, not Hessians")
            diagonal = kind == "sqnorm" and stored == "hessian"
            sums: dict[str, torch.Tensor] = {}
            firsts: dict[str, torch.Tensor] = {}
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if key.startswith(_FIRST):
                    firsts[key.removeprefix(_FIRST)] = handle.get_tensor(key)
                    continue
                tensor = handle.get_tensor(key)
                sums[key] = torch.diagonal(tensor).clone() if diagonal else tensor
                del tensor
        return cls(
            kind="sqnorm" if diagonal else stored,  # type: ignore[arg-type]
            sums=sums,
            groups=json.loads(metadata["groups"]),
            num_tokens=float(metadata["num_tokens"]),
            counts={k: float(v) for k, v in json.loads(metadata.get("counts", "{}")).items()},
            uncalled=list(json.loads(metadata.get("uncalled", "[]"))),
            firsts=firsts,
        )


class StatisticsAccumulator:
    """The weighted sum behind :meth:`LayerStatistics.combine`, fed one part at a time.

    Built with the result's ``kind``, every part's weight (for the normalisation) and the
    result's token count; ``add`` each part (in any order, each once), then take ``result``.
    Memory: the result plus the part being added, so parts read from disk one after another
    are never all held at once. ``sqnorm`` results take the diagonal of Hessian parts.
    """

    def __init__(self, kind: StatisticsKind, weights: Sequence[float], num_tokens: float) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        weights = [float(w) for w in weights]
        if not weights:
            raise ValueError("combine needs at least one statistics object")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights must be >= 0 with a positive sum, got {weights}")
        self.kind: StatisticsKind = kind
        self.total_weight = sum(weights)
        self.num_tokens = float(num_tokens)
        self._groups: dict[str, str] | None = None
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, float] = {}
        self._counted: set[str] = set()
        self._uncalled: list[str] = []
        self._firsts: dict[str, torch.Tensor] = {}
        self._all_firsts = True

    def add(self, stats: LayerStatistics, weight: float) -> None:
        if self._groups is None:
            self._groups = dict(stats.groups)
            self._uncalled = list(stats.uncalled)
        elif stats.groups != self._groups:
            raise ValueError("statistics to combine cover different modules")
        if self.kind == "hessian" and stats.kind != "hessian":
            raise ValueError("a Hessian mixture needs Hessian parts, got sqnorm")
        self._counted.update(k for k in stats.counts if k in stats.sums)
        if weight <= 0:
            return
        scale = weight / self.total_weight * self.num_tokens / stats.num_tokens
        diagonal = self.kind == "sqnorm" and stats.kind == "hessian"
        self._all_firsts &= set(stats.firsts) == set(stats.sums)
        for key, value in stats.sums.items():
            part = torch.diagonal(value) if diagonal else value
            if key in self._sums:
                self._sums[key].add_(part, alpha=scale)
            else:
                self._sums[key] = part * scale
            self._counts[key] = self._counts.get(key, 0.0) + scale * stats.count(key)
        for key, value in stats.firsts.items():
            if key in self._firsts:
                self._firsts[key].add_(value, alpha=scale)
            else:
                self._firsts[key] = value * scale

    def result(self) -> LayerStatistics:
        if self._groups is None:
            raise ValueError("no statistics were added")
        sums = self._sums
        if not sums:  # every weight was zero: never reached, the weights are checked
            raise ValueError("no statistics with a positive weight were added")
        counts = {k: self._counts.get(k, 0.0) for k in self._counted}
        # First moments only where every part kept them: a partial sum would be wrong.
        firsts = self._firsts if self._all_firsts else {}
        return LayerStatistics(self.kind, sums, self._groups, self.num_tokens, counts,
                               list(self._uncalled), firsts)  # fmt: skip
