"""Typed specs of what a config may define inline: custom calibration sources and suites.

pydantic models with ``extra="forbid"``, importing nothing heavy (no torch, no lm-eval): the
sweep schema (:mod:`raysweep.config`) validates ``calibration.custom_sources`` and an inline
``evaluation.suite`` / ``search.suite`` with them, and the builders
(:func:`raysweep.calibration.source_from_spec`, :func:`raysweep.evaluation.suite_from_mapping`)
read the same models, so the keys, defaults and checks of a spec live here alone.

The config keeps the mappings as written (a trial's id hashes them); these models check them.
A generated source's knobs (``temperature``, ``pool_factor``, ...) are its generator's fields and
are checked by the generator itself (``raysweep.calibration.generators``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from raysweep.names import DIMENSIONS

GeneratorName = Literal["self_cal", "sgs", "igsp"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _dimension(value: Any, what: str) -> Any:
    if value is not None and value not in DIMENSIONS:
        raise ValueError(f"{what} must be one of {', '.join(DIMENSIONS)}, got {value!r}")
    return value


class TextSourceSpec(_Spec):
    """A source of text: a local ``path``, a Hub ``dataset`` (with its loading options), or a
    preset to start from (``based_on``) with the keys given overriding it."""

    based_on: str | None = None
    path: str | None = None
    dataset: str | None = None
    config: str | list[str] | None = None
    split: str | None = None
    revision: str | None = None
    data_files: str | list[str] | None = None
    data_dir: str | None = None
    streaming: bool | None = None
    text_field: str | None = None
    template: str | None = Field(None, description="str.format over row fields")
    contiguous: bool | None = None
    dimension: str | None = None
    offline: bool | None = None
    description: str | None = None

    @field_validator("dimension")
    @classmethod
    def _dim(cls, v: Any) -> Any:
        return _dimension(v, "dimension")

    @model_validator(mode="after")
    def _one_origin(self) -> TextSourceSpec:
        if self.path is not None and (self.dataset is not None or self.based_on is not None):
            raise ValueError("give either path or dataset/based_on")
        if self.template is not None and self.text_field is not None:
            raise ValueError("give either text_field or template")
        if self.path is None and self.dataset is None and self.based_on is None:
            raise ValueError("give path, dataset or based_on")
        return self


class GeneratedSourceSpec(BaseModel):
    """A model-generated source: ``generator`` plus any of that generator's knobs."""

    model_config = ConfigDict(extra="allow")

    generator: GeneratorName
    dimension: str | None = None
    description: str | None = None

    @field_validator("dimension")
    @classmethod
    def _dim(cls, v: Any) -> Any:
        return _dimension(v, "dimension")

    @property
    def knobs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TaskEntry(_Spec):
    """One task of an inline suite (see :class:`raysweep.evaluation.TaskSpec`)."""

    name: str = Field(min_length=1)
    dimension: str
    metric: str = "acc"
    num_fewshot: int | None = Field(0, ge=0)
    chance: float = Field(ge=0.0, lt=1.0)
    limit: int | None = Field(None, gt=0)
    unsafe_code: bool = False
    size: int | None = Field(
        None,
        gt=0,
        description="items lm-eval evaluates, when known (a limit at or above it cuts "
        "nothing); checked against the task when it is scored",
    )
    max_gen_toks: int | None = Field(
        None,
        gt=0,
        description="generation budget in tokens of a generate_until task, replacing the "
        "task's own (lm-eval's --gen_kwargs max_gen_toks=N); None keeps the task's",
    )

    @field_validator("dimension", mode="before")
    @classmethod
    def _dim(cls, v: Any) -> Any:
        v = str(v).lower()
        if v not in DIMENSIONS:
            raise ValueError(f"unknown dimension {v!r}; expected one of {', '.join(DIMENSIONS)}")
        return v


class SuiteSpec(_Spec):
    """An inline suite: its tasks, an optional folder of task YAMLs and a perplexity corpus."""

    name: str = "custom"
    tasks: list[TaskEntry] = Field(min_length=1)
    include_path: str | None = None
    perplexity_corpus: str = "wikitext2"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where ``loc`` (without its last part) points inside ``model``."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[str(part)].annotation
        inner = getattr(annotation, "__args__", None) or (annotation,)
        found = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if not found:
            return []
        model = found[0]
    return list(model.model_fields)


def describe(err: ValidationError, model: type[BaseModel] | None = None) -> str:
    """A spec's validation errors as one line: ``where: what`` for each."""
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            allowed = _fields_at(model, e["loc"]) if model is not None else []
            listed = f"; allowed: {', '.join(allowed)}" if allowed else ""
            parts.append(f"unknown key {where!r}{listed}")
        elif e["type"] == "missing":
            parts.append(f"{where} is required")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def source_spec(name: str, spec: Mapping[str, Any]) -> TextSourceSpec | GeneratedSourceSpec:
    """The typed spec of custom source ``name``; ValueError naming the source otherwise."""
    model = GeneratedSourceSpec if "generator" in spec else TextSourceSpec
    try:
        return model.model_validate(dict(spec))
    except ValidationError as err:
        raise ValueError(f"calibration source {name!r}: {describe(err, model)}") from None


def suite_spec(spec: Mapping[str, Any]) -> SuiteSpec:
    """The typed spec of an inline suite; ValueError naming the suite otherwise."""
    try:
        return SuiteSpec.model_validate(dict(spec))
    except ValidationError as err:
        name = str(spec.get("name", "custom"))
        raise ValueError(f"suite {name!r}: {describe(err, SuiteSpec)}") from None
