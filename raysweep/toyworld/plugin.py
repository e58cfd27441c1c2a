"""The toy world's registration with raysweep: its entry point in the ``raysweep.worlds`` group.

``pyproject.toml`` declares ``toy = "raysweep.toyworld.plugin:world"``; raysweep's core finds the
toy models (``raysweep-toy``, ``raysweep-toy-moe``, ``raysweep-toy-hybrid``), the ``toy_*``
sources, the ``toy`` suite and the ``toy`` perplexity corpus only through it (see
:mod:`raysweep.worlds`). Importing this module is cheap: the builders import what they need when
called.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

from raysweep.toyworld.model import TOY_MODEL_NAME, TOY_MODEL_NAMES
from raysweep.worlds import World

# Seed of the toy generators' held-out stream; calibration seeds are small integers.
HELDOUT_SEED = 1_000_003
HELDOUT_DOCS_PER_SOURCE = 32
# SGS prompts the toy models with the prefixes of a toy source (offline, no Hub corpus).
PREFIX_SOURCE = "toy_web"


def world() -> World:
    return World(
        name="toy",
        models=dict.fromkeys(TOY_MODEL_NAMES, _model),
        prefix_sources=dict.fromkeys(TOY_MODEL_NAMES, PREFIX_SOURCE),
        text_sources=_sources,
        suites={"toy": toy_suite, "toy_generative": _generative_suite},
        perplexity_corpora={"toy": heldout_documents},
        default_tokenizer=lambda: _model(TOY_MODEL_NAME),
        commands={
            "train": ("raysweep.toyworld.train", "train a toy model (--moe, --hybrid)"),
            "tradeoff": ("raysweep.toyworld.tradeoff", "the toy world's calibration trade-off"),
        },
    )


def _model(name: str) -> Path:
    from raysweep.toyworld.train import ensure_toy_model

    return ensure_toy_model(name)


def _sources() -> tuple[Any, ...]:
    from raysweep.toyworld.sources import TOY_SOURCES

    return TOY_SOURCES


def toy_suite() -> Any:
    """The ``toy`` suite: the toy task table, its files written where the suite names them on
    first use by lm-eval (``Suite.write_tasks``), so that naming the suite writes nothing."""
    from raysweep.evaluation.dimensions import Suite, TaskSpec
    from raysweep.paths import cache_dir
    from raysweep.toyworld.tasks import ITEMS_PER_TASK, TOY_TASKS, ensure_toy_tasks, tasks_digest

    # ensure_toy_tasks' own default root, planned without creating it.
    root = (cache_dir(create=False) / "toyworld" / f"tasks-{tasks_digest()}").resolve()
    specs = tuple(TaskSpec(t.name, t.dimension, t.metric, 0, t.chance, size=ITEMS_PER_TASK)
                  for t in TOY_TASKS)  # fmt: skip
    return Suite(name="toy", tasks=specs, include_path=str(root), perplexity_corpus="toy",
                 write_tasks=ensure_toy_tasks)  # fmt: skip


def _generative_suite() -> Any:
    from raysweep.toyworld.gentasks import toy_generative_suite

    return toy_generative_suite()


def heldout_documents() -> list[str]:
    """The ``toy`` perplexity corpus: the first documents of every domain source's held-out
    stream (a seed no calibration draw uses)."""
    from raysweep.toyworld.sources import TOY_SOURCES

    docs: list[str] = []
    for source in TOY_SOURCES:
        if source.dimension is None:
            continue
        docs.extend(islice(source.texts(HELDOUT_SEED), HELDOUT_DOCS_PER_SOURCE))
    return docs
