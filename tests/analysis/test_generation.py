"""Generation length and truncation by sparsity in the report, from records of generative tasks."""

from __future__ import annotations

import json

import pytest

from analysis import load_records, write_report
from analysis.generation import generation_table
from tests.analysis.test_report import png_size

SOURCES = ("prose", "code", "math")


def _record(source: str, sparsity: float, tokens: float | None) -> dict:
    retention = {d: 1.0 - sparsity / 2 for d in ("general", "code", "math")}
    generated = {} if tokens is None else {
        "generated_tokens": {"toy_math_gen": tokens + SOURCES.index(source)},
        "dense_generated_tokens": {"toy_math_gen": 24.0},
        "truncated_share": {"toy_math_gen": sparsity / 2},
    }  # fmt: skip
    return {
        "trial_id": f"{source}-{sparsity}", "sweep": "gen", "phase": "grid", "status": "ok",
        "model": "toy", "method": "wanda", "structure": "unstructured", "sparsity": sparsity,
        "mix": {source: 1.0}, "mix_name": source, "n_samples": 8, "seqlen": 32, "seed": 0,
        "retention": retention, "total_retention": 1.0 - sparsity / 2,
        "worst_retention": 1.0 - sparsity / 2,
        "calib_metrics": {"perplexity": 10.0 + len(source) + sparsity}, **generated,
        "task_scores": {"toy_math_gen": 0.8 - sparsity, "toy_math_word": 0.9 - sparsity / 2},
        "dense_task_scores": {"toy_math_gen": 0.8, "toy_math_word": 0.9},
    }  # fmt: skip


def _records(tmp_path, with_generation: bool = True):
    lines = [
        json.dumps(_record(s, sp, 20.0 + 20 * sp if with_generation else None))
        for s in SOURCES
        for sp in (0.5, 0.7)
    ]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_table_averages_trials_per_sparsity_with_the_dense_length_at_zero(tmp_path):
    table = generation_table(load_records(_records(tmp_path)))
    assert table["sparsity"].tolist() == [0.0, 0.5, 0.7]
    assert table["trials"].tolist() == [0, 3, 3]
    # Sources add 0, 1, 2 tokens: the mean adds 1.
    assert table["mean_tokens"].tolist() == pytest.approx([24.0, 31.0, 35.0])
    assert table["truncated_share"].tolist()[1:] == pytest.approx([0.25, 0.35])
    assert table["truncated_share"].isna().tolist() == [True, False, False]


def test_task_retention_sets_generated_tasks_beside_log_likelihood_ones(tmp_path):
    from analysis.generation import task_retention_table

    table = task_retention_table(load_records(_records(tmp_path)))
    gen = table[table["task"] == "toy_math_gen"]
    assert gen["scored by"].unique().tolist() == ["generation"]
    assert gen["retention"].tolist() == pytest.approx([0.3 / 0.8, 0.1 / 0.8])
    word = table[table["task"] == "toy_math_word"]
    assert word["scored by"].unique().tolist() == ["log-likelihood"]
    assert word["retention"].tolist() == pytest.approx([0.65 / 0.9, 0.55 / 0.9])
    plain = tmp_path / "plain"
    plain.mkdir()
    assert task_retention_table(load_records(_records(plain, False))).empty


def test_report_shows_generation_only_when_recorded(tmp_path):
    files = write_report(_records(tmp_path), tmp_path / "report", n_resamples=99)
    text = files.report_md.read_text()
    assert "## Generation length by sparsity" in text
    assert "| wanda | generation | toy_math_gen | 37.5 | 12.5 |" in text
    figure = files.out_dir / "figures" / "generation_sparsity.png"
    assert figure in files.figures and png_size(figure)[0] > 300
    plain = tmp_path / "plain"
    plain.mkdir()
    files = write_report(_records(plain, False), plain / "report", n_resamples=99)
    assert "Generation length" not in files.report_md.read_text()
