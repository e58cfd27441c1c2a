"""The report's figure workers are spawned, never forked (the driver runs Ray's threads)."""

from __future__ import annotations

from pathlib import Path

import analysis.report as report


def _draw(n: int, *, path: Path) -> Path:
    return path


def test_figures_are_drawn_by_spawned_workers(monkeypatch, tmp_path):
    started: list[str] = []

    class Pool:
        def __init__(self, workers, mp_context):
            started.append(mp_context.get_start_method())

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, function, jobs):
            return map(function, jobs)

    monkeypatch.setattr(report, "ProcessPoolExecutor", Pool)
    jobs = [(_draw, (i,), tmp_path / f"{i}.png") for i in range(6)]
    assert report._render_figures(jobs, workers=2) == [tmp_path / f"{i}.png" for i in range(6)]
    assert started == ["spawn"]


def test_a_real_spawned_pool_draws_the_same_files(tmp_path):
    jobs = [(_draw, (i,), tmp_path / f"{i}.png") for i in range(4)]
    assert report._render_figures(jobs, workers=2) == [tmp_path / f"{i}.png" for i in range(4)]
