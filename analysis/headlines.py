"""One sentence per group: the metric with the strongest opposite-sign pair of correlations.

A metric's pair is its most positive and most negative rho across dimensions (``total``
excluded); its strength is the weaker of the two magnitudes, so a pair is only as strong as
its weaker side. The group's sentence names the metric with the strongest pair, e.g.
``perplexity: +0.71 with General, -0.59 with Code``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.records import TOTAL


@dataclass(frozen=True)
class OppositePair:
    metric: str
    positive_dimension: str
    positive_rho: float
    positive_q: float
    negative_dimension: str
    negative_rho: float
    negative_q: float

    @property
    def strength(self) -> float:
        return min(self.positive_rho, -self.negative_rho)

    def sentence(self) -> str:
        return (
            f"{self.metric}: {self.positive_rho:+.2f} with {dimension_title(self.positive_dimension)}, "
            f"{self.negative_rho:+.2f} with {dimension_title(self.negative_dimension)}"
        )


def dimension_title(dimension: str) -> str:
    return "Total" if dimension == TOTAL else dimension.replace("_", " ").capitalize()


def strongest_opposite_pair(group_table: pd.DataFrame) -> OppositePair | None:
    """The strongest opposite-sign pair among one group's correlation rows, if any."""
    rows = group_table[(group_table["dimension"] != TOTAL) & group_table["rho"].notna()]
    best: OppositePair | None = None
    for metric, per_metric in rows.groupby("metric", sort=True):
        top = per_metric.loc[per_metric["rho"].idxmax()]
        bottom = per_metric.loc[per_metric["rho"].idxmin()]
        if not (top["rho"] > 0 > bottom["rho"]):
            continue
        pair = OppositePair(
            str(metric),
            str(top["dimension"]),
            float(top["rho"]),
            float(top["q_value"]),
            str(bottom["dimension"]),
            float(bottom["rho"]),
            float(bottom["q_value"]),
        )
        if best is None or pair.strength > best.strength:
            best = pair
    return best


def headline(group_table: pd.DataFrame) -> str:
    """The group's sentence, with the q-values of both sides."""
    pair = strongest_opposite_pair(group_table)
    if pair is None:
        if group_table["rho"].notna().any():
            return "no calibration metric correlates with opposite signs across dimensions."
        return "no correlation could be computed (see the notes)."
    return f"{pair.sentence()} (q = {pair.positive_q:.3g} and {pair.negative_q:.3g})."
