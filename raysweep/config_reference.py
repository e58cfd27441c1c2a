"""The configuration reference, generated from the schema: ``docs/configuration-reference.md``.

``python -m raysweep.config_reference > docs/configuration-reference.md`` writes it; a test checks
that the committed page is what the schema generates, so a field added, renamed or re-described
in :mod:`raysweep.config` cannot leave the page behind. Every field of the sweep config, dotted
as a ``key=value`` override names it, with its type, default, bounds and description.
"""

from __future__ import annotations

import json
import re
import types
import typing
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

_BOUNDS = ((annotated_types.Gt, "gt", "> {}"), (annotated_types.Ge, "ge", "≥ {}"),
           (annotated_types.Lt, "lt", "< {}"), (annotated_types.Le, "le", "≤ {}"),
           (annotated_types.MinLen, "min_length", "at least {} value(s)"))  # fmt: skip


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The config class a field holds (directly or as ``X | None``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if _model_of(a)]
        return models[0] if len(models) == 1 else None
    return None


def _anchor(title: str) -> str:
    """The id Markdown's table of contents gives a ``## title`` heading."""
    return re.sub(r"[^\w-]", "", title.lower())


def _listed_model(annotation: Any) -> type[BaseModel] | None:
    """The spec class of a ``list[Spec]`` field, else None."""
    if typing.get_origin(annotation) is list:
        (arg,) = typing.get_args(annotation) or (None,)
        return arg if isinstance(arg, type) and issubclass(arg, BaseModel) else None
    return None


def _type(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in typing.get_args(annotation))
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    text = re.sub(r"typing\.|raysweep\.[\w.]+\.", "", text)
    literal = re.fullmatch(r"Literal\[(.*)\]", text)
    if literal:  # an alias of a Literal (Method, Allocation, ...)
        return "one of " + ", ".join(f"`{a.strip(' ' + chr(39))}`" for a in literal[1].split(","))
    return f"`{text}`".replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except Exception:  # noqa: BLE001 - a factory that needs more than the schema
            return "computed"
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{json.dumps(value, default=str)}`"


def _bounds(field: FieldInfo) -> str:
    found = []
    for item in field.metadata:
        for kind, attr, text in _BOUNDS:
            if isinstance(item, kind):
                found.append(text.format(getattr(item, attr)))
    return ", ".join(found)


def _rows(
    model: type[BaseModel], prefix: str, nested: list[tuple[str, type[BaseModel]]]
) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        inner = _model_of(field.annotation)
        listed = _listed_model(field.annotation)
        if listed is not None:  # a list of specs (the mixes): their fields under key[]
            nested.append((f"{key}[]", listed))
        if inner is not None:
            nested.append((key, inner))
        what = " ".join(filter(None, [field.description, _bounds(field) and f"({_bounds(field)})"]))
        kind = _type(field.annotation)
        if inner is not None or listed is not None:
            target = key if inner is not None else f"{key}[]"
            kind = f"section: [{target}](#{_anchor(target)})"
        what = what.replace("|", "\\|")
        rows.append(f"| `{key}` | {kind} | {_default(field)} | {what} |")
    return rows


def markdown(root: type[BaseModel] | None = None) -> str:
    """The page: the top-level fields, then one table per section, in schema order."""
    if root is None:
        from raysweep.config import SweepConfig

        root = SweepConfig
    lines = ["# Configuration reference", "",
             "Generated from the schema (`python -m raysweep.config_reference`). A field is set "
             "in the YAML config under its section, or on the command line as "
             "`section.field=value`.", ""]  # fmt: skip
    queue: list[tuple[str, type[BaseModel]]] = [("", root)]
    seen: set[str] = set()
    while queue:
        key, model = queue.pop(0)
        if key in seen:
            continue
        seen.add(key)
        nested: list[tuple[str, type[BaseModel]]] = []
        rows = _rows(model, f"{key}." if key else "", nested)
        title = f"## {key}" if key else "## Top level"
        doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        lines += [title, "", *([doc, ""] if doc and key else []),
                  "| field | type | default | description |", "|---|---|---|---|", *rows, ""]  # fmt: skip
        queue += nested
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
