"""Trial planning: the points a sweep config runs (plain Python: no Ray).

- the grid: every (mix x method x structure x sparsity x seed), N:M counted once per pattern
  (:func:`trial_points`), where the mixes are the single sources, the configured mixes and the
  uniform mix (:func:`mixes_of`);
- the search: one base point per searched (method, structure, sparsity) (:func:`search_points`),
  over :func:`search_sources`, :func:`search_trials` each with every one of :func:`search_seeds`
  (:func:`search_plan` says it in one line), and the confirmation of a best mix, one trial per
  seed (:func:`confirm_points`);
- ``--smoke-test``: the same sweep cut down to a handful of cheap points (:func:`smoke_config`).

Every point is built by :func:`trial_config` from the sweep's shared settings and its own axes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

from raysweep.config import (
    EvaluationConfig,
    SweepConfig,
    TrialConfig,
    structure_sparsity,
)
from raysweep.names import DIMENSIONS, UNIFORM_MIX

# Pruning options a trial takes from ``pruning`` under the same names.
PRUNING_OPTIONS = (
    "damp", "block_size", "min_expert_tokens", "expert_fallback", "ignore", "owl_m",
    "owl_lambda", "ria_alpha", "ria_per_row", "refine", "dsnot_cycles", "dsnot_threshold",
)  # fmt: skip


def trial_config(
    cfg: SweepConfig,
    *,
    phase: str,
    mix: Mapping[str, float],
    mix_name: str,
    method: str,
    structure: str,
    sparsity: float,
    seed: int,
    mode: str | None = None,
    evaluation: EvaluationConfig | None = None,
    allocation: str | None = None,
) -> TrialConfig:
    """One point of ``cfg``: its model, calibration sizes, pruning options and resources, with the
    point's own axes. ``sparsity`` is the target: an N:M structure fixes the real one.
    ``mode`` and ``evaluation`` default to the sweep's, ``allocation`` to its first."""
    cal, pr = cfg.calibration, cfg.pruning
    return TrialConfig(
        sweep=cfg.name,
        phase=phase,  # type: ignore[arg-type]
        model=cfg.model,
        mix=dict(mix),
        mix_name=mix_name,
        n_samples=cal.n_samples,
        seqlen=cal.seqlen,
        seed=seed,
        custom_sources=cal.custom_sources,
        source_files=source_files(cfg, mix),
        method=method,  # type: ignore[arg-type]
        sparsity=structure_sparsity(structure, sparsity),
        structure=structure,
        mode=mode or pr.mode,  # type: ignore[arg-type]
        allocation=allocation or pr.allocations[0],  # type: ignore[arg-type]
        pruning_device=pr.device,
        **{name: getattr(pr, name) for name in PRUNING_OPTIONS},
        evaluation=evaluation or cfg.evaluation,
        resources=cfg.resources,
    )


def source_files(cfg: SweepConfig, names: Iterable[str]) -> dict[str, dict[str, str]]:
    """Content digests of the local files of the file-backed sources among ``names`` (``file:``
    paths and custom specs), as the driver sees them now: a point's trial id follows them, so an
    edited file is a new point, not one already done. Registered sources read none."""
    custom = cfg.calibration.custom_sources
    wanted = [n for n in names if n.startswith("file:") or n in custom]
    if not wanted:
        return {}
    from raysweep.calibration import get_source, source_from_spec
    from raysweep.calibration.digests import local_file_digests

    out = {}
    for name in wanted:
        try:
            extra = {name: source_from_spec(name, custom[name])} if name in custom else None
            digests = local_file_digests(get_source(name, extra))
        except (ValueError, TypeError):
            continue  # the preflight names it; a file only the workers hold has no digest here
        if digests:
            out[name] = digests
    return out


# --------------------------------------------------------------------------- the grid


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
    """The capability dimension each of the sweep's calibration sources is aligned to."""
    from raysweep.calibration import get_source, sources_from_specs

    extra = sources_from_specs(cfg.calibration.custom_sources)
    return {s: get_source(s, extra=extra).dimension for s in cfg.calibration.sources}


def mixes_of(cfg: SweepConfig) -> list[tuple[str, dict[str, float]]]:
    """(mix name, weights) of every calibration point: single sources, configured mixes, uniform."""
    cal = cfg.calibration
    out = [(s, {s: 1.0}) for s in cal.sources]
    out += [(m.name, dict(m.weights)) for m in cal.mixes]
    if cal.uniform_mix and len(cal.sources) > 1 and UNIFORM_MIX not in {m.name for m in cal.mixes}:
        out.append((UNIFORM_MIX, uniform_mix(cal.sources, source_dimensions(cfg))))
    return out


def trial_points(cfg: SweepConfig, phase: str = "grid") -> list[TrialConfig]:
    """Every (mix x sparsity x method x structure x allocation x seed) point, N:M counted once
    per pattern."""
    points: dict[str, TrialConfig] = {}
    pr = cfg.pruning
    for (name, mix), method, structure, sparsity, allocation, seed in itertools.product(
        mixes_of(cfg), pr.methods, pr.structures, pr.sparsities, pr.allocations,
        cfg.calibration.seeds,
    ):  # fmt: skip
        t = trial_config(cfg, phase=phase, mix=mix, mix_name=name, method=method,
                         structure=structure, sparsity=sparsity, seed=seed,
                         allocation=allocation)  # fmt: skip
        points.setdefault(t.trial_id, t)
    return list(points.values())


# --------------------------------------------------------------------------- the search


def search_sources(cfg: SweepConfig) -> list[str]:
    """``search.sources``, or every sweep source aligned to a capability dimension."""
    assert cfg.search is not None
    if cfg.search.sources:
        return list(cfg.search.sources)
    dims = source_dimensions(cfg)
    return [s for s in cfg.calibration.sources if dims.get(s)]


def search_seeds(cfg: SweepConfig) -> list[int]:
    """The calibration seeds each search trial prunes with: ``search.seeds``, or the first of
    ``calibration.seeds``."""
    assert cfg.search is not None
    return list(cfg.search.seeds or cfg.calibration.seeds[:1])


def search_points(cfg: SweepConfig) -> list[TrialConfig]:
    """One base point per (method, structure, sparsity) searched, on the search's suite, limit
    and item selection, with the first of :func:`search_seeds`; its mix is a placeholder that
    each search trial replaces with its proposal (and its seed with each of the seeds)."""
    s = cfg.search
    assert s is not None
    sources = search_sources(cfg)
    ev = cfg.evaluation.model_copy(
        update={
            "suite": s.suite or cfg.evaluation.suite,
            "limit": s.limit or cfg.evaluation.limit,
            "item_selection": s.item_selection or cfg.evaluation.item_selection,
            "perplexity": s.perplexity,
        }
    )
    mode = "oneshot" if s.mode == "oneshot_stats" else "sequential"
    seen: dict[tuple[str, str, float], TrialConfig] = {}
    for method in s.methods or cfg.pruning.methods:
        for structure in s.structures or cfg.pruning.structures:
            for sparsity in s.sparsities or cfg.pruning.sparsities:
                sp = structure_sparsity(structure, sparsity)
                if (method, structure, sp) not in seen:
                    seen[method, structure, sp] = trial_config(
                        cfg, phase="search", mix={sources[0]: 1.0}, mix_name="search",
                        method=method, structure=structure, sparsity=sp,
                        seed=search_seeds(cfg)[0], mode=mode, evaluation=ev,
                    )  # fmt: skip
    # A search trial weighs every searched source: each carries the digests of its files.
    files = source_files(cfg, sources)
    return [point.model_copy(update={"source_files": files}) for point in seen.values()]


def search_trials(cfg: SweepConfig) -> int:
    """Trials of each search: ``search.n_trials``, raised to cover the baselines every search
    evaluates first (the uniform mix, then each source alone)."""
    assert cfg.search is not None
    return max(cfg.search.n_trials, len(search_sources(cfg)) + 1)


def search_plan(cfg: SweepConfig) -> str:
    """One line: how many searches, trials and confirmations the search phase runs (ConfigError
    when it cannot run: fewer than two sources to weigh)."""
    from raysweep.config import ConfigError

    assert cfg.search is not None
    sources = search_sources(cfg)
    if len(sources) < 2:
        raise ConfigError(
            f"search.sources: {sources} — a mix search weighs at least 2 sources (list them "
            "under search.sources, or sweep sources aligned to 2 or more dimensions)"
        )
    if cfg.search.save_best and not cfg.search.confirm:
        raise ConfigError(
            "search.save_best: true saves the confirmed best mix, but search.confirm is false: "
            "set search.confirm: true, or save_best: false"
        )
    points = search_points(cfg)
    per = search_trials(cfg)
    seeds = search_seeds(cfg)
    confirms = len(points) * len(seeds) if cfg.search.confirm else 0
    saved = f", then {len(points)} best-mix model(s) saved" if cfg.search.save_best else ""
    saved += _rung_note(cfg, points[0])
    if len(seeds) == 1:
        return (
            f"{len(points)} search(es) x {per} trials over {len(sources)} sources "
            f"({', '.join(sources)}) + {confirms} confirmation(s) = "
            f"{len(points) * per + confirms} search trials{saved}"
        )
    listed = ", ".join(str(seed) for seed in seeds)
    return (
        f"{len(points)} search(es) x {per} trials x {len(seeds)} seeds ({listed}) over "
        f"{len(sources)} sources ({', '.join(sources)}) + {confirms} confirmation(s) = "
        f"{len(points) * per * len(seeds) + confirms} pruned and scored models{saved}"
    )


def _rung_note(cfg: SweepConfig, base: TrialConfig) -> str:
    """``; early stopping (asha): rungs at 50, 150, 400 items per task``, or nothing."""
    from raysweep.evaluation.rungs import full_items, rung_sizes

    s = cfg.search
    assert s is not None
    full = full_items(base.evaluation.suite, base.evaluation.limit)
    if s.early_stopping == "none" or full is None:
        return ""
    sizes = rung_sizes(full, s.rungs, s.grace_period, s.reduction_factor)
    return f"; early stopping ({s.early_stopping}): rungs at {', '.join(map(str, sizes))} items per task"


def confirm_point(
    cfg: SweepConfig, base: TrialConfig, weights: Mapping[str, float], seed: int | None = None
) -> TrialConfig:
    """The best mix of the search from ``base`` as one trial of the sweep's own mode and suite,
    with calibration ``seed`` (default: the base point's)."""
    best = {k: v for k, v in weights.items() if v > 0}
    update = {"phase": "confirm", "mix": best, "mix_name": "best", "mode": cfg.pruning.mode,
              "evaluation": cfg.evaluation, "seed": base.seed if seed is None else seed}  # fmt: skip
    # Validated, not model_copy'd: the mix is normalised here exactly as the worker that
    # validates the dumped point normalises it, so both compute the same trial id.
    return TrialConfig.model_validate({**base.model_dump(), **update})


def confirm_points(
    cfg: SweepConfig, base: TrialConfig, weights: Mapping[str, float]
) -> list[TrialConfig]:
    """The confirmation of a best mix: one :func:`confirm_point` per search seed."""
    return [confirm_point(cfg, base, weights, seed) for seed in search_seeds(cfg)]


# --------------------------------------------------------------------------- --smoke-test


def smoke_config(cfg: SweepConfig, *, own_output: bool = True) -> SweepConfig:
    """Two sources (plus the uniform mix), one sparsity, one method, small sets and task limits.

    With ``own_output`` the smoke run writes to ``<output_dir>-smoke``, beside the real run;
    without (an explicit ``--output``), to ``output_dir`` itself."""
    cal = cfg.calibration.model_copy(
        update={
            "sources": cfg.calibration.sources[:2],
            "mixes": cfg.calibration.mixes[:1],
            "n_samples": min(cfg.calibration.n_samples, 16),
            "seeds": cfg.calibration.seeds[:1],
        }
    )
    pru = cfg.pruning.model_copy(
        update={
            "methods": cfg.pruning.methods[:1],
            "sparsities": cfg.pruning.sparsities[-1:],
            "structures": cfg.pruning.structures[:1],
        }
    )
    ev = cfg.evaluation.model_copy(update={"limit": min(cfg.evaluation.limit or 40, 40)})
    search = None
    if cfg.search is not None:
        seeds = cfg.search.seeds[:1] if cfg.search.seeds else None
        search = cfg.search.model_copy(
            update={"n_trials": 4, "max_concurrent": 2, "limit": 40, "seeds": seeds}
        )
    return cfg.model_copy(
        update={
            "name": cfg.name,
            "output_dir": cfg.output_dir.rstrip("/") + "-smoke" if own_output else cfg.output_dir,
            "calibration": cal,
            "pruning": pru,
            "evaluation": ev,
            "search": search,
        }
    )
