"""The model-generated rows of the source table (``self_cal``, ``sgs``, ``igsp``) and generated
sources built from YAML specs (``{generator: igsp, pool_factor: 4}``). Imports no torch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from raysweep.specs import GeneratedSourceSpec, source_spec

from .generators import GENERATORS, Sampling
from .sources import CalibrationSource


def generated_source(name: str, generator: Sampling, description: str = "") -> CalibrationSource:
    """A table row for a generator instance.

    ``offline`` is false only for SGS reading a Hub corpus (``auto`` means ``c4`` for real models).
    """
    return CalibrationSource(
        name=name,
        kind="generated",
        text_field=None,
        offline=generator.offline,
        description=description or generator.describe(),
        generator=generator,
    )


GENERATED_SOURCES: tuple[CalibrationSource, ...] = tuple(
    generated_source(name, cls()) for name, cls in GENERATORS.items()
)

_SPEC_META = tuple(GeneratedSourceSpec.model_fields)


def generated_source_from_spec(name: str, spec: Mapping[str, Any]) -> CalibrationSource:
    """A generated source from a YAML mapping: ``generator`` (``self_cal``, ``sgs`` or ``igsp``) plus
    any of that generator's knobs, e.g. ``{generator: igsp, pool_factor: 4, temperature: 0.8}``;
    ``description`` and ``dimension`` as for other sources."""
    typed = source_spec(name, spec)
    if not isinstance(typed, GeneratedSourceSpec):
        raise ValueError(f"calibration source {name!r}: a generated source names its generator")
    kind = typed.generator
    cls = GENERATORS[kind]
    knobs = {f.name for f in fields(cls)}
    unknown = sorted(set(typed.knobs) - knobs)
    if unknown:
        raise ValueError(
            f"calibration source {name!r}: unknown keys {', '.join(unknown)} for generator "
            f"{kind!r}; allowed: {', '.join([*_SPEC_META, *sorted(knobs)])}"
        )
    options = typed.knobs
    try:
        generator = cls(**options)
    except ValueError as err:
        raise ValueError(f"calibration source {name!r}: {err}") from None
    source = generated_source(name, generator, typed.description or "")
    if typed.dimension is not None:
        source = replace(source, dimension=typed.dimension)
    return source


__all__ = ["GENERATED_SOURCES", "generated_source", "generated_source_from_spec"]
