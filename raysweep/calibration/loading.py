"""Documents of a source, in a seeded order, read through ``datasets.load_dataset``."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from typing import Any

import numpy as np

from .sources import CalibrationSource

_ROW_CHUNK = 512  # rows fetched per random-access read of a map-style dataset
_SHUFFLE_BUFFER = 10_000  # documents held by the streaming shuffle buffer


def _load_split(source: CalibrationSource, config: str | None) -> Any:
    import datasets

    if any(f.endswith(".zst") for f in source.data_files) and not importlib.util.find_spec(
        "zstandard"
    ):
        raise RuntimeError(
            f"calibration source {source.name!r} reads .zst files: pip install zstandard"
        )
    kwargs: dict[str, Any] = dict(source.builder_options)
    if source.data_files:
        kwargs["data_files"] = {source.split: list(source.data_files)}
    if source.data_dir:
        kwargs["data_dir"] = source.data_dir
    if source.revision:
        kwargs["revision"] = source.revision
    return datasets.load_dataset(
        source.dataset, config, split=source.split, streaming=source.streaming, **kwargs
    )


def _check_fields(source: CalibrationSource, columns: Iterable[str]) -> None:
    columns = list(columns)
    missing = [f for f in source.required_fields if f not in columns]
    if missing:
        raise ValueError(
            f"calibration source {source.name!r}: dataset {source.dataset!r} has no field "
            f"{missing[0]!r}; its fields are: {', '.join(columns)}"
        )


def _first_row_checked(source: CalibrationSource, rows: Iterator[Mapping[str, Any]]):
    first = next(rows, None)
    if first is None:
        return iter(())
    _check_fields(source, first.keys())
    return chain([first], rows)


def _map_style_rows(
    source: CalibrationSource, splits: list[Any], rng: np.random.Generator
) -> Iterator[Mapping[str, Any]]:
    import datasets

    for split in splits:
        _check_fields(source, split.column_names)
    table = splits[0] if len(splits) == 1 else datasets.concatenate_datasets(splits)
    table = table.select_columns(list(source.required_fields))
    order = np.arange(len(table)) if source.contiguous else rng.permutation(len(table))
    for start in range(0, len(order), _ROW_CHUNK):
        columns = table[order[start : start + _ROW_CHUNK].tolist()]
        names = list(columns)
        for values in zip(*(columns[c] for c in names), strict=True):
            yield dict(zip(names, values, strict=True))


def _streamed_rows(
    source: CalibrationSource, splits: list[Any], seed: int
) -> Iterator[Mapping[str, Any]]:
    import datasets

    for split in splits:
        if split.column_names is not None:
            _check_fields(source, split.column_names)
    stream = splits[0]
    if len(splits) > 1:
        # Alternate between configs so the first windows do not all come from the first one.
        stream = datasets.interleave_datasets(
            splits, stopping_strategy="all_exhausted_without_replacement"
        )
    stream = stream.shuffle(seed=seed, buffer_size=_SHUFFLE_BUFFER)
    yield from _first_row_checked(source, iter(stream))


def iter_documents(source: CalibrationSource, seed: int) -> Iterator[str]:
    """Non-empty documents of ``source`` in an order fixed by ``seed``.

    Map-style splits are read in a seeded permutation of their rows; streamed ones through a seeded
    shuffle buffer; ``contiguous`` sources in their stored order; ``builtin`` ones from ``texts(seed)``.
    """
    if source.kind == "builtin":
        documents: Iterable[str] = source.texts(seed)  # type: ignore[misc]
    elif source.kind in ("hub", "file"):
        splits = [_load_split(source, config) for config in source.configs]
        if source.streaming:
            rows = _streamed_rows(source, splits, seed)
        else:
            rows = _map_style_rows(source, splits, np.random.default_rng(seed))
        documents = (source.row_text(row) for row in rows)
    else:
        raise ValueError(
            f"calibration source {source.name!r} of kind {source.kind!r} has no documents"
        )
    return (doc for doc in documents if doc and not doc.isspace())
