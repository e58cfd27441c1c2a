"""The search phase end to end on the toy world: grid, one-shot search, confirm, summary."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from raysweep.config import validate_config
from raysweep.planning import search_points, trial_points
from raysweep.records import read_records
from raysweep.search.space import baseline_points
from tests.side_files import assert_side_files

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SOURCES = ["toy_general_prose", "toy_math_word"]


def _config(out: Path, *, evaluation: dict, search: dict):  # noqa: ANN202
    """A toy sweep at Wanda 0.7 over two sources (and their uniform mix), small and fast."""
    return validate_config({
        "name": "s", "output_dir": str(out),
        "model": {"path": "raysweep-toy", "device": "cpu"},
        "calibration": {"sources": SOURCES, "uniform_mix": True, "n_samples": 8, "seqlen": 64},
        "pruning": {"methods": ["wanda"], "sparsities": [0.7]},
        "evaluation": {"suite": "toy", "batch_size": 32, "max_length": 256, **evaluation},
        "search": search,
        "ray": {"max_failures": 1, "dashboard": False},
        "analysis": False,
    })  # fmt: skip


def test_search_after_grid_confirms_the_best_mix_and_writes_the_summary(ray_local, tmp_path,
                                                                        capsys):  # fmt: skip
    import torch
    from transformers import AutoModelForCausalLM

    from raysweep.run import run_sweep

    out = tmp_path / "run"
    cfg = _config(out, evaluation={"limit": 24, "perplexity": True},
                  search={"n_trials": 5, "max_concurrent": 2, "limit": 12,
                          "reference": "toy_math_word", "save_best": True})  # fmt: skip
    assert run_sweep(cfg, trial_points(cfg), mode="all") == 0

    recs = read_records(out / "records.jsonl").records
    by_phase: dict[str, list] = {}
    for r in recs:
        by_phase.setdefault(r.phase, []).append(r)
    assert {r.mix_name for r in by_phase["grid"]} == {*SOURCES, "uniform"}
    search = by_phase["search"]
    assert len(search) == 5 and all(r.status == "ok" for r in search)
    # Search trials: one-shot statistics, the search's item limit, no held-out perplexity.
    assert all(r.config["mode"] == "oneshot" and r.config["evaluation"]["limit"] == 12
               and r.perplexity == {} for r in search)  # fmt: skip
    (summary,) = json.loads((out / "search" / "summary.json").read_text())
    # The baselines come first in the study's own trial order: the uniform mix, then each single
    # source. (Start times cannot tell: with two trials at a time, a baseline and the first
    # proposal may start in the same second.)
    (study_name,) = optuna.get_all_study_names(summary["storage"])
    study = optuna.load_study(study_name=study_name, storage=summary["storage"])
    first = sorted(study.trials, key=lambda t: t.number)[:3]
    assert [t.params for t in first] == baseline_points(SOURCES)
    assert {*SOURCES, "equal_sources"} <= {r.mix_name for r in search}
    inside = summary["search_suite_rows"]
    best = max(search, key=lambda r: r.worst_retention)
    assert inside["best_mix"]["worst_retention"] == pytest.approx(best.worst_retention)
    for baseline in ("equal_sources", "best_single_source", "reference"):
        assert inside["best_mix"]["worst_retention"] >= inside[baseline]["worst_retention"]
    # The confirmation is a full sequential trial on the sweep's suite; when the best mix is a
    # baseline the grid already ran that exact trial, and it is not run twice.
    confirmed = summary["full_suite_rows"]["best_mix"]
    (confirm,) = [r for r in recs if r.phase != "search" and r.mix == confirmed["mix"]]
    assert confirm.phase == ("grid" if confirm.mix_name in (*SOURCES, "uniform") else "confirm")
    assert confirm.config["mode"] == "sequential" and confirm.config["evaluation"]["limit"] == 24
    assert confirm.perplexity and confirm.status == "ok"
    assert confirm.worst_retention == pytest.approx(confirmed["worst_retention"])
    assert summary["full_suite_rows"]["reference"]["mix"] == {"toy_math_word": 1.0}
    assert summary["n_trials"] == 5
    assert {k for k, v in summary["best_weights"].items() if v > 0} == set(confirm.mix)
    md = (out / "search" / "summary.md").read_text()
    assert "best mix" in md and "uniform mix (equal weight per dimension)" in md
    assert "equal weight per source" in md and "toy_math_word" in md
    assert Path(summary["storage"].removeprefix("sqlite:///")).exists()
    # Every ok trial of every phase has its side file; the search's own suite (its item limit)
    # has its own dense baseline, and side file, beside the grid's.
    assert_side_files(out, recs)
    assert len({r.dense_cache_key for r in recs}) == 2
    assert len(list((out / "items").glob("dense-*.json"))) == 2

    # The console names the best mix and its confirmed score beside the baselines.
    console = capsys.readouterr().out
    assert (
        "search-wanda-unstructured-0.7 5/5 done" in console and ", best worst_retention" in console
    )
    weights = ", ".join(f"{k} {v:.3f}" for k, v in summary["best_weights"].items() if v > 0)
    assert f"[raysweep] wanda unstructured 0.7: best mix {weights}; worst_retention" in console
    assert (
        f"confirmed on the full suite, worst_retention: best mix {confirm.worst_retention:.3f}"
        in console
    )
    # search.save_best: the confirmed point's pruned model, loadable, with its recipe card.
    saved = out / "search" / "best-wanda-unstructured-0.7"
    assert summary["saved"] == str(saved) and f"pruned model saved in {saved}" in console
    card = json.loads((saved / "raysweep_prune.json").read_text())
    assert card["trial_id"] == confirm.trial_id and card["calibration"]["mix"] == confirm.mix
    assert card["pruning"]["achieved_sparsity"] == pytest.approx(confirm.achieved_sparsity)
    model = AutoModelForCausalLM.from_pretrained(saved, dtype=torch.float32)
    mlp = model.model.layers[0].mlp.down_proj.weight  # (hidden, ffn)
    # Wanda prunes a whole number of weights per output row: floor(0.7 x ffn) of ffn.
    pruned_share = int(0.7 * mlp.shape[1]) / mlp.shape[1]
    assert (mlp == 0).float().mean().item() == pytest.approx(pruned_share, abs=1e-6)
    assert not any(p.name.startswith(".") for p in saved.parent.iterdir())  # no staging left
    # A rerun resumes: nothing new to run, and the saved model is kept, not made again.
    stamp = (saved / "raysweep_prune.json").stat().st_mtime_ns
    assert run_sweep(cfg, trial_points(cfg), mode="all") == 0
    assert "best mix already saved in" in capsys.readouterr().out
    assert (saved / "raysweep_prune.json").stat().st_mtime_ns == stamp


def test_a_search_over_two_seeds_reports_their_mean_and_confirms_each(ray_local, tmp_path,
                                                                      capsys):  # fmt: skip
    import optuna

    from raysweep.run import run_sweep
    from raysweep.search.driver import study_name
    from raysweep.search.objectives import objective_value

    out = tmp_path / "run"
    cfg = _config(out, evaluation={"limit": 12, "perplexity": False},
                  search={"n_trials": 3, "max_concurrent": 2, "limit": 8, "seeds": [0, 1]})  # fmt: skip
    assert run_sweep(cfg, trial_points(cfg), mode="search") == 0

    recs = read_records(out / "records.jsonl").records
    search = [r for r in recs if r.phase == "search"]
    # 3 proposals (the two sources and their equal mix), each pruned with seeds 0 and 1: six
    # ordinary records, on the search's random 8 items of each task.
    assert len(search) == 6 and all(r.status == "ok" for r in search)
    by_mix: dict[str, list] = {}
    for r in search:
        by_mix.setdefault(json.dumps(sorted(r.mix.items())), []).append(r)
    assert len(by_mix) == 3 and all(sorted(r.seed for r in g) == [0, 1] for g in by_mix.values())
    assert all((r.item_selection, r.item_seed) == ("random", 0) for r in search)
    # The two seeds prune differently: the objective Optuna was told is their mean.
    assert any(g[0].task_scores != g[1].task_scores for g in by_mix.values())
    (base,) = search_points(cfg)
    study = optuna.load_study(study_name=study_name(cfg, base),
                              storage=f"sqlite:///{out / 'search' / 'optuna.db'}")  # fmt: skip
    means = sorted(sum(objective_value(r.model_dump(), "worst_retention") for r in g) / 2
                   for g in by_mix.values())  # fmt: skip
    assert sorted(t.value for t in study.trials) == pytest.approx(means)
    # The best mix is confirmed with each seed, on the sweep's suite; the summary's rows are
    # means over the seeds.
    (summary,) = json.loads((out / "search" / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["best_value"] == pytest.approx(max(means))
    assert summary["search_suite_rows"]["best_mix"]["objective"] == pytest.approx(max(means))
    confirms = [r for r in recs if r.phase == "confirm"]
    assert sorted(r.seed for r in confirms) == [0, 1]
    assert all(r.config["evaluation"]["limit"] == 12 and r.config["mode"] == "sequential"
               and r.status == "ok" for r in confirms)  # fmt: skip
    confirmed = summary["full_suite_rows"]["best_mix"]
    assert confirmed["seeds"] == [0, 1]
    assert confirmed["worst_retention"] == pytest.approx(
        sum(r.worst_retention for r in confirms) / 2
    )
    # Beside each mean, its range over the seeds: the noise a margin has to beat.
    worst = [r.worst_retention for r in confirms]
    assert confirmed["seed_range"]["worst"] == pytest.approx(max(worst) - min(worst))
    assert confirmed["seed_range"]["total"] == pytest.approx(
        max(r.total_retention for r in confirms) - min(r.total_retention for r in confirms)
    )
    md = (out / "search" / "summary.md").read_text()
    cell = f"{confirmed['worst_retention']:.3f} ±{(max(worst) - min(worst)) / 2:.3f} |"
    assert any(line.startswith("| best mix |") and line.endswith(cell) for line in md.splitlines())
    assert_side_files(out, recs)
    console = capsys.readouterr().out
    assert "each the mean over seeds [0, 1]" in console
    assert (
        "confirmed on the full suite, worst_retention (mean over seeds 0, 1): best mix" in console
    )
    assert "Each row is the mean over calibration seeds 0, 1, ± half its range over them." in md
