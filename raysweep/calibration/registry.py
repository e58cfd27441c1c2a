"""The source table (text sources, then the model-generated ones), name lookup, and sources
built from user specs (``calibration.custom_sources``)."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from raysweep.specs import GeneratedSourceSpec, source_spec

from .generated_sources import GENERATED_SOURCES, generated_source_from_spec
from .presets import HUB_PRESETS
from .sources import CalibrationSource, FormatFn, file_source
from .text_sources import TEXT_SOURCES, LazySourceTable, TextSourceTable, lookup


class SourceTable(LazySourceTable):
    """Read-only ``name -> CalibrationSource``: the Hub presets, the model-generated sources
    (``self_cal``, ``sgs``, ``igsp``), then the plug-in worlds' sources of ``text`` (loaded on
    first use; ``world_error`` says why a world's are missing).
    """

    def __init__(self, text: TextSourceTable | None = None) -> None:
        self.text = TextSourceTable() if text is None else text

    @property
    def world_error(self) -> str | None:
        self._table()
        return self.text.world_error

    def _build(self) -> dict[str, CalibrationSource]:
        rows = {s.name: s for s in HUB_PRESETS}
        rows.update((s.name, s) for s in GENERATED_SOURCES)
        rows.update(self.text)
        return rows


SOURCES = SourceTable(TEXT_SOURCES)


def get_source(
    name: str | CalibrationSource, extra: Mapping[str, CalibrationSource] | None = None
) -> CalibrationSource:
    """The source called ``name``: a user-defined one from ``extra``, a table row, or ``file:<path>``.

    Unknown names raise ``ValueError`` listing the closest known names.
    """
    return lookup(name, SOURCES, extra)


# --------------------------------------------------------------------------- user specs


def template_format(template: str) -> tuple[FormatFn, tuple[str, ...]]:
    """A format function filling ``str.format`` fields of ``template`` from a row, and its fields."""
    fields = tuple(
        dict.fromkeys(
            field.split(".")[0].split("[")[0]
            for _, field, _, _ in string.Formatter().parse(template)
            if field
        )
    )
    if not fields:
        raise ValueError(f"template {template!r} names no row fields (use {{field}})")

    def format_row(row: Mapping[str, Any]) -> str:
        return template.format(**{f: row[f] for f in fields})

    format_row.__qualname__ = f"template({template!r})"
    return format_row, fields


def source_from_spec(
    name: str,
    spec: Mapping[str, Any],
    presets: Mapping[str, CalibrationSource] | None = None,
) -> CalibrationSource:
    """A user-defined source from its YAML mapping (checked as a
    :class:`raysweep.specs.TextSourceSpec` or :class:`~raysweep.specs.GeneratedSourceSpec`).

    Keys: ``path`` (a local file or directory) or ``dataset`` (+ ``config``, ``split``, ``revision``,
    ``data_files``, ``data_dir``, ``streaming``); ``text_field`` or ``template`` (a ``str.format``
    string over row fields, e.g. ``"Q: {question}\\nA: {answer}"``); ``contiguous``, ``dimension``,
    ``offline``, ``description``. ``based_on: <preset>`` starts from a preset and overrides the keys
    given (e.g. point ``gsm8k`` at a local mirror with ``dataset: json`` and ``data_files``).
    ``presets`` defaults to the source table. ``generator: self_cal|sgs|igsp`` makes a
    model-generated source whose other keys are that generator's knobs (see
    ``raysweep.calibration.generators``).
    """
    typed = source_spec(name, spec)
    if isinstance(typed, GeneratedSourceSpec):
        return generated_source_from_spec(name, spec)
    options = typed.model_dump(exclude_unset=True)
    template = options.pop("template", None)
    if "data_files" in options:
        files = options["data_files"]
        options["data_files"] = (files,) if isinstance(files, str) else tuple(files)
    if isinstance(options.get("config"), list):
        options["config"] = tuple(options["config"])

    if "path" in options:
        base = file_source(name, options.pop("path"), options.pop("text_field", "text"))
    elif "based_on" in options:
        preset_name = options.pop("based_on")
        if presets is None:
            presets = SOURCES
        if preset_name not in presets:
            raise ValueError(f"calibration source {name!r}: unknown based_on {preset_name!r}")
        base = replace(presets[preset_name], name=name)
    else:  # the spec has a dataset
        base = CalibrationSource(name=name, dataset=options["dataset"])

    if template is not None:
        fn, fields = template_format(template)
        options.update(format=fn, fields=fields)
    elif "text_field" in options:
        options.update(format=None, fields=())
    return replace(base, **options)


def sources_from_specs(specs: Mapping[str, Mapping[str, Any]]) -> dict[str, CalibrationSource]:
    """User-defined sources by name (``calibration.custom_sources``), for ``extra_sources``."""
    return {name: source_from_spec(name, spec) for name, spec in specs.items()}
