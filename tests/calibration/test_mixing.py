"""Weight validation, normalisation and exact largest-remainder counts."""

from __future__ import annotations

import math
import random

import pytest

from raysweep.calibration import allocate_counts, normalize_mix


def test_allocate_counts_golden():
    assert allocate_counts({"a": 0.5, "b": 0.3, "c": 0.2}, 128) == {"a": 64, "b": 38, "c": 26}


def test_equal_remainders_go_to_sources_in_name_order():
    assert allocate_counts({"c": 1, "b": 1, "a": 1}, 128) == {"c": 42, "b": 43, "a": 43}
    assert allocate_counts({"z": 1, "y": 1, "x": 1}, 2) == {"z": 0, "y": 1, "x": 1}


def test_unnormalised_weights_and_zero_weights():
    assert allocate_counts({"a": 2, "b": 6}, 10) == {"a": 3, "b": 7}  # 2.5 / 7.5: tie -> a
    assert allocate_counts({"a": 1.0, "b": 0.0}, 5) == {"a": 5, "b": 0}


def test_counts_always_sum_to_n():
    rng = random.Random(0)
    for _ in range(200):
        weights = {f"s{i}": rng.random() for i in range(rng.randint(1, 15))}
        n = rng.randint(0, 300)
        counts = allocate_counts(weights, n)
        assert sum(counts.values()) == n
        total = sum(weights.values())
        assert all(abs(counts[k] - weights[k] / total * n) < 1 for k in weights)


def test_normalize_mix():
    assert normalize_mix("c4") == {"c4": 1.0}
    assert normalize_mix({"a": 3, "b": 1, "c": 0}) == {"a": 0.75, "b": 0.25, "c": 0.0}


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (
            {"a": -0.1, "b": 1},
            r"^calibration weight for 'a' is negative \(-0.1\); weights must be >= 0$",
        ),
        ({"a": math.nan}, r"^calibration weight for 'a' is nan; weights must be finite$"),
        ({"a": math.inf}, r"^calibration weight for 'a' is inf; weights must be finite$"),
        (
            {"a": 0, "b": 0.0},
            r"^calibration weights are all zero; give at least one source a positive weight$",
        ),
        ({}, r"^calibration mix is empty; give at least one source with a positive weight$"),
        ({"a": "1"}, r"^calibration weight for 'a' must be a number, got '1'$"),
    ],
)
def test_bad_weights(weights, message):
    with pytest.raises(ValueError, match=message):
        normalize_mix(weights)
    with pytest.raises(ValueError, match=message):
        allocate_counts(weights, 8)


def test_bad_sample_count():
    with pytest.raises(
        ValueError, match=r"^number of samples must be a non-negative integer, got -1$"
    ):
        allocate_counts({"a": 1}, -1)
