"""Plug-in worlds: named models, calibration sources, suites and perplexity corpora from packages.

A *world* is what a package adds to raysweep without editing it: model names that resolve to a
local directory (built on first use if need be), offline calibration text sources, lm-eval suites,
held-out perplexity corpora, and the prefix source SGS reads for its models. raysweep's own toy
world is one (``raysweep/toyworld/plugin.py``); the core names none of them.

A package registers a world under the entry point group ``raysweep.worlds``; the entry point is
a :class:`World` or a function returning one::

    [project.entry-points."raysweep.worlds"]
    toy = "raysweep.toyworld.plugin:world"

Worlds are loaded once per process, on first use. One that fails to load is left out and its
error kept in :attr:`Registry.errors` (the source table and suite lookup quote it), so a broken
plug-in never breaks sweeps that do not use it.

Entry points are package metadata, written by ``pip install`` (``pip install -e .`` for a
checkout). When raysweep is imported from a source tree whose installed metadata is older than
its ``pyproject.toml`` (a checkout on ``PYTHONPATH`` beside another editable install), the
``raysweep.worlds`` entry points declared in that ``pyproject.toml`` are read too.

Dependency-free: this module imports nothing of raysweep, so any module may use it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

GROUP = "raysweep.worlds"

__all__ = ["GROUP", "Registry", "World", "load", "registry"]


@dataclass(frozen=True)
class World:
    """What one plug-in adds. Every field is optional; builders are called on first use.

    - ``models``: model name (as written in ``model.path``) -> ``resolve(name)``, returning the
      local directory of that model (it may build or download it).
    - ``prefix_sources``: model name -> the source SGS draws its prompt prefixes from for that
      model (``prefix_source: auto``).
    - ``text_sources``: returns offline text sources, objects with ``name``, ``dimension``,
      ``description`` and ``texts(seed) -> Iterator[str]``.
    - ``suites``: suite name -> a builder returning a :class:`raysweep.evaluation.Suite`.
    - ``perplexity_corpora``: corpus name -> a builder returning the corpus' documents.
    - ``default_tokenizer``: returns a tokenizer path for tools that need one when none is
      given (``python -m raysweep.calibration --inspect``).
    - ``commands``: ``raysweep <command>`` name -> (module whose ``main(argv)`` runs it, one line
      saying what it does): the world's own tools (the toy world's ``train`` and ``tradeoff``).
    """

    name: str
    models: Mapping[str, Callable[[str], str | Path]] = field(default_factory=dict)
    prefix_sources: Mapping[str, str] = field(default_factory=dict)
    text_sources: Callable[[], Iterable[Any]] | None = None
    suites: Mapping[str, Callable[[], Any]] = field(default_factory=dict)
    perplexity_corpora: Mapping[str, Callable[[], list[str]]] = field(default_factory=dict)
    default_tokenizer: Callable[[], str | Path] | None = None
    commands: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class Registry:
    """The worlds loaded in this process, and why any failed to load."""

    worlds: list[World] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def model_path(self, name: str) -> str | None:
        """The local directory of a world's model called ``name``, or None if no world has it."""
        for world in self.worlds:
            if name in world.models:
                return str(world.models[name](name))
        return None

    def prefix_source(self, model_name: str) -> str | None:
        for world in self.worlds:
            if model_name in world.prefix_sources:
                return world.prefix_sources[model_name]
        return None

    def text_sources(self) -> list[Any]:
        """Every world's text sources; a world whose sources fail to build adds an error."""
        out: list[Any] = []
        for world in self.worlds:
            if world.text_sources is None:
                continue
            try:
                out.extend(world.text_sources())
            except Exception as exc:  # noqa: BLE001 - a broken plug-in must not break the table
                self.errors.append(f"world {world.name!r}: its sources failed to load: {exc!r}")
        return out

    def suite_builders(self) -> dict[str, Callable[[], Any]]:
        out: dict[str, Callable[[], Any]] = {}
        for world in self.worlds:
            for name, build in world.suites.items():
                out.setdefault(name, build)
        return out

    def corpus(self, name: str) -> Callable[[], list[str]] | None:
        for world in self.worlds:
            if name in world.perplexity_corpora:
                return world.perplexity_corpora[name]
        return None

    def corpus_names(self) -> list[str]:
        return [n for w in self.worlds for n in w.perplexity_corpora]

    def default_tokenizer(self) -> str | None:
        for world in self.worlds:
            if world.default_tokenizer is not None:
                return str(world.default_tokenizer())
        return None

    @property
    def error(self) -> str | None:
        """The load errors as one line, or None."""
        return "; ".join(self.errors) if self.errors else None


def _declared_in_source_tree() -> list[metadata.EntryPoint]:
    """Entry points of ``GROUP`` in the ``pyproject.toml`` beside this package, if raysweep runs
    from a source tree (see the module docstring); else none."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text())["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return []
    if project.get("name") != "raysweep":
        return []
    group = project.get("entry-points", {}).get(GROUP, {})
    return [metadata.EntryPoint(name, value, GROUP) for name, value in group.items()]


def entry_points() -> list[metadata.EntryPoint]:
    """The installed entry points of ``GROUP``, then those only the source tree declares."""
    installed = list(metadata.entry_points(group=GROUP))
    names = {ep.name for ep in installed}
    return installed + [ep for ep in _declared_in_source_tree() if ep.name not in names]


def load(points: Iterable[metadata.EntryPoint] | None = None) -> Registry:
    """Load the worlds of ``points`` (default: :func:`entry_points`)."""
    out = Registry()
    for ep in entry_points() if points is None else points:
        try:
            value = ep.load()
            world = value() if callable(value) and not isinstance(value, World) else value
            if not isinstance(world, World):
                raise TypeError(f"expected a raysweep.worlds.World, got {type(world).__name__}")
        except Exception as exc:  # noqa: BLE001 - reported, not raised: see the module docstring
            out.errors.append(f"world {ep.name!r} ({ep.value}) failed to load: {exc!r}")
            continue
        out.worlds.append(world)
    return out


_REGISTRY: Registry | None = None


def registry() -> Registry:
    """The worlds of this process, loaded on first call."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = load()
    return _REGISTRY
