"""Independent reference computations for the analysis tests: plain Python and numpy, no
pandas grouping and no scipy rank/correlation helpers."""

from __future__ import annotations

import contextlib
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import t as student_t

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden_records.jsonl"
STUDY = DATA / "study_records.jsonl"
DIMS = ("general", "commonsense", "code", "math")


def raw_records(path: Path) -> list[dict]:
    """Every line that parses as JSON, in file order."""
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


def value(record: dict, column: str) -> float | None:
    """``total`` -> total_retention, ``calib:<m>`` -> calib_metrics[m], else retention[dim]."""
    if column == "total":
        return record.get("total_retention")
    if column.startswith("calib:"):
        return record.get("calib_metrics", {}).get(column[6:])
    return record.get("retention", {}).get(column)


def seed_means(records: list[dict]) -> dict[tuple, dict[str, dict[str, float]]]:
    """{(method, structure, sparsity): {source: {column: mean over seeds, skipping None}}}."""
    bucket: dict[tuple, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for r in records:
        if r["status"] != "ok" or r["phase"] != "grid" or len(r["mix"]) != 1:
            continue
        (source,) = r["mix"]
        key = (r["method"], r["structure"], r["sparsity"])
        columns = [*DIMS, "total"] + [f"calib:{m}" for m in r.get("calib_metrics", {})]
        for column in columns:
            v = value(r, column)
            if v is not None:
                bucket[key][source][column].append(v)
    return {
        key: {s: {c: sum(v) / len(v) for c, v in cols.items()} for s, cols in sources.items()}
        for key, sources in bucket.items()
    }


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, ties sharing their mean rank (by counting)."""
    x = np.asarray(x, dtype=float)
    less = (x[..., None, :] < x[..., :, None]).sum(-1)
    equal = (x[..., None, :] == x[..., :, None]).sum(-1)
    return less + (equal + 1) / 2


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


def spearman(x, y) -> float:
    return float(pearson(average_ranks(x), average_ranks(y)))


def spearman_p(rho: float, n: int) -> float:
    """Two-sided p of rho from Student's t with n - 2 degrees of freedom."""
    if abs(rho) >= 1.0 - 1e-15:
        return 0.0
    t = rho * math.sqrt((n - 2) / (1 - rho * rho))
    return float(2 * student_t.sf(abs(t), n - 2))


def bootstrap_ci(x, y, n_resamples: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Paired percentile bootstrap: resample source indices with the seeded generator, take
    rho of each resample (NaN when a side is constant, then dropped), linear percentiles."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    index = np.random.default_rng(seed).integers(0, len(x), (n_resamples, len(x)))
    rhos = pearson(average_ranks(x[index]), average_ranks(y[index]))
    alpha = (1 - level) / 2
    low, high = np.nanpercentile(rhos, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def benjamini_hochberg(p: list[float]) -> list[float]:
    """q_(i) = min over j >= i of p_(j) * m / j, capped at 1, back in input order."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    q = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        q[i] = running
    return q
