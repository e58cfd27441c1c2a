"""The calibration source record, and sources over local files."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from raysweep.names import DIMENSIONS

SourceKind = Literal["hub", "file", "builtin", "generated"]
_KINDS = ("hub", "file", "builtin", "generated")

FormatFn = Callable[[Mapping[str, Any]], str]

# Local file suffix -> packaged `datasets` builder.
_FILE_BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class CalibrationSource:
    """One row of the source table: where text comes from and how a row becomes text.

    kind:
      - ``hub``: ``datasets.load_dataset(dataset, config, split=..., revision=..., data_files=...,
        data_dir=..., streaming=...)``; ``dataset`` is a Hub id, a local dataset folder, or a packaged
        builder (``json``, ``parquet``, ``text``) reading ``data_files``.
      - ``file``: the same, for local files (``file:<path>``).
      - ``builtin``: ``texts(seed)`` yields documents (the toy world's offline sources).
      - ``generated``: text produced by the model being pruned, through ``generator``.

    A row becomes text through ``format`` (which reads ``fields``) or else the column ``text_field``.
    ``contiguous`` marks splits whose rows are consecutive lines of running text (WikiText): their
    order is kept, rows are joined without separators and windows are drawn from the whole split.
    ``config`` may be a tuple of configs, whose splits are concatenated in that order.
    """

    name: str
    kind: SourceKind = "hub"
    dataset: str | None = None
    config: str | tuple[str, ...] | None = None
    split: str = "train"
    revision: str | None = None
    data_files: tuple[str, ...] = ()
    data_dir: str | None = None
    streaming: bool = False
    text_field: str | None = "text"
    format: FormatFn | None = None
    fields: tuple[str, ...] = ()
    contiguous: bool = False
    dimension: str | None = None
    offline: bool = False
    description: str = ""
    builder_options: tuple[tuple[str, Any], ...] = ()
    texts: Callable[[int], Iterator[str]] | None = None
    generator: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a calibration source needs a non-empty name")
        if self.kind not in _KINDS:
            raise ValueError(
                f"calibration source {self.name!r}: kind must be one of {', '.join(_KINDS)}, "
                f"got {self.kind!r}"
            )
        if self.dimension is not None and self.dimension not in DIMENSIONS:
            raise ValueError(
                f"calibration source {self.name!r}: dimension must be one of "
                f"{', '.join(DIMENSIONS)} or None, got {self.dimension!r}"
            )
        if self.kind in ("hub", "file") and not self.dataset:
            raise ValueError(
                f"calibration source {self.name!r}: a {self.kind} source needs dataset"
            )
        if self.kind in ("hub", "file") and self.format is None and not self.text_field:
            raise ValueError(
                f"calibration source {self.name!r}: give a text_field or a format function"
            )
        if self.contiguous and self.streaming:
            raise ValueError(
                f"calibration source {self.name!r}: a contiguous source is read whole, "
                "so it cannot be streamed"
            )
        if self.kind == "builtin" and self.texts is None:
            raise ValueError(f"calibration source {self.name!r}: a builtin source needs texts")
        if isinstance(self.data_files, str):
            object.__setattr__(self, "data_files", (self.data_files,))

    @property
    def configs(self) -> tuple[str | None, ...]:
        """The configs to load, in concatenation order (``(None,)`` for the default one)."""
        if isinstance(self.config, tuple):
            return self.config
        return (self.config,)

    @property
    def required_fields(self) -> tuple[str, ...]:
        """Columns a row must have for ``row_text`` to work."""
        if self.format is not None:
            return self.fields
        return (self.text_field,) if self.text_field else ()

    def row_text(self, row: Mapping[str, Any]) -> str:
        """The calibration text of one dataset row."""
        if self.format is not None:
            return self.format(row)
        value = row[self.text_field]  # type: ignore[index]
        return "" if value is None else str(value)


def file_source(name: str, path: str | Path, text_field: str = "text") -> CalibrationSource:
    """A source over a local ``.txt``/``.jsonl``/``.json``/``.parquet`` file, or a directory of them.

    Every file of a directory (searched recursively, sorted) must have the same suffix. A ``.txt`` file
    is one document; json and parquet rows are documents whose text is the column ``text_field``.
    """
    root = Path(path).expanduser()
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in _FILE_BUILDERS)
        if not files:
            raise ValueError(
                f"calibration source {name!r}: directory {str(root)!r} has no "
                f"{'/'.join(_FILE_BUILDERS)} files"
            )
    elif root.is_file():
        files = [root]
    else:
        raise ValueError(f"calibration source {name!r}: no such file or directory: {str(root)!r}")
    suffixes = sorted({p.suffix for p in files})
    if len(suffixes) > 1:
        raise ValueError(
            f"calibration source {name!r}: mixed file types {', '.join(suffixes)} under {str(root)!r}"
        )
    if suffixes[0] not in _FILE_BUILDERS:
        raise ValueError(
            f"calibration source {name!r}: unsupported file type {suffixes[0]!r} "
            f"(use {', '.join(_FILE_BUILDERS)})"
        )
    builder = _FILE_BUILDERS[suffixes[0]]
    options: tuple[tuple[str, Any], ...] = ()
    if builder == "text":
        # One document per file keeps a text file's paragraphs together.
        options = (("sample_by", "document"),)
        text_field = "text"
    return CalibrationSource(
        name=name,
        kind="file",
        dataset=builder,
        data_files=tuple(str(p.resolve()) for p in files),
        text_field=text_field,
        offline=True,
        builder_options=options,
        description=f"local {builder} data at {root}",
    )
