"""The search phase of a sweep: one mix-weight search per (method, structure, sparsity).

Each search trial prunes with the proposed weights and reports the objective. With
``search.mode: oneshot_stats`` a trial does no calibration forward pass: it combines per-source
statistics cached on disk. The best mix is then confirmed by a full sequential trial with the
sweep's own suite, and ``search/summary.json`` / ``summary.md`` put it beside the baselines.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ray

from raysweep.atomic import write_text_atomic
from raysweep.config import SweepConfig, TrialConfig
from raysweep.dense import DenseBaseline, sweep_baseline
from raysweep.names import EQUAL_SOURCES_MIX, UNIFORM_MIX
from raysweep.planning import (
    confirm_points,
    search_plan,
    search_points,
    search_seeds,
    search_sources,
    search_trials,
)
from raysweep.records import RECORDS_FILE, TrialRecord, latest_records, read_records
from raysweep.search.objectives import METRIC, objective_value
from raysweep.search.tuner import early_stopping_scheduler, run_mix_search, trials_to_run
from raysweep.search.warm import grid_trials, warm_start
from raysweep.trainables.callbacks import RecordWriter, SearchProgress, write_failures
from raysweep.trainables.tracking import tracking_callbacks
from raysweep.trainables.trial import mix_label, sweep_trial

__all__ = ["mix_label", "run_search"]  # mix_label: the search's mix names, kept importable here


def run_search(cfg: SweepConfig, out: Path, storage: str) -> list[dict[str, Any]]:
    """Run every configured search, confirm each best mix, write ``search/summary.{json,md}``."""
    from raysweep.models import reuses_actors
    from raysweep.trainables.grid import compute_dense

    s = cfg.search
    assert s is not None
    search_plan(cfg)  # ConfigError when the search cannot run, as in the driver's --validate
    sources = search_sources(cfg)
    seeds = search_seeds(cfg)
    records = out / RECORDS_FILE
    summaries = []
    for base in search_points(cfg):
        name, label = study_name(cfg, base), f"search-{point_slug(base)}"
        n_trials = search_trials(cfg)
        each = f", each the mean over seeds {seeds}" if len(seeds) > 1 else ""
        print(f"[raysweep] {label}: {n_trials} trials over {len(sources)} sources{each} "
              f"({s.mode}, objective {s.objective}; Optuna study {name})", flush=True)  # fmt: skip
        search_dense = sweep_baseline(base, out, compute_dense)
        metrics = [METRIC]
        if s.multi_objective:
            metrics = [f"retention_{d}" for d in sorted(search_dense.scores.dimension_scores)]
        # Before counting what is left to run: the grid's points are complete trials.
        warm_start(cfg, base, out, name, metrics)
        to_run = trials_to_run(out / "search", name, n_trials, sources)
        sizes = search_rungs(cfg, base)
        writer = RecordWriter(records)
        with write_failures(writer):
            res = run_mix_search(
                sweep_trial,
                sources=sources,
                base_config={
                    "point": base.model_dump(mode="json"),
                    "dense": _dense_for_trials(out, search_dense, sizes).to_dict(),
                    "objective": s.objective,
                    "metrics": metrics,
                    "seeds": seeds,
                    **({"rungs": list(sizes)} if sizes else {}),
                },  # fmt: skip
                study_dir=out / "search",
                study_name=name,
                n_trials=n_trials,
                max_concurrent=s.max_concurrent,
                seed=s.seed,
                min_weight=s.min_weight,
                metrics=metrics,
                resources={"cpu": cfg.resources.cpu, "gpu": cfg.resources.gpu},
                storage_path=storage,
                max_failures=cfg.ray.max_failures,
                callbacks=[
                    writer,
                    SearchProgress(label, to_run, METRIC, s.objective),
                    *tracking_callbacks(cfg, out),
                ],  # fmt: skip
                reuse_actors=reuses_actors(cfg.resources),
                scheduler=_scheduler(s, sizes),
            )
        confirmed: list[TrialRecord] = []
        if s.confirm and res.best_weights:
            points = confirm_points(cfg, base, res.best_weights)
            confirmed = confirm(cfg, points, out, records, storage)
        summary = _summarise(cfg, base, res, confirmed, records, sources)
        summary["failed_trials"] = len(writer.errors)
        summary["stopped_trials"] = res.n_stopped
        if s.save_best and confirmed and all(r.status == "ok" for r in confirmed):
            summary["saved"] = save_best(cfg, points[0], out / "search" / best_dirname(base))
        summaries.append(summary)
        for line in console_lines(summary):
            print(line, flush=True)
    _write_summary(out / "search", summaries)
    return summaries


def search_rungs(cfg: SweepConfig, base: TrialConfig) -> tuple[int, ...]:
    """Items per task by the end of each rung of the search from ``base`` (the last: its full
    set), or () without early stopping: a trial then scores its items at once."""
    from raysweep.evaluation.rungs import full_items, rung_sizes

    s = cfg.search
    assert s is not None
    if s.early_stopping == "none":
        return ()
    full = full_items(base.evaluation.suite, base.evaluation.limit)
    assert full is not None  # the config's validation refuses early stopping otherwise
    return rung_sizes(full, s.rungs, s.grace_period, s.reduction_factor)


def _dense_for_trials(out: Path, dense: DenseBaseline, sizes: tuple[int, ...]) -> DenseBaseline:
    """The dense baseline search trials are given: with its per-item values (its side file's)
    when they score in rungs, whose retentions read the dense scores of the same items."""
    from dataclasses import replace

    from raysweep.evaluation import TaskItems
    from raysweep.items import dense_items_path, read_items

    if not sizes:
        return dense
    tasks = read_items(dense_items_path(out, dense.key))["tasks"]
    items = {task: TaskItems.from_dict(entry) for task, entry in tasks.items()}
    return DenseBaseline(dense.key, replace(dense.scores, items=items))


def _scheduler(s: Any, sizes: tuple[int, ...]) -> Any:
    if not sizes:
        return None
    return early_stopping_scheduler(s.early_stopping, max_t=sizes[-1],
                                    grace_period=min(s.grace_period, sizes[-1]),
                                    reduction_factor=s.reduction_factor)  # fmt: skip


def point_slug(base: TrialConfig) -> str:
    """``<method>-<structure>-<sparsity>``, with ``2of4`` for ``2:4``: names a search's study
    (``search-<slug>``) and its saved best model (``best-<slug>``)."""
    return f"{base.method}-{base.structure.replace(':', 'of')}-{base.sparsity:g}"


def study_name(cfg: SweepConfig, base: TrialConfig) -> str:
    """``search-<slug>-<fingerprint>``: the Optuna study of one search. The fingerprint hashes
    everything that changes what the study's values mean (the base point's model, calibration,
    pruning and evaluation settings, suite and item limit included; the searched sources and
    their custom specs; objective, multi-objective, minimum weight, search mode; the set of
    calibration seeds when there are several, one being the point's own), so that a changed search
    starts its own study instead of resuming one that measured something else.
    """
    from raysweep.records import trial_id_for

    s = cfg.search
    assert s is not None
    sources = search_sources(cfg)
    point = base.identity()
    del point["mix"]
    point["custom_sources"] = {k: v for k, v in base.custom_sources.items() if k in sources}
    meaning = {"point": point, "sources": sources, "objective": s.objective,
               "multi_objective": s.multi_objective, "min_weight": s.min_weight, "mode": s.mode}  # fmt: skip
    seeds = search_seeds(cfg)
    if len(seeds) > 1:  # one seed is the point's: the studies of one-seed searches keep their names
        del point["seed"]
        meaning["seeds"] = sorted(seeds)  # a trial reports the mean over them, in any order
    return f"search-{point_slug(base)}-{trial_id_for(meaning)[:10]}"


def best_dirname(base: TrialConfig) -> str:
    return f"best-{point_slug(base)}"


def save_best(cfg: SweepConfig, point: TrialConfig, directory: Path) -> str:
    """Prune the confirmed best mix's point again (same calibration set, same masks) in a Ray
    task with a trial's resources and save it there with its recipe card; a directory whose card
    is already this trial's is kept. Returns the directory."""
    from raysweep.evaluation.__main__ import CARD_FILE

    card = directory / CARD_FILE
    if card.is_file() and json.loads(card.read_text()).get("trial_id") == point.trial_id:
        print(f"[raysweep] best mix already saved in {directory}", flush=True)
        return str(directory)
    res = cfg.resources
    task = ray.remote(num_cpus=res.cpu, num_gpus=res.gpu, max_retries=1)(_save_task)
    print(f"[raysweep] saving the best mix's pruned model to {directory}", flush=True)
    return ray.get(task.remote(point.model_dump(mode="json"), str(directory)))


def _save_task(point: dict[str, Any], directory: str) -> str:
    import tempfile

    from raysweep.atomic import replace_dir
    from raysweep.prune import prune_point, recipe_card, save_pruned

    trial = TrialConfig.model_validate(point)
    t0 = time.perf_counter()
    pruned = prune_point(trial, log=lambda line: print(line, file=sys.stderr, flush=True))
    card = recipe_card(trial, pruned, total_s=time.perf_counter() - t0,
                       extra={"from_search": "confirmed best mix"})  # fmt: skip
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside, then renamed: a directory named best-* is always a whole model.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    save_pruned(pruned, staging, card)
    replace_dir(staging, target)
    return str(target)


def console_lines(summary: Mapping[str, Any]) -> list[str]:
    """What a search found, for the console: the best mix, its objective inside the search,
    and the confirmed scores beside the baselines on the sweep's full suite."""
    key = summary["objective"]
    weights = ", ".join(f"{k} {v:.3f}" for k, v in summary["best_weights"].items() if v > 0)
    value = summary["best_value"]
    lines = [f"[raysweep] {summary['search']}: best mix {weights or '(none)'}; {key} "
             f"{_fmt(value)} on the search suite"]  # fmt: skip
    full = summary["full_suite_rows"]
    if full.get("best_mix"):
        parts = [f"best mix {_fmt(full['best_mix']['objective'])}"]
        if full.get("uniform"):
            parts.append(f"uniform mix {_fmt(full['uniform']['objective'])}")
        single = full.get("best_single_source")
        if single:
            parts.append(f"best single source {next(iter(single['mix']))} "
                         f"{_fmt(single['objective'])}")  # fmt: skip
        seeds = summary.get("seeds") or []
        mean = f" (mean over seeds {', '.join(map(str, seeds))})" if len(seeds) > 1 else ""
        lines.append(f"[raysweep]   confirmed on the full suite, {key}{mean}: " + ", ".join(parts))
    for name, entry in summary.get("paired", {}).items():
        lines.append(f"[raysweep]   paired, best mix − {_PAIRED_LABELS[name]}: "
                     f"{paired_text(entry)}")  # fmt: skip
    if summary.get("saved"):
        lines.append(f"[raysweep]   pruned model saved in {summary['saved']}")
    return lines


def confirm(cfg: SweepConfig, points: list[TrialConfig], out: Path, records: Path,
            storage: str) -> list[TrialRecord]:  # fmt: skip
    """The confirmation trials' records, one per seed: an ``ok`` record of the same trial (the
    same point, run by the grid or an earlier run of the search) is reused when its side file is
    sound (:func:`raysweep.items.check_trial_file`); the others run."""
    from raysweep.items import check_trial_file
    from raysweep.trainables.grid import compute_dense, run_grid

    latest = latest_records(records)
    todo, redo = [], []
    for point in points:
        found = latest.get(point.trial_id)
        if found is not None and found.status == "ok" and check_trial_file(out, found):
            redo.append(point.trial_id)  # named by the run's verify line; scored again
            todo.append(point)
        elif found is not None and found.status == "ok":
            print(f"[raysweep] best mix already confirmed with seed {point.seed} ({found.phase} "
                  f"trial {point.trial_id})", flush=True)  # fmt: skip
        else:
            todo.append(point)
    if todo:
        dense = sweep_baseline(todo[0], out, compute_dense)
        run_grid(cfg, todo, dense, records, storage, phase="confirm", redo=redo)
        latest = latest_records(records)
    return [latest[p.trial_id] for p in points if p.trial_id in latest]


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _spread(values: list[float | None]) -> float | None:
    """Max − min of the known values, None with fewer than two."""
    known = [v for v in values if v is not None]
    return max(known) - min(known) if len(known) > 1 else None


def _row(group: list[TrialRecord] | None, objective: str) -> dict[str, Any] | None:
    """One mix's row: the mean over its records (one per seed) of each retention, and of the
    objective (as the search averaged it); ``seeds`` says which records it is the mean of."""
    if not group:
        return None

    def per_dim(field: str, over=_mean) -> dict[str, float | None]:
        dims = sorted({d for r in group for d in getattr(r, field)})
        return {d: over([getattr(r, field).get(d) for r in group]) for d in dims}

    return {"mix": group[0].mix, "seeds": [r.seed for r in group],
            # max − min over the seeds, None with one: the seed-to-seed noise a margin must beat
            "seed_range": {
                **per_dim("retention", _spread),
                "total": _spread([r.total_retention for r in group]),
                "worst": _spread([r.worst_retention for r in group]),
            },
            "objective": _mean([objective_value(r.model_dump(), objective) for r in group]),
            "retention": per_dim("retention"),
            "total_retention": _mean([r.total_retention for r in group]),
            "worst_retention": _mean([r.worst_retention for r in group]),
            "retention_above_chance": per_dim("retention_above_chance"),
            "status": "ok" if all(r.status == "ok" for r in group) else "error"}  # fmt: skip


def _by_mix(records: list[TrialRecord], seeds: list[int]) -> list[list[TrialRecord]]:
    """Records of the given seeds grouped by mix, one record per seed in ``seeds`` order."""
    groups: dict[str, dict[int, TrialRecord]] = {}
    for r in records:
        if r.seed in seeds:
            groups.setdefault(json.dumps(sorted(r.mix.items())), {})[r.seed] = r
    return [[g[seed] for seed in seeds if seed in g] for g in groups.values()]


def _summarise(cfg, base, res, confirmed, records, sources) -> dict[str, Any]:  # noqa: ANN001
    """Best mix beside the baselines, on the search's suite and on the sweep's full suite: each
    row the mean over the search's seeds, as the search's objective is."""
    s = cfg.search
    seeds = search_seeds(cfg)
    rows = [r for r in read_records(records, warn=False).records if r.status == "ok"
            and r.method == base.method and r.structure == base.structure
            and abs(r.sparsity - base.sparsity) < 1e-9]  # fmt: skip
    key = s.objective

    def best_of(groups: list[list[TrialRecord]]) -> dict[str, Any] | None:
        rows = [_row(g, key) for g in groups]
        return max((r for r in rows if r), key=lambda r: r["objective"], default=None)

    def baselines(groups: list[list[TrialRecord]], even: str) -> dict[str, Any]:
        # ``even``: the search's equal-per-source mix, or the grid's equal-per-dimension one.
        singles = [g for g in groups if len(g[0].mix) == 1 and next(iter(g[0].mix)) in sources]
        ref = s.reference
        key = "equal_sources" if even == EQUAL_SOURCES_MIX else "uniform"
        return {
            key: best_of([g for g in groups if g[0].mix_name == even]),
            "best_single_source": best_of(singles),
            "reference": best_of([g for g in groups if g[0].mix == {ref: 1.0}]) if ref else None,
        }

    from_grid = grid_trials(res.storage_url, res.study_name)
    # The grid's records of points the study was given are the search's own evaluations of them.
    warm_ids = {i for point in from_grid for i in point["trial_ids"]}
    searched = _by_mix([r for r in rows if r.phase == "search" or r.trial_id in warm_ids], seeds)
    full = _by_mix([r for r in rows if r.phase == "grid"], seeds)
    full_rows = {"best_mix": _row(confirmed, key), **baselines(full, UNIFORM_MIX)}
    grid = [r for g in full for r in g]
    return {
        "search": f"{base.method} {base.structure} {base.sparsity:g}",
        "method": base.method,
        "structure": base.structure,
        "sparsity": base.sparsity,
        "objective": key,
        "sources": sources,
        "seeds": seeds,
        "search_suite": {
            "suite": base.evaluation.suite,
            "limit": base.evaluation.limit,
            **base.item_selection_key(),
        },
        "n_trials": res.n_trials,
        "from_grid": from_grid,
        "wall_s": round(res.wall_s, 1),
        "best_weights": res.best_weights,
        "best_value": res.best_value,
        "search_suite_rows": {
            "best_mix": best_of(searched),
            **baselines(searched, EQUAL_SOURCES_MIX),
        },
        "full_suite_rows": full_rows,
        "paired": _paired(records.parent, confirmed, grid, full_rows["best_single_source"]),
        "pareto": res.pareto,
        "storage": res.storage_url,
    }


_PAIRED_LABELS = {"uniform": "uniform mix", "best_single_source": "best single source"}


def paired_text(entry: Mapping[str, Any]) -> str:
    from analysis.paired import summary_text

    return summary_text(entry)


def _paired(run_dir: Path, confirmed: list[TrialRecord], grid: list[TrialRecord],
            single: dict[str, Any] | None) -> dict[str, Any]:  # fmt: skip
    """Best mix − uniform mix and − best single source on the full suite, paired over items and
    over the search's seeds (``analysis.paired``): the confirmed best mix's record per seed
    against the grid's record of the same seed; a note where per-item data lacks."""
    from analysis.paired import PairedUnavailable, compare_records

    confirmed = [r for r in confirmed if r.status == "ok"]
    if not confirmed:
        return {}
    sides = {"uniform": [r for r in grid if r.mix_name == UNIFORM_MIX]}
    if single is not None:
        sides["best_single_source"] = [r for r in grid if r.mix == single["mix"]]
    out: dict[str, Any] = {}
    for name, baseline in sides.items():
        if not baseline:
            continue
        try:
            out[name] = compare_records(run_dir, baseline, confirmed, label_a=name,
                                        label_b="best mix").to_dict()  # fmt: skip
        except (PairedUnavailable, OSError) as exc:
            out[name] = {"note": str(exc)}
    return out


def _grid_lines(points: list[dict[str, Any]]) -> list[str]:
    """The summary's line naming the points the grid supplied (none: no line)."""
    if not points:
        return []
    names = ", ".join(str(p.get("mix_name")) for p in points)
    return [f"{len(points)} of the trials are the grid's records, not run again: {names}.", ""]


def _stopped_lines(stopped: int) -> list[str]:
    """The summary's line on the trials stopped early (none: no line)."""
    if not stopped:
        return []
    return [f"{stopped} more trial(s) were stopped early at a rung (records with status "
            "`stopped`): partial scores, in no row below.", ""]  # fmt: skip


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _cell(value: Any, seed_range: float | None) -> str:
    """``0.761 ±0.019``: a seed mean and half its range over the seeds (none with one seed)."""
    return _fmt(value) + ("" if seed_range is None else f" ±{seed_range / 2:.3f}")


def _write_summary(folder: Path, summaries: list[dict[str, Any]]) -> None:
    write_text_atomic(folder / "summary.json", json.dumps(summaries, indent=1))
    lines = ["# Mix-weight search", ""]
    labels = {"best_mix": "best mix", "uniform": "uniform mix (equal weight per dimension)",
              "equal_sources": "equal weight per source",
              "best_single_source": "best single source", "reference": "reference source"}  # fmt: skip
    for sm in summaries:
        lines += [f"## {sm['search']} — objective `{sm['objective']}`", "",
                  f"{sm['n_trials']} trials in {sm['wall_s']} s; Optuna study `{sm['storage']}`.", "",
                  *_grid_lines(sm.get("from_grid") or []),
                  *_stopped_lines(sm.get("stopped_trials") or 0),
                  "best weights: " + ", ".join(f"{k} {v:.3f}" for k, v in sm["best_weights"].items() if v > 0),
                  ""]  # fmt: skip
        ss = sm["search_suite"]
        items = ", random items" if ss.get("item_selection") == "random" else ""
        trial = "one sequential trial"
        if len(sm.get("seeds") or []) > 1:
            trial += " per seed"
            lines += [f"Each row is the mean over calibration seeds "
                      f"{', '.join(map(str, sm['seeds']))}, ± half its range over them.", ""]  # fmt: skip
        for block, title in (("search_suite_rows", f"inside the search (suite `{ss['suite']}`, "
                              f"limit {ss['limit']}{items})"),
                             ("full_suite_rows", f"confirmed on the sweep's full suite (best mix: "
                              f"{trial}; baselines: the grid's records)")):  # fmt: skip
            table = {k: v for k, v in sm[block].items() if v}
            if not table:
                continue
            dims = sorted({d for row in table.values() for d in row["retention"]})
            lines += [f"**{title}**", "", "| mix | " + " | ".join(dims) + " | total | worst |",
                      "|---" * (len(dims) + 3) + "|"]  # fmt: skip
            for k, row in table.items():
                name = labels[k]
                if k in ("best_single_source", "reference"):
                    name += f" ({next(iter(row['mix']))})"
                ranges = row.get("seed_range") or {}
                cells = [_cell(row["retention"].get(d), ranges.get(d)) for d in dims]
                cells += [_cell(row["total_retention"], ranges.get("total")),
                          _cell(row["worst_retention"], ranges.get("worst"))]  # fmt: skip
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            lines.append("")
        for name, entry in sm.get("paired", {}).items():
            lines.append(f"- paired, best mix − {_PAIRED_LABELS[name]} (95% bootstrap interval over "
                         f"items and seeds): {paired_text(entry)}")  # fmt: skip
        if sm.get("paired"):
            lines.append("")
    write_text_atomic(folder / "summary.md", "\n".join(lines))
