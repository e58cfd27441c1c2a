"""The search summary puts the confirmed best mix beside the uniform mix and the best single
source with paired intervals (analysis.paired over the run's per-item side files)."""

from __future__ import annotations

import numpy as np
import pytest

from raysweep.records import TrialRecord
from raysweep.search.driver import _paired, _write_summary, console_lines
from tests.analysis.items_fake import SUITE, FakeRun, draw

N = 150


def _run(tmp_path):
    rng = np.random.default_rng(8)
    run = FakeRun(tmp_path / "run", draw(rng, 0.9, N))
    latent = {t: rng.random(N) for t in SUITE}
    grid = []
    for seed in range(2):
        grid.append(run.add(draw(rng, 0.6, N, latent, 0.3), mix_name="uniform",
                            mix={"a": 0.5, "b": 0.5}, seed=seed))  # fmt: skip
        grid.append(run.add(draw(rng, 0.5, N, latent, 0.3), mix_name="a", seed=seed))
    best = run.add(draw(rng, 0.75, N, latent, 0.3), mix_name="search",
                   mix={"a": 0.8, "b": 0.2}, phase="confirm")  # fmt: skip
    as_records = [TrialRecord.model_validate(r) for r in grid]
    return run, TrialRecord.model_validate(best), as_records


def test_best_mix_against_uniform_and_best_single_source(tmp_path):
    run, best, grid = _run(tmp_path)
    paired = _paired(run.root, [best], grid, {"mix": {"a": 1.0}})
    assert set(paired) == {"uniform", "best_single_source"}
    for name, mix_name in (("uniform", "uniform"), ("best_single_source", "a")):
        total = paired[name]["quantities"]["total"]
        baseline = np.mean([r.total_retention for r in grid if r.mix_name == mix_name])
        assert total["difference"] == pytest.approx(best.total_retention - baseline, abs=1e-12)
        assert total["ci_low"] > 0 and total["p_positive"] == 1.0  # 0.75 vs 0.6 and 0.5
        assert paired[name]["trials_b"] == [best.trial_id] and len(paired[name]["trials_a"]) == 2
    summary = {"search": "wanda unstructured 0.6", "objective": "worst_retention", "n_trials": 3,
               "wall_s": 1.0, "storage": "sqlite:///x", "best_weights": {"a": 0.8, "b": 0.2},
               "best_value": 0.5, "search_suite": {"suite": "toy", "limit": 12},
               "search_suite_rows": {}, "full_suite_rows": {}, "paired": paired}  # fmt: skip
    _write_summary(tmp_path, [summary])
    md = (tmp_path / "summary.md").read_text()
    assert (
        "- paired, best mix − uniform mix (95% bootstrap interval over items and seeds): total +"
        in md
    )
    assert "- paired, best mix − best single source (95%" in md
    lines = console_lines(summary)
    assert any(
        line.startswith("[raysweep]   paired, best mix − uniform mix: total +") for line in lines
    )


def test_without_side_files_the_summary_says_why(tmp_path):
    run, best, grid = _run(tmp_path)
    run.side_file(best.model_dump()).unlink()
    paired = _paired(run.root, [best], grid, None)
    assert set(paired) == {"uniform"}
    assert "no usable per-item data for best mix" in paired["uniform"]["note"]
    summary = {"search": "s", "objective": "worst_retention", "best_weights": {}, "best_value": None,
               "full_suite_rows": {}, "paired": paired}  # fmt: skip
    assert any("paired, best mix − uniform mix: not compared: no usable" in line
               for line in console_lines(summary))  # fmt: skip
    assert _paired(run.root, [], grid, None) == {}


def test_a_search_over_seeds_compares_every_seed_of_the_best_mix(tmp_path):
    # search.seeds: one confirmation record per seed, each on the same items as the grid's.
    run, best, grid = _run(tmp_path)
    rng = np.random.default_rng(9)
    scores = draw(rng, 0.85, N)
    second = TrialRecord.model_validate(
        run.add(scores, mix_name="search", mix={"a": 0.8, "b": 0.2}, phase="confirm", seed=1)
    )
    paired = _paired(run.root, [best, second], grid, None)
    total = paired["uniform"]["quantities"]["total"]
    assert paired["uniform"]["trials_b"] == [best.trial_id, second.trial_id]
    mean_best = (best.total_retention + second.total_retention) / 2
    uniform = np.mean([r.total_retention for r in grid if r.mix_name == "uniform"])
    assert total["difference"] == pytest.approx(mean_best - uniform, abs=1e-12)
    # An errored confirmation is left out, not averaged in as zero.
    failed = second.model_copy(update={"status": "error"})
    alone = _paired(run.root, [best, failed], grid, None)
    assert alone["uniform"]["trials_b"] == [best.trial_id]
