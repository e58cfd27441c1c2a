"""What generative tasks made the pruned models write: generated length and truncation by sparsity.

A trial scored on ``generate_until`` tasks records, per task, the mean tokens generated per item
(``generated_tokens``, and the dense model's in ``dense_generated_tokens``) and the share of its
generations cut by the task's ``max_gen_toks`` before any stop sequence (``truncated_share``).
Pruned models tend to write longer answers as sparsity grows, which costs evaluation time that a
dense run's timing does not show.
"""

from __future__ import annotations

import pandas as pd

from analysis.records import RecordSet, ok_trials

TOKENS = "generated_tokens"
DENSE_TOKENS = "dense_generated_tokens"
TRUNCATED = "truncated_share"
_COLUMNS = ["method", "task", "sparsity", "trials", "mean_tokens", "truncated_share"]


def _tasks(trials: pd.DataFrame) -> list[str]:
    prefix = f"{TOKENS}."
    return sorted(c[len(prefix) :] for c in trials.columns if c.startswith(prefix))


def generation_table(records: RecordSet | pd.DataFrame) -> pd.DataFrame:
    """Per (method, generative task, sparsity): trials, mean generated tokens and mean truncated
    share over the trials; the dense model's length as sparsity 0 (its truncation unrecorded).
    Empty when no trial recorded generation."""
    trials = ok_trials(records)
    tasks = _tasks(trials)
    rows = []
    for task in tasks:
        tokens, cut = f"{TOKENS}.{task}", f"{TRUNCATED}.{task}"
        scored = trials[trials[tokens].notna()]
        for (method, sparsity), part in scored.groupby(["method", "sparsity"], sort=True):
            share = part[cut].mean() if cut in part else float("nan")
            rows.append((method, task, float(sparsity), len(part), part[tokens].mean(), share))
        dense = f"{DENSE_TOKENS}.{task}"
        if dense in scored and scored[dense].notna().any():
            for method, part in scored.groupby("method", sort=True):
                rows.append((method, task, 0.0, 0, part[dense].mean(), float("nan")))
    table = pd.DataFrame(rows, columns=_COLUMNS)
    return table.sort_values(["method", "task", "sparsity"]).reset_index(drop=True)


def task_retention_table(records: RecordSet | pd.DataFrame) -> pd.DataFrame:
    """Mean retention (pruned / dense task score) of every task, per method and sparsity, with
    whether the task is scored by generation: Math and Code by generation beside multiple
    choice. Empty when no trial recorded generation."""
    trials = ok_trials(records)
    generated = set(_tasks(trials))
    if not generated:
        return pd.DataFrame(columns=["method", "task", "scored by", "sparsity", "retention"])
    prefix = "task_scores."
    tasks = sorted(c[len(prefix) :] for c in trials.columns if c.startswith(prefix))
    rows = []
    for task in tasks:
        dense = f"dense_task_scores.{task}"
        if dense not in trials:
            continue
        ratio = trials[f"{prefix}{task}"] / trials[dense].where(trials[dense] > 0)
        kind = "generation" if task in generated else "log-likelihood"
        for (method, sparsity), part in ratio.groupby([trials["method"], trials["sparsity"]]):
            rows.append((method, task, kind, float(sparsity), part.mean()))
    table = pd.DataFrame(rows, columns=["method", "task", "scored by", "sparsity", "retention"])
    return table.sort_values(["method", "scored by", "task", "sparsity"]).reset_index(drop=True)
