"""Sources of text by name: the Hub presets, the plug-in worlds' offline sources (the toy
world's ``toy_*``; see :mod:`raysweep.worlds`) and ``file:<path>``.

The layer below the model-generated sources: an SGS generator reads its prompts from a source
found here, and :mod:`raysweep.calibration.registry` adds the generated sources on top.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from raysweep.worlds import registry

from .presets import HUB_PRESETS
from .sources import CalibrationSource, file_source

FILE_PREFIX = "file:"


def builtin_source(toy: Any) -> CalibrationSource:
    """The calibration source of an offline generator with ``name``, ``dimension``,
    ``description`` and ``texts(seed)`` (what a world's ``text_sources`` returns, e.g. the toy
    world's ``ToySource``)."""
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
    """Read-only ``name -> CalibrationSource``: the Hub presets, then the plug-in worlds' text
    sources (loaded on first use).

    A world that fails to load leaves its sources out, and ``world_error`` says why (an unknown
    name's error then quotes it).
    """

    def __init__(self) -> None:
        self.world_error: str | None = None

    def _build(self) -> dict[str, CalibrationSource]:
        rows = {s.name: s for s in HUB_PRESETS}
        worlds = registry()
        rows.update((s.name, s) for s in map(builtin_source, worlds.text_sources()))
        self.world_error = worlds.error
        return rows


TEXT_SOURCES = TextSourceTable()


def lookup(
    name: str | CalibrationSource,
    table: Mapping[str, CalibrationSource],
    extra: Mapping[str, CalibrationSource] | None = None,
) -> CalibrationSource:
    """``name`` in ``extra``, then ``file:<path>``, then ``table``; unknown names raise
    ``ValueError`` listing the closest known names (and the table's ``world_error`` when a
    plug-in world failed to load)."""
    if isinstance(name, CalibrationSource):
        return name
    if extra and name in extra:
        return extra[name]
    if name.startswith(FILE_PREFIX):
        return file_source(name, name[len(FILE_PREFIX) :])
    if name in table:
        return table[name]
    known = sorted({*table, *(extra or {})})
    world_error = getattr(table, "world_error", None)
    # 0.6: short names (sgs, igsp) share a letter pair with many typos; keep only real look-alikes.
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    hint = f"; close names: {', '.join(close)}" if close else ""
    failed = f"; {world_error}" if world_error else ""
    raise ValueError(
        f"unknown calibration source {name!r}{hint} "
        f"(python -m raysweep.calibration --list shows them all; local data: file:<path>){failed}"
    )


def text_source(name: str) -> CalibrationSource:
    """The text source called ``name``: a preset, a world's source or ``file:<path>``."""
    return lookup(name, TEXT_SOURCES)
