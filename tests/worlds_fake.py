"""A third-party world for tests/test_worlds.py, registered as an entry point would be."""

from __future__ import annotations

from dataclasses import dataclass

from raysweep.worlds import World


@dataclass(frozen=True)
class _Source:
    name: str
    dimension: str | None
    description: str

    def texts(self, seed: int):
        yield f"seed {seed}: the fake world's only document"


def _suite():
    from raysweep.evaluation import Suite, TaskSpec

    return Suite(name="fake", tasks=(TaskSpec("arc_easy", "commonsense", "acc", 0, 0.25),))


def world() -> World:
    return World(
        name="fake",
        models={"fake-model": lambda name: f"/models/{name}"},
        prefix_sources={"fake-model": "fake_text"},
        text_sources=lambda: [_Source("fake_text", "general", "a fake source")],
        suites={"fake": _suite},
        perplexity_corpora={"fake": lambda: ["held out"]},
    )
