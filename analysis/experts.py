"""Expert coverage of MoE calibration sets: which routed experts each source leaves without evidence.

A trial of a mixture-of-experts model records ``expert_tokens``: the calibration tokens the dense
model's routers send to each (MoE layer, expert), as a JSON list of rows. The load depends on the
calibration set only (source, seed, count, length), not on the method or sparsity, so it is read
once per single-source calibration and averaged over seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.records import RecordSet, ok_trials, single_source_trials

DEFAULT_MIN_TOKENS = 16


@dataclass(frozen=True)
class ExpertLoad:
    source: str
    tokens: np.ndarray  # (moe layers, experts), mean over seeds
    min_tokens: int
    seeds: int

    @property
    def uncovered(self) -> list[tuple[int, int]]:
        """(layer, expert) pairs reached by fewer than ``min_tokens`` tokens."""
        return [(int(i), int(j)) for i, j in zip(*np.nonzero(self.tokens < self.min_tokens),
                                                 strict=True)]  # fmt: skip

    @property
    def coverage(self) -> float:
        return float((self.tokens >= self.min_tokens).mean())


def _min_tokens(config: object) -> int:
    try:
        value = json.loads(config).get("min_expert_tokens") if isinstance(config, str) else None
    except (json.JSONDecodeError, AttributeError):
        value = None
    return int(value) if value is not None else DEFAULT_MIN_TOKENS


def expert_loads(records: RecordSet | pd.DataFrame) -> list[ExpertLoad]:
    """One :class:`ExpertLoad` per single-source calibration with recorded expert tokens."""
    trials = single_source_trials(ok_trials(records))
    if "expert_tokens" not in trials or trials["expert_tokens"].isna().all():
        return []
    trials = trials[trials["expert_tokens"].notna()]
    loads: list[ExpertLoad] = []
    for source, part in trials.groupby("source", sort=True):
        per_seed = part.drop_duplicates("seed") if "seed" in part else part.iloc[:1]
        arrays = [np.asarray(json.loads(t), dtype=float) for t in per_seed["expert_tokens"]]
        if not arrays or any(a.shape != arrays[0].shape for a in arrays):
            continue
        config = per_seed["config"].iloc[0] if "config" in per_seed else None
        loads.append(ExpertLoad(str(source), np.mean(arrays, axis=0), _min_tokens(config),
                                len(arrays)))  # fmt: skip
    return loads


def coverage_table(loads: list[ExpertLoad], limit: int = 12) -> pd.DataFrame:
    """Per source: coverage, the experts it leaves uncovered (first ``limit``), token range."""
    rows = []
    for load in loads:
        missing = load.uncovered
        shown = ", ".join(f"L{i}:E{j}" for i, j in missing[:limit])
        if len(missing) > limit:
            shown += f", … ({len(missing) - limit} more)"
        rows.append(
            {
                "source": load.source,
                "coverage (%)": f"{100 * load.coverage:.1f}",
                "uncovered experts": shown or "none",
                "tokens per expert (min / median / max)": (
                    f"{load.tokens.min():.0f} / {np.median(load.tokens):.0f} / "
                    f"{load.tokens.max():.0f}"
                ),
                "seeds": load.seeds,
            }
        )
    return pd.DataFrame(rows)
