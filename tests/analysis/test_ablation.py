"""analysis.ablation: the share of a full prune's retention loss that a partial prune (some
modules kept dense by ``pruning.ignore``) loses, on hand-written records whose shares are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.__main__ import main
from analysis.ablation import MIN_LOSS, ablation, summary

DIMS = ("general", "commonsense", "code", "math")


def _run(root, retentions: dict[str, dict[str, float]], ignore=(), seeds=(0,), model="m",
         mixes=None):  # fmt: skip
    """One ok grid record per (choice, seed) with the given per-dimension retention."""
    mixes = mixes or {}
    root.mkdir(parents=True)
    with open(root / "records.jsonl", "w") as handle:
        for seed in seeds:
            for name, ret in retentions.items():
                handle.write(json.dumps({
                    "trial_id": f"{name}-{seed}", "phase": "grid", "status": "ok",
                    "model": model, "method": "wanda", "structure": "unstructured",
                    "sparsity": 0.5, "mix_name": name, "mix": mixes.get(name, {name: 1.0}),
                    "seed": seed,
                    "retention": ret, "total_retention": float(np.mean(list(ret.values()))),
                    "worst_retention": min(ret.values()),
                    "config": json.dumps({"ignore": list(ignore)})}) + "\n")  # fmt: skip
    return root


FULL = {"prose": dict(zip(DIMS, (0.9, 0.8, 0.6, 0.5), strict=True)),
        "code": dict(zip(DIMS, (0.8, 0.7, 0.9, 0.6), strict=True))}  # fmt: skip
ATTN = {"prose": dict(zip(DIMS, (0.95, 0.9, 0.9, 0.75), strict=True)),
        "code": dict(zip(DIMS, (0.9, 0.85, 0.995, 0.8), strict=True))}  # fmt: skip


def test_shares_are_the_ratio_of_the_losses(tmp_path):
    full = _run(tmp_path / "full", FULL)
    attn = _run(tmp_path / "attn", ATTN, ignore=[".*linear_attn.*"])
    result = ablation(full, [attn])
    assert result.partial == ("all but .*linear_attn.*",)
    share = result.shares.set_index(["choice", "quantity"])["share"]
    assert share["prose", "general"] == pytest.approx(0.05 / 0.1)
    assert share["prose", "math"] == pytest.approx(0.25 / 0.5)
    assert share["code", "code"] == pytest.approx(0.005 / 0.1)
    assert share["prose", "worst"] == pytest.approx(0.25 / 0.5)
    assert share["code", "total"] == pytest.approx((1 - 0.88625) / (1 - 0.75))
    table = summary(result).set_index(["pruned", "quantity"])
    assert table.loc[("all but .*linear_attn.*", "general"), "median"] == pytest.approx(
        np.median([0.5, 0.1 / 0.2])
    )


def test_a_loss_too_small_to_divide_by_is_undefined_and_noted(tmp_path):
    tiny = {"prose": {**FULL["prose"], "code": 1 - MIN_LOSS / 2}}
    full = _run(tmp_path / "full", tiny)
    attn = _run(tmp_path / "attn", {"prose": ATTN["prose"]}, ignore=["x"])
    result = ablation(full, [attn])
    share = result.shares.set_index(["choice", "quantity"])["share"]
    assert np.isnan(share["prose", "code"]) and share.notna().sum() == 5
    assert any("1 share(s) undefined" in n for n in result.notes)


@pytest.mark.parametrize(
    ("full_ignore", "partial_ignore", "model", "message"),
    [
        (["x"], ["y"], "m", "the full run kept ['x'] dense"),
        ([], [], "m", "this one pruned every module"),
        ([], ["y"], "other", "prunes another model"),
    ],
)
def test_runs_that_cannot_be_set_against_each_other_exit_2(
    tmp_path, capsys, full_ignore, partial_ignore, model, message
):
    full = _run(tmp_path / "full", FULL, ignore=full_ignore)
    part = _run(tmp_path / "part", ATTN, ignore=partial_ignore, model=model)
    assert main(["ablation", str(full), str(part), "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


def test_the_command_writes_its_files(tmp_path, capsys):
    full = _run(tmp_path / "full", FULL)
    attn = _run(tmp_path / "attn", ATTN, ignore=[".*linear_attn.*"])
    assert main(["ablation", str(full), str(attn), "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "| all but .*linear_attn.* | general | 0.500 | [0.500, 0.500] | 2 |" in printed
    assert {p.name for p in (tmp_path / "o").iterdir()} == {
        "ablation.md", "ablation_shares.csv", "ablation_summary.csv"}  # fmt: skip


def test_a_mix_name_with_other_weights_is_another_choice(tmp_path):
    """A partial run over fewer sources has another uniform mix: it is not paired with the full
    run's."""
    both = {"a": 0.5, "b": 0.5}
    full = _run(tmp_path / "full", {**FULL, "uniform": FULL["prose"]}, mixes={"uniform": both})
    attn = _run(tmp_path / "attn", {**ATTN, "uniform": ATTN["prose"]}, ignore=["x"],
                mixes={"uniform": {"a": 1.0}})  # fmt: skip
    result = ablation(full, [attn])
    assert set(result.shares["choice"]) == {"prose", "code"}
