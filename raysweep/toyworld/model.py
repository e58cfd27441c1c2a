"""Where the trained toy models live (training them is :mod:`raysweep.toyworld.train`'s)."""

from __future__ import annotations

from pathlib import Path

TOY_MODEL_NAME = "raysweep-toy"
TOY_MOE_MODEL_NAME = "raysweep-toy-moe"
# Both read the same tokenizer and were trained on the same text stream.
TOY_MODEL_NAMES: tuple[str, ...] = (TOY_MODEL_NAME, TOY_MOE_MODEL_NAME)
_ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_MODEL_DIR = _ASSETS / TOY_MODEL_NAME
DEFAULT_MOE_MODEL_DIR = _ASSETS / TOY_MOE_MODEL_NAME


def toy_model_dir(name: str = TOY_MODEL_NAME) -> Path:
    """Where toy model ``name`` is: the shipped directory, or (in a stripped install) its place in
    the raysweep cache, where :func:`raysweep.toyworld.train.ensure_toy_model` trains it."""
    if name not in TOY_MODEL_NAMES:
        raise ValueError(f"unknown toy model {name!r}; known: {', '.join(TOY_MODEL_NAMES)}")
    shipped = _ASSETS / name
    if (shipped / "config.json").is_file():
        return shipped
    from raysweep.paths import cache_dir

    return cache_dir() / "toyworld" / name
