"""Expand a sweep config into its trial points (plain Python: no Ray)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from raysweep.config import DIMENSIONS, SweepConfig, TrialConfig, structure_sparsity


def uniform_mix(sources: list[str], dimension_of: Mapping[str, str | None]) -> dict[str, float]:
    """Equal share per capability dimension present, split equally among its aligned sources.

    Sources aligned to no dimension are left out; with no aligned source at all, every source
    gets an equal weight.
    """
    groups: dict[str, list[str]] = {d: [] for d in DIMENSIONS}
    for s in sources:
        d = dimension_of.get(s)
        if d in groups:
            groups[d].append(s)
    present = {d: ss for d, ss in groups.items() if ss}
    if not present:
        return {s: 1.0 / len(sources) for s in sources}
    share = 1.0 / len(present)
    return {s: share / len(ss) for ss in present.values() for s in ss}


def source_dimensions(cfg: SweepConfig) -> dict[str, str | None]:
    from raysweep.calibration import get_source, sources_from_specs

    extra = sources_from_specs(cfg.calibration.custom_sources)
    return {s: get_source(s, extra=extra).dimension for s in cfg.calibration.sources}


def mixes_of(cfg: SweepConfig) -> list[tuple[str, dict[str, float]]]:
    """(mix name, weights) of every calibration point: single sources, configured mixes, uniform."""
    cal = cfg.calibration
    out = [(s, {s: 1.0}) for s in cal.sources]
    out += [(m.name, dict(m.weights)) for m in cal.mixes]
    if cal.uniform_mix and len(cal.sources) > 1 and "uniform" not in {m.name for m in cal.mixes}:
        out.append(("uniform", uniform_mix(cal.sources, source_dimensions(cfg))))
    return out


def trial_points(cfg: SweepConfig, phase: str = "grid") -> list[TrialConfig]:
    """Every (mix x sparsity x method x structure x seed) point, N:M counted once per pattern."""
    points: dict[str, TrialConfig] = {}
    pr = cfg.pruning
    for (name, mix), method, structure, sparsity, seed in itertools.product(
        mixes_of(cfg), pr.methods, pr.structures, pr.sparsities, cfg.calibration.seeds
    ):
        t = TrialConfig(
            sweep=cfg.name,
            phase=phase,  # type: ignore[arg-type]
            model=cfg.model,
            mix=mix,
            mix_name=name,
            n_samples=cfg.calibration.n_samples,
            seqlen=cfg.calibration.seqlen,
            seed=seed,
            custom_sources=cfg.calibration.custom_sources,
            method=method,
            sparsity=round(structure_sparsity(structure, sparsity), 6),
            structure=structure,
            mode=pr.mode,
            damp=pr.damp,
            block_size=pr.block_size,
            pruning_device=pr.device,
            min_expert_tokens=pr.min_expert_tokens,
            expert_fallback=pr.expert_fallback,
            evaluation=cfg.evaluation,
            resources=cfg.resources,
        )
        points.setdefault(t.trial_id, t)
    return list(points.values())
