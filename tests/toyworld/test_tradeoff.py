"""The trade-off measurement: its checks on known tables, its mix, and one real run."""

from __future__ import annotations

import pytest

from raysweep.toyworld.sources import TOY_SOURCES
from raysweep.toyworld.tradeoff import (
    ALIGNED,
    Claim,
    check_claim,
    magnitude_check,
    run,
    shortcut_check,
    uniform_weights,
)


def _dims(general, commonsense, code, math):
    return {"general": general, "commonsense": commonsense, "code": code, "math": math}


def _table():
    return {
        "wanda": {
            "toy_general_prose": _dims([0.9, 0.92], [0.8, 0.8], [0.5, 0.6], [0.40, 0.45]),
            "toy_code_programs": _dims([0.7, 0.8], [0.8, 0.8], [0.8, 0.85], [0.5, 0.5]),
            "uniform": _dims([0.85, 0.85], [0.8, 0.8], [0.8, 0.8], [0.7, 0.7]),
        },
        "magnitude": {"none": _dims([0.7], [0.7], [0.7], [0.7])},
    }


def test_claim_needs_the_margin_and_disjoint_seed_ranges():
    table = _table()
    claim = Claim("wanda", "code", "toy_code_programs", "toy_general_prose", 0.15)
    row = check_claim(table, claim)
    assert row["gap"] == pytest.approx(0.275) and row["disjoint"] and row["holds"]
    # The same mean gap with one seed of the better source inside the worse one's range.
    table["wanda"]["toy_code_programs"]["code"] = [0.55, 1.1]
    row = check_claim(table, claim)
    assert row["gap"] == pytest.approx(0.275) and not row["disjoint"] and not row["holds"]
    # Disjoint but below the margin.
    table["wanda"]["toy_code_programs"]["code"] = [0.61, 0.62]
    row = check_claim(table, claim)
    assert row["disjoint"] and not row["holds"]


def test_magnitude_check_compares_total_retention_with_the_uniform_mix():
    rows = magnitude_check(_table())
    assert rows == [
        {"method": "wanda", "uniform_total": 0.7875, "magnitude_total": 0.7, "gap": 0.0875,
         "holds": True}
    ]  # fmt: skip
    table = _table()
    table["magnitude"]["none"] = _dims([0.8], [0.8], [0.8], [0.7])
    assert magnitude_check(table)[0]["holds"] is False


def test_shortcut_check_uses_the_binomial_standard_error_of_retention():
    table = {"wanda": {"toy_general_prose": _dims([0.9], [0.9], [0.98], [0.9])}}
    dense = _dims(0.9, 0.9, 0.9, 0.9)
    rows = {r["dimension"]: r for r in shortcut_check(table, dense, _dims(400, 400, 400, 400))}
    # acc 0.882 on 400 items: se 0.0161 / 0.9 = 0.0179 of retention; 0.98 > 1 - 2 se.
    assert rows["code"]["se"] == pytest.approx(0.0179, abs=1e-4) and not rows["code"]["holds"]
    assert rows["math"]["holds"]


def test_uniform_weights_give_each_dimension_a_quarter():
    weights = uniform_weights()
    assert sum(weights.values()) == pytest.approx(1.0)
    by_dim: dict[str, float] = {}
    for source in TOY_SOURCES:
        if source.dimension is not None:
            by_dim[source.dimension] = by_dim.get(source.dimension, 0) + weights[source.name]
        else:
            assert source.name not in weights
    assert by_dim == pytest.approx({d: 0.25 for d in ALIGNED})


@pytest.mark.slow
def test_run_prunes_with_raysweep_and_reports_retention_per_seed():
    result = run(["magnitude", "wanda"], ["toy_math_word"], [0, 1], 0.5, 8, 64)
    table = result["retention"]
    assert set(table) == {"magnitude", "wanda"}
    assert len(table["magnitude"]["none"]["math"]) == 1  # no calibration: one run
    assert all(len(v) == 2 for v in table["wanda"]["toy_math_word"].values())
    assert result["items"] == _dims(400, 400, 400, 400)
    assert all(0.0 <= v <= 1.5 for v in table["wanda"]["toy_math_word"]["general"])
