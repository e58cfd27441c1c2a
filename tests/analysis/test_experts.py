"""Expert coverage of MoE calibration sets in the report."""

from __future__ import annotations

import json

import numpy as np

from analysis import load_records, write_report
from analysis.experts import coverage_table, expert_loads
from tests.analysis.test_report import png_size

SOURCES = ("prose", "code", "math", "web", "qa")


def _record(source: str, seed: int, sparsity: float, tokens: np.ndarray) -> dict:
    coverage = float((tokens >= 16).mean())
    retention = {d: 0.5 + 0.4 * coverage + 0.01 * seed for d in ("general", "code")}
    return {
        "trial_id": f"{source}-{seed}-{sparsity}", "sweep": "moe", "phase": "grid",
        "status": "ok", "model": "toy-moe", "method": "wanda", "structure": "unstructured",
        "sparsity": sparsity, "mix": {source: 1.0}, "mix_name": source, "n_samples": 8,
        "seqlen": 32, "seed": seed, "retention": retention,
        "total_retention": sum(retention.values()) / 2, "worst_retention": min(retention.values()),
        "calib_metrics": {"expert_coverage": coverage, "perplexity": 10.0 + seed + len(source)},
        "expert_tokens": tokens.tolist(), "config": {"min_expert_tokens": 16},
    }  # fmt: skip


def _records(tmp_path):
    lines = []
    for k, source in enumerate(SOURCES):
        for seed in (0, 1):
            tokens = np.full((2, 4), 40 + seed)
            tokens[1, : k % 4] = seed  # source k leaves k experts of layer 1 uncovered
            for sparsity in (0.5, 0.7):
                lines.append(json.dumps(_record(source, seed, sparsity, tokens)))
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_loads_are_per_source_and_averaged_over_seeds(tmp_path):
    loads = {load.source: load for load in expert_loads(load_records(_records(tmp_path)))}
    assert set(loads) == set(SOURCES)
    code = loads["code"]  # k = 1: one expert of layer 1 uncovered
    assert code.seeds == 2 and code.min_tokens == 16
    assert code.tokens[0, 0] == 40.5 and code.tokens[1, 0] == 0.5
    assert code.uncovered == [(1, 0)]
    assert code.coverage == 7 / 8
    table = coverage_table(list(loads.values()))
    row = table[table["source"] == "web"].iloc[0]
    assert row["uncovered experts"] == "L1:E0, L1:E1, L1:E2"
    assert table[table["source"] == "prose"].iloc[0]["uncovered experts"] == "none"


def test_report_has_the_coverage_section_and_figure(tmp_path):
    files = write_report(_records(tmp_path), tmp_path / "report", n_resamples=99)
    text = files.report_md.read_text()
    assert "## Expert coverage (mixture-of-experts)" in text
    assert "L1:E0, L1:E1, L1:E2" in text
    assert "expert_coverage" in text.split("## Expert coverage")[1]
    figure = files.out_dir / "figures" / "experts_load.png"
    assert figure in files.figures
    width, height = png_size(figure)
    assert width > 200 and height > 100


def test_dense_models_have_no_coverage_section(tmp_path):
    path = _records(tmp_path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for record in lines:
        del record["expert_tokens"]
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    assert expert_loads(load_records(path)) == []
    files = write_report(path, tmp_path / "report", n_resamples=99)
    assert "Expert coverage" not in files.report_md.read_text()
