"""The source table: Hub presets plus the toy world's offline sources, and name lookup."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from .presets import HUB_PRESETS
from .sources import CalibrationSource, file_source

FILE_PREFIX = "file:"
_TOY_MODULE = "raysweep.toyworld.sources"


class ToySourcesUnavailable(ImportError):
    """The toy world's source module cannot be imported."""


def _toy_sources() -> tuple[CalibrationSource, ...]:
    # Imported on first use: the toy world is optional for Hub-only sweeps.
    try:
        module = importlib.import_module(_TOY_MODULE)
    except ImportError as err:
        raise ToySourcesUnavailable(
            f"the toy world's sources are unavailable ({_TOY_MODULE} failed to import: {err})"
        ) from err
    return tuple(builtin_source(toy) for toy in module.TOY_SOURCES)


def builtin_source(toy: Any) -> CalibrationSource:
    """The calibration source of an offline generator with ``name``, ``dimension``,
    ``description`` and ``texts(seed)`` (a :class:`raysweep.toyworld.sources.ToySource`)."""
    return CalibrationSource(
        name=toy.name,
        kind="builtin",
        text_field=None,
        dimension=toy.dimension,
        offline=True,
        description=toy.description,
        texts=toy.texts,
    )


class SourceTable(Mapping[str, CalibrationSource]):
    """Read-only ``name -> CalibrationSource``: the Hub presets, the model-generated sources
    (``self_cal``, ``sgs``, ``igsp``), then the toy sources (loaded lazily).

    If the toy world cannot be imported the table holds the presets only; asking for a ``toy_`` name
    then raises an error that says why.
    """

    def __init__(self) -> None:
        self._rows: dict[str, CalibrationSource] | None = None
        self.toy_error: str | None = None

    def _table(self) -> dict[str, CalibrationSource]:
        if self._rows is None:
            from .generated import GENERATED_SOURCES  # imports build helpers lazily itself

            rows = {s.name: s for s in HUB_PRESETS}
            rows.update((s.name, s) for s in GENERATED_SOURCES)
            try:
                rows.update((s.name, s) for s in _toy_sources())
            except ToySourcesUnavailable as err:
                self.toy_error = str(err)
            self._rows = rows
        return self._rows

    def __getitem__(self, name: str) -> CalibrationSource:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


SOURCES = SourceTable()


def get_source(
    name: str | CalibrationSource, extra: Mapping[str, CalibrationSource] | None = None
) -> CalibrationSource:
    """The source called ``name``: a user-defined one from ``extra``, a table row, or ``file:<path>``.

    Unknown names raise ``ValueError`` listing the closest known names.
    """
    if isinstance(name, CalibrationSource):
        return name
    if extra and name in extra:
        return extra[name]
    if name.startswith(FILE_PREFIX):
        return file_source(name, name[len(FILE_PREFIX) :])
    if name in SOURCES:
        return SOURCES[name]
    if name.startswith("toy_") and SOURCES.toy_error:
        raise ValueError(f"unknown calibration source {name!r}: {SOURCES.toy_error}")
    known = sorted({*SOURCES, *(extra or {})})
    # 0.6: short names (sgs, igsp) share a letter pair with many typos; keep only real look-alikes.
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise ValueError(
        f"unknown calibration source {name!r}{hint} "
        "(python -m raysweep.calibration --list shows them all; local data: file:<path>)"
    )
