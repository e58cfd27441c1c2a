"""Synthetic runs with per-item side files written exactly as /work/shared-notes' contract says
(``items/<trial_id>.json``, ``items/dense-<key>.json``, compact JSON, format 1), and records
whose scores are computed here in plain Python, independently of ``analysis``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

# task -> (dimension, chance); commonsense has two tasks with different chance levels.
SUITE = {
    "t_general": ("general", 0.25),
    "t_boolq": ("commonsense", 0.5),
    "t_arc": ("commonsense", 0.25),
    "t_code": ("code", 0.0),
    "t_math": ("math", 0.25),
}
DENSE_KEY = "0123abcd0123abcd"
COMPACT = {"separators": (",", ":")}


def trial_id(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _task_block(values: dict[str, list[float]], doc_ids: dict[str, list[int]] | None) -> dict:
    return {
        task: {
            "dimension": SUITE[task][0],
            "chance": SUITE[task][1],
            "metric": "acc",
            "doc_ids": list(doc_ids[task]) if doc_ids else list(range(len(vals))),
            "values": [float(v) for v in vals],
        }
        for task, vals in values.items()
    }


def dense_file(values: dict[str, list[float]], key: str = DENSE_KEY) -> dict:
    return {"format": 1, "dense_key": key, "tasks": _task_block(values, None)}


def trial_file(tid: str, values: dict[str, list[float]], key: str = DENSE_KEY,
               doc_ids: dict[str, list[int]] | None = None) -> dict:  # fmt: skip
    return {"format": 1, "trial_id": tid, "dense": f"dense-{key}",
            "tasks": _task_block(values, doc_ids)}  # fmt: skip


def mean(xs) -> float:
    xs = [float(x) for x in xs]
    return sum(xs) / len(xs)


def scores(values: dict[str, list[float]]) -> tuple[dict, dict, dict]:
    """(task scores, dimension scores, dimension chance) as raysweep's scoring defines them."""
    tasks = {t: mean(v) for t, v in values.items()}
    dims: dict[str, list[str]] = {}
    for t in values:
        dims.setdefault(SUITE[t][0], []).append(t)
    dim_scores = {d: mean(tasks[t] for t in ts) for d, ts in dims.items()}
    chance = {d: mean(SUITE[t][1] for t in ts) for d, ts in dims.items()}
    return tasks, dim_scores, chance


def record(tid: str, values: dict, dense_values: dict, *, mix: dict[str, float], mix_name: str,
           seed: int = 0, method: str = "wanda", sparsity: float = 0.6, phase: str = "grid",
           key: str = DENSE_KEY) -> dict:  # fmt: skip
    tasks, dims, _ = scores(values)
    dense_tasks, dense_dims, chance = scores(dense_values)
    retention = {
        d: (dims[d] / dense_dims[d] if dense_dims[d] > chance[d] else None) for d in dense_dims
    }
    defined = [r for r in retention.values() if r is not None]
    return {
        "trial_id": tid, "sweep": "fake", "phase": phase, "status": "ok", "model": "m",
        "method": method, "structure": "unstructured", "sparsity": sparsity, "mix": mix,
        "mix_name": mix_name, "n_samples": 8, "seqlen": 64, "seed": seed,
        "task_scores": tasks, "dense_task_scores": dense_tasks, "dimension_scores": dims,
        "dense_dimension_scores": dense_dims, "retention": retention,
        "total_retention": sum(defined) / len(defined) if defined else None,
        "worst_retention": min(defined) if defined else None,
        "dense_cache_key": key, "calib_metrics": {"perplexity": 1.0 + len(mix_name) + seed},
    }  # fmt: skip


def draw(rng: np.random.Generator, p: float | dict[str, float], n: int,
         latent: dict[str, np.ndarray] | None = None, noise: float = 0.0) -> dict[str, list[float]]:  # fmt: skip
    """0/1 item values per task, correct with probability ``p`` (per dimension when a dict).
    With ``latent`` (one difficulty in [0, 1) per item, shared by several trials) an item is
    correct when its difficulty is below ``p``, except that a share ``noise`` of the items is
    answered by an independent coin of the same ``p``: trials drawn on one latent are then
    correlated item by item, and each keeps the marginal ``p``."""
    out = {}
    for task in SUITE:
        q = p[SUITE[task][0]] if isinstance(p, dict) else p
        coin = rng.random(n) < q
        if latent is not None:
            coin = np.where(rng.random(n) < noise, coin, latent[task] < q)
        out[task] = coin.astype(float).tolist()
    return out


class FakeRun:
    """A run directory: ``records.jsonl`` and ``items/``; ``add`` writes one trial."""

    def __init__(self, root: Path, dense_values: dict[str, list[float]], key: str = DENSE_KEY):
        self.root = Path(root)
        self.items = self.root / "items"
        self.items.mkdir(parents=True, exist_ok=True)
        self.dense_values = dense_values
        self.key = key
        self.records: list[dict] = []
        (self.items / f"dense-{key}.json").write_text(json.dumps(dense_file(dense_values, key),
                                                                 **COMPACT))  # fmt: skip

    def add(self, values: dict, *, mix: dict[str, float] | None = None, mix_name: str,
            seed: int = 0, **fields) -> dict:  # fmt: skip
        mix = mix or {mix_name: 1.0}
        tid = trial_id(mix_name, seed, fields.get("method"), fields.get("sparsity"))
        rec = record(tid, values, self.dense_values, mix=mix, mix_name=mix_name, seed=seed,
                     key=self.key, **fields)  # fmt: skip
        (self.items / f"{tid}.json").write_text(json.dumps(trial_file(tid, values, self.key),
                                                           **COMPACT))  # fmt: skip
        with open(self.root / "records.jsonl", "a") as handle:
            handle.write(json.dumps(rec) + "\n")
        self.records.append(rec)
        return rec

    def side_file(self, rec: dict) -> Path:
        return self.items / f"{rec['trial_id']}.json"
