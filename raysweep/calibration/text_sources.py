"""Sources of text by name: the Hub presets, the toy world's offline sources and ``file:<path>``.

The layer below the model-generated sources: an SGS generator reads its prompts from a source
found here, and :mod:`raysweep.calibration.registry` adds the generated sources on top.
"""

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


class LazySourceTable(Mapping[str, CalibrationSource]):
    """A read-only ``name -> CalibrationSource`` built by ``_build`` on first use."""

    _rows: dict[str, CalibrationSource] | None = None

    def _build(self) -> dict[str, CalibrationSource]:
        raise NotImplementedError

    def _table(self) -> dict[str, CalibrationSource]:
        if self._rows is None:
            self._rows = self._build()
        return self._rows

    def __getitem__(self, name: str) -> CalibrationSource:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


class TextSourceTable(LazySourceTable):
    """Read-only ``name -> CalibrationSource``: the Hub presets, then the toy sources (loaded
    lazily).

    If the toy world cannot be imported the table holds the presets only, and ``toy_error`` says
    why (asking for a ``toy_`` name then raises an error that quotes it).
    """

    def __init__(self) -> None:
        self.toy_error: str | None = None

    def _build(self) -> dict[str, CalibrationSource]:
        rows = {s.name: s for s in HUB_PRESETS}
        try:
            rows.update((s.name, s) for s in _toy_sources())
        except ToySourcesUnavailable as err:
            self.toy_error = str(err)
        return rows


TEXT_SOURCES = TextSourceTable()


def lookup(
    name: str | CalibrationSource,
    table: Mapping[str, CalibrationSource],
    extra: Mapping[str, CalibrationSource] | None = None,
) -> CalibrationSource:
    """``name`` in ``extra``, then ``file:<path>``, then ``table``; unknown names raise
    ``ValueError`` listing the closest known names (for a ``toy_`` name, the table's
    ``toy_error`` when the toy world failed to import)."""
    if isinstance(name, CalibrationSource):
        return name
    if extra and name in extra:
        return extra[name]
    if name.startswith(FILE_PREFIX):
        return file_source(name, name[len(FILE_PREFIX) :])
    if name in table:
        return table[name]
    toy_error = getattr(table, "toy_error", None)
    if name.startswith("toy_") and toy_error:
        raise ValueError(f"unknown calibration source {name!r}: {toy_error}")
    known = sorted({*table, *(extra or {})})
    # 0.6: short names (sgs, igsp) share a letter pair with many typos; keep only real look-alikes.
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise ValueError(
        f"unknown calibration source {name!r}{hint} "
        "(python -m raysweep.calibration --list shows them all; local data: file:<path>)"
    )


def text_source(name: str) -> CalibrationSource:
    """The text source called ``name``: a preset, a toy source or ``file:<path>``."""
    return lookup(name, TEXT_SOURCES)
