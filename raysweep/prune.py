"""``python -m raysweep.prune``: prune one model with one calibration source or mix, and save it.

One point of a sweep, outside the sweep: the base settings are ``--config`` (a sweep config) or
the embedded toy sweep's, exactly as for ``python -m raysweep.run``; the flags pick the point
(``--calibration``, ``--method``, ``--sparsity``, ``--structure``, ``--seed``, ...) and
``key.sub=value`` overrides set anything else. The sweep config's schema and preflight validate
it all; the trial pipeline (:func:`raysweep.pipeline.prune_trial`) loads, calibrates and prunes.

``--save DIR`` writes the pruned model and tokenizer with ``save_pretrained``: plain dense
safetensors whose pruned weights are zeros (no ``sparsity_config``: ``from_pretrained``,
lm-eval's ``hf`` model and vLLM load it as any dense model), and ``raysweep_prune.json``, the
recipe card: the trial config (from which the same calibration set and masks follow), the mix and
its per-source window counts, calibration metrics, method options, achieved sparsity overall and
per matrix, timings and versions. ``--evaluate SUITE`` scores the pruned model and prints its
retention against the (cached) dense baseline. ``--from-record RUN TRIAL_ID`` prunes exactly a
point recorded in ``RUN/records.jsonl``.

A records file is data someone may send you: a point read from one never runs code from outside
raysweep (:data:`CODE_SWITCHES`: the model folder's Python, model-written programs) unless this
command line turns it on (``model.trust_remote_code=true``); the console says once what is on and
why. A record's own inline suite (whose ``include_path`` task files may name Python) names the
point and is never evaluated: ``--evaluate`` gives the suite scored. A saved model carries its
folder's Python only when that code was trusted and ran.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from raysweep.config import ConfigError, SweepConfig, TrialConfig, apply_overrides, load_config
from raysweep.evaluation.__main__ import CARD_FILE, EVAL_FILE, name_flags, override, suite_spec
from raysweep.model_card import write_model_card
from raysweep.planning import PRUNING_OPTIONS

CARD_VERSION = 1
# Flags -> the sweep config fields they set (problem lines about a field name the flag).
_FLAGS = {
    "model.path": "--model",
    "calibration.sources": "--calibration",
    "calibration.mixes": "--calibration",
    "calibration.n_samples": "--n-samples",
    "calibration.seqlen": "--seqlen",
    "calibration.seeds": "--seed",
    "pruning.methods": "--method",
    "pruning.sparsities": "--sparsity",
    "pruning.structures": "--structure",
    "pruning.mode": "--mode",
    "evaluation.suite": "--evaluate",
}
# Settings that run code from outside raysweep, and what each runs (the same dotted names in a
# sweep config and in a record's trial config).
CODE_SWITCHES = {
    "model.trust_remote_code": "the model folder's Python (config.json auto_map) is imported "
    "and run",
    "evaluation.allow_code_execution": "code tasks run the programs the model writes",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m raysweep.prune",
        description="Prune one model with one calibration source or weighted mix; save it with "
        "its recipe card; optionally score it per capability dimension.",
    )
    p.add_argument("--config", help="sweep YAML for the base settings (default: the embedded one)")
    p.add_argument("--model", help="model.path: a local directory, Hub id or raysweep-toy")
    p.add_argument("--calibration", metavar="MIX",
                   help="one source ('toy_math_word'), a weighted mix "
                   "('toy_math_word=0.5,toy_general_prose=0.5') or a YAML file holding a mix "
                   "({source: weight} or {name: ..., weights: {...}})")  # fmt: skip
    p.add_argument("--method", help="magnitude, wanda, sparsegpt or ria")
    p.add_argument("--sparsity", help="target sparsity in [0, 1)")
    p.add_argument("--structure", help="unstructured or N:M (e.g. 2:4)")
    p.add_argument("--n-samples", help="calibration windows (calibration.n_samples)")
    p.add_argument("--seqlen", help="tokens per window (calibration.seqlen)")
    p.add_argument("--seed", help="calibration seed")
    p.add_argument("--mode", help="sequential or oneshot (pruning.mode)")
    p.add_argument("--from-record", nargs=2, metavar=("RUN", "TRIAL_ID"),
                   help="prune exactly the point of a record in RUN/records.jsonl (a trial id, "
                   "a unique prefix of one, or a trial label)")  # fmt: skip
    p.add_argument("--save", metavar="DIR", help="write the pruned model, tokenizer and card")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --save DIR")
    p.add_argument("--evaluate", metavar="SUITE",
                   help="score the pruned model: toy, fast, study or a suite YAML file")  # fmt: skip
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    return p


# --------------------------------------------------------------------------- resolving the point


def mix_overrides(value: str) -> list[str]:
    """``--calibration`` as sweep-config overrides: one source, or one named mix. The weights
    stay strings here: the schema parses and checks them."""
    path = Path(value).expanduser()
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        import yaml

        try:
            tree = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"--calibration: {value!r} is not valid YAML: {exc}") from None
        if not isinstance(tree, Mapping) or not tree:
            raise ConfigError(f"--calibration: {value!r} must hold a mapping {{source: weight}} "
                              "or {name: ..., weights: {source: weight}}")  # fmt: skip
        mix = dict(tree) if "weights" in tree else {"name": path.stem, "weights": dict(tree)}
    elif "=" in value:
        weights: dict[str, str] = {}
        for part in value.split(","):
            name, sep, weight = part.strip().rpartition("=")
            if not sep or not name:
                raise ConfigError(f"--calibration: {part.strip()!r} in {value!r} is not "
                                  "source=weight")  # fmt: skip
            weights[name.strip()] = weight.strip()
        mix = {"name": "mix", "weights": weights}
    else:
        return [override("calibration.sources", [value.strip()]),
                override("calibration.mixes", []),
                override("calibration.uniform_mix", False)]  # fmt: skip
    return [override("calibration.sources", []), override("calibration.mixes", [mix]),
            override("calibration.uniform_mix", False)]  # fmt: skip


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    out = []
    if args.calibration is not None:
        out += mix_overrides(args.calibration)
    for key, value in (
        ("model.path", args.model),
        ("calibration.n_samples", args.n_samples),
        ("calibration.seqlen", args.seqlen),
        ("pruning.mode", args.mode),
    ):
        if value is not None:
            out.append(override(key, value))
    for key, value in (
        ("calibration.seeds", args.seed),
        ("pruning.methods", args.method),
        ("pruning.sparsities", args.sparsity),
        ("pruning.structures", args.structure),
    ):
        if value is not None:
            out.append(override(key, [value]))
    return out + _structure_sparsity(args)


def _structure_sparsity(args: argparse.Namespace) -> list[str]:
    """``--structure N:M`` alone names the point: N:M fixes its sparsity, so the config's list of
    sparsities (for unstructured points) does not apply to it."""
    from raysweep.names import parse_structure

    if args.structure is None or args.sparsity is not None:
        return []
    try:
        nm = parse_structure(args.structure)
    except ValueError:
        return []  # the config's validator names the flag and what is allowed
    return [] if nm is None else [override("pruning.sparsities", [nm.sparsity])]


def sweep_tree(trial: TrialConfig) -> dict[str, Any]:
    """A sweep config whose only grid point is ``trial``."""
    return {
        "name": trial.sweep,
        "model": trial.model.model_dump(mode="json"),
        "calibration": {
            "sources": [],
            "mixes": [{"name": trial.mix_name, "weights": dict(trial.mix)}],
            "uniform_mix": False,
            "n_samples": trial.n_samples,
            "seqlen": trial.seqlen,
            "seeds": [trial.seed],
            "custom_sources": trial.custom_sources,
        },
        "pruning": {
            "methods": [trial.method],
            "sparsities": [trial.sparsity],
            "structures": [trial.structure],
            "mode": trial.mode,
            "allocations": [trial.allocation],
            "device": trial.pruning_device,
            **{name: getattr(trial, name) for name in PRUNING_OPTIONS},
        },
        "evaluation": trial.evaluation.model_dump(mode="json"),
        "resources": trial.resources.model_dump(mode="json"),
    }


def find_record(run_dir: str | Path, wanted: str) -> Any:  # -> TrialRecord
    """The record of ``wanted`` (trial id, unique id prefix or label) in ``run_dir``; an ``ok``
    record before an error one. Raises ConfigError naming what exists."""
    from raysweep.records import RECORDS_FILE, latest_per_trial, read_records

    path = Path(run_dir) / RECORDS_FILE
    if not path.is_file():
        raise ConfigError(f"--from-record: {str(run_dir)!r} holds no {RECORDS_FILE}")
    records = read_records(path, warn=False).records
    hits = [r for r in records if r.trial_id == wanted]
    if not hits:
        hits = [r for r in records if r.trial_id.startswith(wanted) and len(wanted) >= 4]
    if not hits:
        hits = [r for r in records if _label(r) == wanted]
    ids = sorted({r.trial_id for r in hits})
    if not hits:
        raise ConfigError(f"--from-record: no record of {wanted!r} among the {len(records)} "
                          f"records of {path} (give a trial_id or a label such as "
                          "'wanda-0.6-toy_math_word-s0')")  # fmt: skip
    if len(ids) > 1:
        raise ConfigError(f"--from-record: {wanted!r} names {len(ids)} trials ({', '.join(ids)})")
    (record,) = latest_per_trial(hits).values()
    if not record.config:
        raise ConfigError(f"--from-record: the record of {ids[0]} in {path} has no config")
    return record


def _label(record: Any) -> str | None:
    try:
        return TrialConfig.model_validate(record.config).label
    except ValueError:  # a record without a config, or of an older schema
        return None


def code_switches(tree: Mapping[str, Any]) -> list[str]:
    """The :data:`CODE_SWITCHES` that are on in a config or trial config ``tree``."""
    on = []
    for dotted in CODE_SWITCHES:
        section, name = dotted.split(".")
        if (tree.get(section) or {}).get(name) is True:
            on.append(dotted)
    return on


def _switched_off(tree: dict[str, Any]) -> dict[str, Any]:
    """``tree`` (read from a file that is not this run's config) with every code switch off."""
    for dotted in CODE_SWITCHES:
        section, name = dotted.split(".")
        if isinstance(tree.get(section), dict):
            tree[section][name] = False
    return tree


def code_lines(cfg: SweepConfig, record: Any) -> list[str]:
    """What runs code from outside raysweep in this command, and why: once, for the console."""
    on = code_switches(cfg.model_dump(mode="json"))
    lines = []
    if record is not None:
        off = [s for s in code_switches(record.config) if s not in on]
        if off:
            lines.append(f"[raysweep] the record enables {', '.join(off)}: not enabled (a "
                         "records file is data; to run that code pass "
                         f"{' '.join(f'{s}=true' for s in off)} on this command line)")  # fmt: skip
    where = "on this command line" if record is not None else "by --config or an override"
    lines += [f"[raysweep] enabled: {s} ({where}): {CODE_SWITCHES[s]}" for s in on]
    return lines


def resolve(args: argparse.Namespace) -> tuple[SweepConfig, TrialConfig, Any]:
    """(the validated sweep config, its one point, the record it reproduces or None)."""
    from raysweep.config import validate_config
    from raysweep.planning import trial_points

    record = None
    try:
        flags = _flag_overrides(args)
        suite = (
            []
            if args.evaluate is None
            else [override("evaluation.suite", suite_spec(args.evaluate, "--evaluate"))]
        )
        if args.from_record:
            if flags or args.config:
                raise ConfigError("--from-record takes the point from the record: give no "
                                  "--config, --calibration, --method, --sparsity, ... with it")  # fmt: skip
            record = find_record(*args.from_record)
            trial = TrialConfig.model_validate(record.config)
            tree = _switched_off(sweep_tree(trial))  # only this command line turns code on
            cfg = validate_config(apply_overrides(tree, [*args.overrides, *suite]),
                                  mix_names=False)  # fmt: skip
        else:
            cfg = load_config(args.config, [*args.overrides, *flags, *suite])
    except ValueError as exc:  # ConfigError included
        raise ConfigError(name_flags(str(exc), _FLAGS)) from None
    points = trial_points(cfg, phase=record.phase if record is not None else "grid")
    if len(points) != 1:
        raise ConfigError(_many_points(cfg, len(points)))
    if args.save:
        _check_save_dir(Path(args.save), args.overwrite)
    return cfg, points[0], record


def _many_points(cfg: SweepConfig, n: int) -> str:
    from raysweep.planning import mixes_of

    axes = {"--calibration": [name for name, _ in mixes_of(cfg)],
            "--method": cfg.pruning.methods, "--sparsity": cfg.pruning.sparsities,
            "--structure": cfg.pruning.structures, "--seed": cfg.calibration.seeds}  # fmt: skip
    lines = [f"the configuration gives {n} points, this command prunes one:"]
    lines += [f"  {flag}: {len(values)} values {values[:6]}; give one" for flag, values in
              axes.items() if len(values) > 1]  # fmt: skip
    return "\n".join(lines)


def _check_save_dir(directory: Path, overwrite: bool) -> None:
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--save: {str(directory)!r} exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise ConfigError(f"--save: {str(directory)!r} is not empty (pass --overwrite to "
                          "replace the model in it)")  # fmt: skip


# --------------------------------------------------------------------------- pruning and saving


def prune_point(trial: TrialConfig, *, log: Any = print) -> Any:  # -> pipeline.PrunedTrial
    """Prune ``trial``'s model in this process, logging each stage and each decoder layer."""
    from raysweep.pipeline import prune_trial

    t0 = time.perf_counter()

    def stage(name: str) -> None:
        log(f"[raysweep] {name} ({time.perf_counter() - t0:.1f}s)")

    def progress(done: int, total: int) -> None:
        log(f"[raysweep]   layer {done}/{total} pruned ({time.perf_counter() - t0:.1f}s)")

    return prune_trial(trial, stage=stage, progress=progress, keep_pristine=False)


def recipe_card(
    trial: TrialConfig, pruned: Any, *, total_s: float, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What a saved model is and how it was made: enough to make it again (``config``)."""
    from raysweep.calibration import allocate_counts
    from raysweep.pipeline import allocation_options, method_options, versions

    report = pruned.report
    card: dict[str, Any] = {
        "raysweep_prune": CARD_VERSION,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "trial_id": trial.trial_id,
        "label": trial.label,
        "model": {
            "path": trial.model.path,
            "revision": trial.model.revision,
            "dtype": trial.model.dtype,
            "trust_remote_code": trial.model.trust_remote_code,
            "loaded_from": pruned.loaded.path,
        },  # fmt: skip
        "calibration": {
            "mix_name": trial.mix_name,
            "mix": dict(trial.mix),
            "counts": allocate_counts(trial.mix, trial.n_samples),
            "n_samples": trial.n_samples,
            "seqlen": trial.seqlen,
            "seed": trial.seed,
            "tokens": int(pruned.calibration.numel()),
            "custom_sources": {k: v for k, v in trial.custom_sources.items() if k in trial.mix},
            "metrics": dict(pruned.metrics),
        },
        "pruning": {
            "method": trial.method,
            "options": {**method_options(trial), **allocation_options(trial)},
            "structure": trial.structure,
            "sparsity": trial.sparsity,
            "mode": trial.mode,
            "device": str(pruned.prune_device),
            "achieved_sparsity": float(report.achieved_sparsity),
            "decoder_zero_fraction": float(report.decoder_zero_fraction),
            "dense_kept": dict(report.dense_kept),
            "statistics_fallback": dict(report.statistics_fallback),
            "ignore": list(trial.ignore),
            "allocation": trial.allocation,
            "layer_sparsity": list(report.layer_sparsity),
            "layer_structure": list(report.layer_structure),
            "outlier_shares": report.outlier_shares,
            "refine": trial.refine,
            "refined_units": report.refined_units,
            "per_module": dict(report.per_module),
        },
        "timings": pruned.timings(trial, total_s),
        "peak_memory_bytes": dict(report.peak_memory_bytes),
        "versions": versions(),
        "config": trial.model_dump(mode="json"),
    }
    if report.extra or pruned.expert_tokens is not None:
        card["experts"] = {**report.extra, "expert_tokens": pruned.expert_tokens}
    card.update(extra or {})
    return card


def save_pruned(pruned: Any, directory: str | Path, card: Mapping[str, Any]) -> dict[str, Any]:
    """Write the pruned model and tokenizer (``save_pretrained``: dense safetensors with zeros),
    the recipe card and the model card. Returns ``{"dir", "bytes", "files", "save_s"}``.

    Everything is written into a staging folder beside ``directory`` that replaces it only once
    complete: a kill or a full disk mid-save leaves the previous folder (or none), never a
    directory of half-written shards."""
    import shutil

    from raysweep.atomic import replace_dir, write_text_atomic

    t0 = time.perf_counter()
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".{directory.name}.saving-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    model, tokenizer = pruned.loaded.model, pruned.loaded.tokenizer
    # load_dense turns the KV cache off for calibration; a saved model generates as it did.
    use_cache = getattr(model.config, "use_cache", None)
    model.config.use_cache = True
    # A model loaded without its folder's code (not trusted) is saved without a pointer to it.
    auto_map = _drop_auto_map(model.config.__dict__, model)
    tok_map = _drop_auto_map(tokenizer.init_kwargs, tokenizer)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        save_s = time.perf_counter() - t0
        card = {**card, "timings": {**card.get("timings", {}), "save_s": save_s}}
        write_text_atomic(staging / CARD_FILE, json.dumps(card, indent=1) + "\n")
        write_model_card(staging, card)
        replace_dir(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        model.config.use_cache = use_cache
        if auto_map is not None:
            model.config.auto_map = auto_map
        if tok_map is not None:
            tokenizer.init_kwargs["auto_map"] = tok_map
    files = sorted(p for p in directory.iterdir() if p.is_file())
    return {"dir": str(directory), "bytes": sum(p.stat().st_size for p in files),
            "files": [p.name for p in files], "save_s": save_s}  # fmt: skip


def _drop_auto_map(fields: dict[str, Any], obj: Any) -> Any:
    """Take ``auto_map`` out of ``fields`` unless ``obj`` is a class of remote code; what was
    taken, or None."""
    if getattr(obj, "_auto_class", None) is not None:  # loaded from trusted remote code
        return None
    return fields.pop("auto_map", None)


def score_pruned(trial: TrialConfig, pruned: Any) -> Any:  # -> CapabilityScores
    """The pruned model's scores on ``trial.evaluation``."""
    from raysweep.dense import evaluate

    ev = trial.evaluation
    return evaluate(pruned.loaded.model, pruned.loaded.tokenizer, ev.suite, ev)


def with_retention(trial: TrialConfig, scores: Any, eval_s: float) -> dict[str, Any]:
    """Pruned ``scores`` beside the dense baseline's and the retention: the cached baseline, or
    the dense model loaded and scored once (and cached), so call it with the pruned model
    released."""
    from raysweep.dense import dense_baseline
    from raysweep.evaluation import get_suite, score_retention

    ev = trial.evaluation
    suite = get_suite(ev.suite)
    dense = dense_baseline(trial, keep_pristine=False)
    ret = score_retention(scores, dense.scores, suite)
    return {
        "suite": suite.name,
        "evaluation": ev.model_dump(mode="json"),
        **scores.to_dict(),
        "dense_task_scores": dict(dense.scores.task_scores),
        "dense_dimension_scores": dict(dense.scores.dimension_scores),
        "dense_perplexity": dict(dense.scores.perplexity),
        "dense_cache_key": dense.key,
        "retention": dict(ret.retention),
        "retention_above_chance": dict(ret.retention_above_chance),
        "total_retention": ret.total_retention,
        "worst_retention": ret.worst_retention,
        "unmeasurable": list(ret.undefined),
        "eval_s": eval_s,
    }


def _print_point(trial: TrialConfig, record: Any, *, overrides: bool) -> None:
    from raysweep.calibration import allocate_counts

    counts = allocate_counts(trial.mix, trial.n_samples)
    mix = ", ".join(f"{k}={trial.mix[k]:.4g} ({counts[k]} windows)" for k in trial.mix)
    print(f"[raysweep] point {trial.label} (trial {trial.trial_id}): {trial.model.path}, "
          f"{trial.method} {trial.structure} {trial.sparsity:g}, {trial.mode}; calibration "
          f"{mix}; {trial.n_samples} x {trial.seqlen} tokens, seed {trial.seed}", flush=True)  # fmt: skip
    if record is not None and record.trial_id != trial.trial_id:
        off = set(code_switches(record.config)) - set(code_switches(trial.model_dump(mode="json")))
        why = [w for w, yes in (("the overrides", overrides), ("code execution off", off)) if yes]
        why = why or ["its id as another raysweep version computed it"]
        print(f"[raysweep] note: the point is not the record's ({' and '.join(why)}): trial "
              f"{trial.trial_id}, the record is {record.trial_id}", flush=True)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # before the heavy imports: --help is instant
    from raysweep.pipeline import is_deterministic
    from raysweep.preflight import preflight

    try:
        cfg, trial, record = resolve(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = preflight(cfg)
    for problem in problems:
        print(f"error: {name_flags('  ' + problem, _FLAGS).strip()}", file=sys.stderr)
    if problems:
        return 2
    for line in code_lines(cfg, record):
        print(line, flush=True)
    _print_point(trial, record, overrides=bool(args.overrides or args.evaluate))
    try:
        pruned = _prune_and_save(args, trial, record)
        if args.evaluate is None:
            return 0
        print("[raysweep] evaluating the pruned model", flush=True)
        t0 = time.perf_counter()
        scores = score_pruned(trial, pruned)
        del pruned  # the dense model may have to be loaded next
        _write_evaluation(args, with_retention(trial, scores, time.perf_counter() - t0))
    except Exception as exc:
        if not is_deterministic(exc):  # a fault of the machine or of the code: the traceback
            raise
        # Data that only the work itself could read (a source too small, a bad file row).
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


def _prune_and_save(args: argparse.Namespace, trial: TrialConfig, record: Any) -> Any:
    t0 = time.perf_counter()
    pruned = prune_point(trial, log=lambda line: print(line, flush=True))
    report = pruned.report
    print(f"[raysweep] achieved sparsity {report.achieved_sparsity:.4f} over "
          f"{len(report.per_module)} matrices in {pruned.prune_s:.1f}s", flush=True)  # fmt: skip
    extra: dict[str, Any] = {}
    if record is not None:
        extra["from_record"] = {"run": str(Path(args.from_record[0]).resolve()),
                                "trial_id": record.trial_id, "status": record.status,
                                "worst_retention": record.worst_retention}  # fmt: skip
    if args.save:
        card = recipe_card(trial, pruned, total_s=time.perf_counter() - t0, extra=extra)
        saved = save_pruned(pruned, args.save, card)
        print(f"[raysweep] saved to {saved['dir']}: {saved['bytes'] / 1e6:.1f} MB in "
              f"{saved['save_s']:.1f}s ({', '.join(saved['files'])})", flush=True)  # fmt: skip
    return pruned


def _write_evaluation(args: argparse.Namespace, result: Mapping[str, Any]) -> None:
    """Print the scores; with ``--save``, add them to the card and write them beside it."""
    from raysweep.atomic import write_text_atomic

    _print_scores(result)
    if not args.save:
        return
    card = {**json.loads((Path(args.save) / CARD_FILE).read_text()), "evaluation": result}
    write_text_atomic(Path(args.save) / CARD_FILE, json.dumps(card, indent=1) + "\n")
    write_model_card(args.save, card)
    write_text_atomic(Path(args.save) / EVAL_FILE, json.dumps(result, indent=1) + "\n")


def _print_scores(result: Mapping[str, Any]) -> None:
    from raysweep.evaluation import get_suite
    from raysweep.evaluation.__main__ import format_scores

    suite = get_suite(result["evaluation"]["suite"])
    print(format_scores(suite, result["task_scores"], result["dimension_scores"],
                        dense_dimension_scores=result["dense_dimension_scores"],
                        retention=result["retention"]))  # fmt: skip
    worst, total = result["worst_retention"], result["total_retention"]
    if worst is not None:
        print(f"worst retention {worst:.3f}, total {total:.3f}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
