"""Several runs in one report: refused when they measure different things, side by side where
they share points, and grouped by run so that no statistic pools two runs."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis.__main__ import main
from analysis.runs import load_runs, overlapping, shared_points

SOURCES = ("a", "b", "c", "d", "e")
DIMS = ("general", "commonsense", "code", "math")


def _record(source: str, sparsity: float, shift: float, *, model="m", suite="toy", limit=40,
            **items):  # fmt: skip
    ret = {d: 0.5 + 0.05 * i + 0.02 * SOURCES.index(source) + shift for i, d in enumerate(DIMS)}
    return {
        "trial_id": f"{source}-{sparsity}", "sweep": "t", "phase": "grid", "status": "ok",
        "model": model, "method": "wanda", "structure": "unstructured", "sparsity": sparsity,
        "mix": {source: 1.0}, "mix_name": source, "n_samples": 8, "seqlen": 64, "seed": 0,
        "dimension_scores": {d: 0.9 * r for d, r in ret.items()},
        "dense_dimension_scores": dict.fromkeys(DIMS, 0.9), "retention": ret,
        "total_retention": sum(ret.values()) / 4, "worst_retention": min(ret.values()),
        "calib_metrics": {"perplexity": 10.0 + SOURCES.index(source)},
        "config": {"evaluation": {"suite": suite, "limit": limit}},
        **items,
    }  # fmt: skip


def _run(tmp_path, name, records):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_shared_points_side_by_side_with_the_difference(tmp_path):
    a = _run(tmp_path, "A", [_record(s, 0.5, 0.0) for s in SOURCES])
    # B repeats a and b at 0.5 (0.1 higher) and adds a sparsity A does not have.
    b = _run(tmp_path, "B", [_record(s, 0.5, 0.1) for s in "ab"] + [_record("c", 0.7, 0.0)])
    records, runs = load_runs([a, b])
    assert [r.name for r in runs] == ["A", "B"] and [r.ok for r in runs] == [5, 3]
    assert set(records.trials["run"]) == {"A", "B"} and len(records.trials) == 8
    assert overlapping(records)
    shared = shared_points(records, runs)
    assert list(shared["mix_name"]) == ["a", "b"]
    diff = shared["total_retention B − A"]
    assert diff.to_numpy() == pytest.approx([0.1, 0.1])
    expected = _record("a", 0.5, 0.0)["worst_retention"]
    assert shared["worst_retention A"].iloc[0] == pytest.approx(expected)


def test_the_command_compares_runs_and_groups_by_run(tmp_path, capsys, monkeypatch):
    a = _run(tmp_path, "A", [_record(s, 0.5, 0.0) for s in SOURCES])
    b = _run(tmp_path, "B", [_record(s, 0.5, 0.05) for s in SOURCES])
    monkeypatch.chdir(tmp_path)
    assert main([str(a), str(b), "--resamples", "99"]) == 0
    out = tmp_path / "compare-A-B"
    text = (out / "report.md").read_text()
    assert "## Runs compared" in text and "5 point(s) were run in more than one run" in text
    assert "groups: method, structure, sparsity, run" in text
    # One group per run, nothing pooled.
    assert "## Group wanda · unstructured · 50% · A" in text
    assert "## Group wanda · unstructured · 50% · B" in text
    assert (out / "figures" / "runs_shared.png").stat().st_size > 0
    shared = pd.read_csv(out / "runs_shared.csv")
    assert shared["total_retention B − A"].to_numpy() == pytest.approx([0.05] * 5)
    correlations = pd.read_csv(out / "correlations.csv")
    assert set(correlations["run"]) == {"A", "B"}
    assert "run A: 5/5 ok trials" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "field"),
    [({"model": "other"}, "model"), ({"suite": "fast"}, "suite"), ({"limit": 20}, "limit")],
)
def test_runs_that_measure_different_things_are_refused(tmp_path, capsys, change, field):
    a = _run(tmp_path, "A", [_record(s, 0.5, 0.0) for s in SOURCES])
    b = _run(tmp_path, "B", [_record(s, 0.5, 0.0, **change) for s in SOURCES])
    assert main([str(a), str(b), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot compare these runs: the runs differ in {field} (A: ")
    assert "--allow-mixed" in err and not (tmp_path / "r").exists()
    assert main([str(a), str(b), "--out", str(tmp_path / "r"), "--allow-mixed",
                 "--resamples", "99"]) == 0  # fmt: skip
    assert (tmp_path / "r" / "report.md").is_file()


def test_runs_on_other_items_are_refused(tmp_path):
    # A: records that do not say (lm-eval's first items); B, C: random subsets, two seeds.
    a = _run(tmp_path, "A", [_record(s, 0.5, 0.0) for s in SOURCES])
    b, c, d = (_run(tmp_path, name, [_record(s, 0.5, 0.0, item_selection="random", item_seed=seed)
                                     for s in SOURCES])
               for name, seed in (("B", 0), ("C", 1), ("D", 0)))  # fmt: skip
    with pytest.raises(ValueError, match=r"the runs differ in limit \(A: '40'; B: '40 \(random "
                       r"items, seed 0\)'\)"):  # fmt: skip
        load_runs([a, b])
    with pytest.raises(ValueError, match="differ in limit"):
        load_runs([b, c])
    assert [r.limit for r in load_runs([b, d])[1]] == ["40 (random items, seed 0)"] * 2
    first = _run(tmp_path, "E", [_record(s, 0.5, 0.0, item_selection="first") for s in SOURCES])
    assert [r.limit for r in load_runs([a, first])[1]] == ["40", "40"]


def test_runs_with_the_same_directory_name_are_told_apart(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = _run(tmp_path / "x", "run", [_record(s, 0.5, 0.0) for s in SOURCES])
    b = _run(tmp_path / "y", "run", [_record(s, 0.7, 0.0) for s in SOURCES])
    records, runs = load_runs([a, b])
    assert [r.name for r in runs] == ["x/run", "y/run"]
    assert not overlapping(records) and shared_points(records, runs).empty


def test_two_runs_of_different_sparsities_make_one_report_covering_both(tmp_path):
    a = _run(tmp_path, "A", [_record(s, 0.5, 0.0) for s in SOURCES])
    b = _run(tmp_path, "B", [_record(s, 0.7, -0.1) for s in SOURCES])
    assert main([str(a), str(b), "--out", str(tmp_path / "r"), "--resamples", "99"]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    assert "The runs share no point" in text
    assert "## Group wanda · unstructured · 50%" in text
    assert "## Group wanda · unstructured · 70%" in text
    retention = pd.read_csv(tmp_path / "r" / "retention.csv")
    assert retention.groupby("run")["sparsity"].unique().to_dict().keys() == {"A", "B"}
    assert sorted(retention["sparsity"].unique()) == [0.5, 0.7]
