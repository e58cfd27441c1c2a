"""``python -m raysweep.evaluation MODEL --suite toy|fast|study|FILE``: score one saved model.

Scores a model directory (dense or pruned, e.g. one written by ``python -m raysweep.prune --save``)
or a model name on a suite, prints per-task and per-dimension scores and writes them as JSON
(``--json PATH``; default ``<MODEL>/raysweep_eval.json`` when MODEL is a directory). Evaluation
settings come from ``--config`` (a sweep config: its ``evaluation`` and ``model`` sections;
default: the embedded toy sweep's) and the flags, validated by the sweep config's schema. A model
without a recipe card (``raysweep_prune.json``) is a dense model: its scores go through the
dense-baseline cache, so naming the model as a sweep config does (``raysweep-toy``) reuses the
sweep's dense baseline. A pruned model's scores are never cached; its card names the dense model,
whose cached baseline, if present, gives the retention.

``python -m raysweep.evaluation --prefetch (--suite NAME | --config PATH)`` downloads every dataset
of a suite into this node's Hugging Face cache, once per node: a marker file under the raysweep
cache records a finished prefetch (``--force`` repeats it). Trials can then run with
``HF_HUB_OFFLINE=1``, avoiding Hub rate limits and concurrent-download races.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from raysweep.atomic import file_lock, write_json_atomic
from raysweep.evaluation.dimensions import SUITES, Suite, get_suite, suite_from_mapping
from raysweep.evaluation.harness import prefetch_suite

EVAL_FILE = "raysweep_eval.json"
CARD_FILE = "raysweep_prune.json"  # the recipe card of a model saved by raysweep.prune


def _suite_from_config(path: str) -> tuple[Suite, bool]:
    from raysweep.config import load_config

    config = load_config(path)
    spec = config.evaluation.suite
    # An inline suite's relative include_path is relative to the config file.
    suite = (
        get_suite(spec) if isinstance(spec, str) else suite_from_mapping(spec, Path(path).parent)
    )
    return suite, bool(config.evaluation.perplexity)


def prefetch_once(
    suite: Suite, *, perplexity: bool, marker_dir: Path, force: bool
) -> dict[str, Any]:
    """Prefetch under a node-wide lock; a marker makes later calls on this node return at once."""
    marker = marker_dir / f"{suite.name}-{suite.fingerprint()}{'-ppl' if perplexity else ''}.json"
    with file_lock(marker_dir / f".{marker.stem}.lock"):
        if marker.is_file() and not force:
            return {**json.loads(marker.read_text()), "already_done": True}
        tasks = prefetch_suite(suite, perplexity=perplexity)
        info = {"suite": suite.name, "tasks": tasks, "perplexity": perplexity}
        write_json_atomic(marker, info)
        return {**info, "already_done": False}


# --------------------------------------------------------------------------- shared by CLIs


def suite_spec(value: str, flag: str = "--suite") -> str | dict[str, Any]:
    """``--suite`` as ``evaluation.suite`` takes it: a built-in name, or from a YAML FILE either
    a suite mapping (``name``, ``tasks``, ``include_path``) or a sweep config's
    ``evaluation.suite``. A relative ``include_path`` is made absolute against the file's folder.
    Raises ValueError naming what is allowed."""
    if value in SUITES:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(
            f"{flag}: {value!r} is neither a built-in suite ({', '.join(SUITES)}) nor a file"
        )
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{flag}: {value!r} is not valid YAML: {exc}") from None
    if isinstance(tree, Mapping) and isinstance(tree.get("evaluation"), Mapping):
        tree = tree["evaluation"].get("suite", "toy")
    if isinstance(tree, str):
        return tree
    if not isinstance(tree, Mapping) or "tasks" not in tree:
        raise ValueError(
            f"{flag}: {value!r} holds no suite: give a mapping with 'tasks' (and 'name', "
            "'include_path') or a sweep config with evaluation.suite"
        )
    spec = dict(tree)
    include = spec.get("include_path")
    if isinstance(include, str) and not Path(include).expanduser().is_absolute():
        spec["include_path"] = str((path.resolve().parent / include).resolve())
    return spec


def override(key: str, value: Any) -> str:
    """A ``key.sub=value`` override whose value the schema, not YAML, interprets (quoted)."""
    return f"{key}={json.dumps(value)}"


def name_flags(message: str, flags: Mapping[str, str]) -> str:
    """Prefix each problem line about a config field a flag sets with that flag's name."""
    out = []
    for line in message.splitlines():
        m = re.match(r"^(\s+)([\w.]+):", line)
        if m:
            field = m.group(2)
            flag = next((f for k, f in flags.items() if field == k or field.startswith(k + ".")),
                        None)  # fmt: skip
            if flag is not None:
                line = f"{m.group(1)}{flag} ({field}):{line[m.end() :]}"
        out.append(line)
    return "\n".join(out)


def _fmt(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.3f}"


def format_scores(
    suite: Suite,
    task_scores: Mapping[str, float],
    dimension_scores: Mapping[str, float],
    *,
    dense_dimension_scores: Mapping[str, float] | None = None,
    retention: Mapping[str, float | None] | None = None,
) -> str:
    """A plain-text table: one line per task, then one per dimension (with the dense score and
    the retention when given)."""
    lines = [f"{'task':34s} {'dimension':12s} {'metric':24s}  score"]
    for t in suite.tasks:
        lines.append(f"{t.name:34s} {t.dimension:12s} {t.metric:24s} {_fmt(task_scores[t.name])}")
    head = f"{'dimension':12s}  score"
    if dense_dimension_scores is not None:
        head += "   dense  retention"
    lines += ["", head]
    for dim in suite.dimensions:
        row = f"{dim:12s} {_fmt(dimension_scores[dim])}"
        if dense_dimension_scores is not None:
            kept = (retention or {}).get(dim)
            row += f"  {_fmt(dense_dimension_scores.get(dim))}     {_fmt(kept)}"
        lines.append(row)
    return "\n".join(lines)


# --------------------------------------------------------------------------- scoring one model

_FLAGS = {
    "model.path": "MODEL",
    "model.dtype": "--dtype",
    "model.device": "--device",
    "evaluation.suite": "--suite",
    "evaluation.limit": "--limit",
    "evaluation.item_selection": "--item-selection",
    "evaluation.item_seed": "--item-seed",
    "evaluation.batch_size": "--batch-size",
    "evaluation.max_length": "--max-length",
    "evaluation.seed": "--seed",
    "evaluation.perplexity": "--perplexity",
    "evaluation.allow_code_execution": "--allow-code-execution",
}


def _settings(args: argparse.Namespace) -> Any:  # -> SweepConfig
    """The sweep schema's model and evaluation sections for this command (ConfigError if bad)."""
    from raysweep.config import ConfigError, load_config

    overrides = [override("model.path", args.model)]
    for key, value in (
        ("model.dtype", args.dtype),
        ("model.device", args.device),
        ("evaluation.limit", args.limit),
        ("evaluation.item_selection", args.item_selection),
        ("evaluation.item_seed", args.item_seed),
        ("evaluation.batch_size", args.batch_size),
        ("evaluation.max_length", args.max_length),
        ("evaluation.seed", args.seed),
        ("evaluation.perplexity", args.perplexity),
    ):
        if value is not None:
            overrides.append(override(key, value))
    if args.allow_code_execution:
        overrides.append(override("evaluation.allow_code_execution", True))
    try:
        if args.suite is not None:
            overrides.append(override("evaluation.suite", suite_spec(args.suite)))
        return load_config(args.config, overrides)
    except ValueError as exc:  # ConfigError included
        raise ConfigError(name_flags(str(exc), _FLAGS)) from None


def _card(model: str) -> dict[str, Any] | None:
    path = Path(model).expanduser() / CARD_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def score_model(cfg: Any, *, use_cache: bool = True) -> dict[str, Any]:
    """Score ``cfg.model`` on ``cfg.evaluation``: the JSON this command writes.

    A model with a recipe card is scored afresh and compared with its dense model's cached
    baseline when there is one; any other model is a dense model, scored through the
    dense-baseline cache unless ``use_cache`` is False.
    """
    import torch

    from raysweep.dense import dense_key, evaluate, read_baseline, score_dense
    from raysweep.evaluation import score_retention
    from raysweep.models import load_dense, resolve_device, resolve_model_path
    from raysweep.pipeline import versions

    ev, spec = cfg.evaluation, cfg.model
    suite = get_suite(ev.suite)
    card = _card(spec.path)
    key = dense_key(spec, ev)
    t0 = time.perf_counter()
    cached = read_baseline(key) if card is None and use_cache else None
    dense_info: dict[str, Any] = {"cache_key": key, "reused": cached is not None}
    if cached is not None:
        scores = cached.scores
    else:
        torch.set_num_threads(cfg.resources.torch_threads)
        device = resolve_device(spec.device, want_gpu=cfg.resources.gpu > 0)
        loaded = load_dense(spec, device, keep_pristine=False)
        if card is None and use_cache:
            scores = score_dense(loaded.model, loaded.tokenizer, spec, ev).scores
        else:
            scores = evaluate(loaded.model, loaded.tokenizer, suite, ev)
        del loaded
    out: dict[str, Any] = {
        "model": spec.path,
        "model_path": resolve_model_path(spec),
        "pruned": card is not None,
        "suite": suite.name,
        "suite_fingerprint": suite.fingerprint(),
        "evaluation": ev.model_dump(mode="json"),
        "tasks": [
            {
                "name": t.name,
                "dimension": t.dimension,
                "metric": t.metric,
                "chance": t.chance,
                "score": scores.task_scores[t.name],
            }
            for t in suite.tasks
        ],  # fmt: skip
        # A cached dense entry may hold per-item values; this file keeps the scores only.
        **scores.without_items().to_dict(),
        "eval_s": time.perf_counter() - t0,
        "versions": versions(),
    }
    if card is None:
        out["dense_cache"] = dense_info if use_cache else None
        return out
    from raysweep.config import ModelConfig

    dense_spec = ModelConfig.model_validate(card["config"]["model"])
    out["dense_model"] = dense_spec.path
    out["dense_cache_key"] = dense_key(dense_spec, ev)
    dense = read_baseline(out["dense_cache_key"])
    if dense is not None:
        ret = score_retention(scores, dense.scores, suite)
        out["dense_dimension_scores"] = dict(dense.scores.dimension_scores)
        out["retention"] = dict(ret.retention)
        out["total_retention"] = ret.total_retention
        out["worst_retention"] = ret.worst_retention
    return out


def _score_main(args: argparse.Namespace) -> int:
    from raysweep.config import ConfigError
    from raysweep.preflight import preflight

    try:
        cfg = _settings(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = [p for p in preflight(cfg) if not p.startswith("calibration")]
    for problem in problems:
        print(f"error: {name_flags('  ' + problem, _FLAGS).strip()}", file=sys.stderr)
    if problems:
        return 2
    model_dir = Path(cfg.model.path).expanduser()
    target = (
        Path(args.json) if args.json else (model_dir / EVAL_FILE if model_dir.is_dir() else None)
    )
    suite = get_suite(cfg.evaluation.suite)
    from raysweep.evaluation.subsets import cut_tasks

    ev = cfg.evaluation
    items = f", {ev.item_selection} items" if cut_tasks(suite, ev.limit) else ""
    print(f"[raysweep] scoring {cfg.model.path} on suite {suite.name!r} "
          f"(limit {ev.limit}{items}, seed {ev.seed})", flush=True)  # fmt: skip
    result = score_model(cfg, use_cache=not args.no_cache)
    cache = result.get("dense_cache")
    if cache:
        state = "reused" if cache["reused"] else "evaluated and stored"
        print(f"[raysweep] dense-baseline cache: {state} {cache['cache_key']}", flush=True)
    elif result["pruned"] and "retention" not in result:
        print(f"[raysweep] no cached dense baseline of {result['dense_model']} for these "
              f"settings: score it with python -m raysweep.evaluation {result['dense_model']} "
              "and the same flags to see retention", flush=True)  # fmt: skip
    print(format_scores(suite, result["task_scores"], result["dimension_scores"],
                        dense_dimension_scores=result.get("dense_dimension_scores"),
                        retention=result.get("retention")))  # fmt: skip
    if result.get("worst_retention") is not None:
        print(f"worst retention {result['worst_retention']:.3f}, total "
              f"{result['total_retention']:.3f}")  # fmt: skip
    if target is not None:
        write_json_atomic(target, result)
        print(f"[raysweep] scores written to {target}", flush=True)
    else:
        print("[raysweep] scores not written: MODEL is not a directory (give --json PATH)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m raysweep.evaluation",
        description="Score one model on a capability suite, or --prefetch a suite's datasets.",
    )
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="model directory, Hub id or raysweep-toy / raysweep-toy-moe")  # fmt: skip
    p.add_argument("--suite", help="toy, fast, study, or a YAML FILE with a suite")
    p.add_argument("--config", help="sweep config whose model and evaluation settings are used "
                   "(default: the embedded toy sweep's)")  # fmt: skip
    p.add_argument("--json", help=f"where to write the scores (default: MODEL/{EVAL_FILE})")
    p.add_argument("--limit", help="items per task (evaluation.limit)")
    p.add_argument("--item-selection", help="the items a limit keeps: random (a seeded random "
                   "subset) or first (evaluation.item_selection)")  # fmt: skip
    p.add_argument("--item-seed", help="seed of the random item subsets (evaluation.item_seed)")
    p.add_argument("--batch-size", help="evaluation.batch_size")
    p.add_argument("--max-length", help="evaluation.max_length")
    p.add_argument("--seed", help="evaluation.seed")
    p.add_argument("--perplexity", action=argparse.BooleanOptionalAction, default=None,
                   help="also score held-out perplexity (evaluation.perplexity; with --prefetch: "
                   "also fetch the held-out corpus)")  # fmt: skip
    p.add_argument("--allow-code-execution", action="store_true",
                   help="run suites whose tasks execute model-written code")  # fmt: skip
    p.add_argument("--dtype", help="model.dtype: float32, bfloat16, float16 or auto")
    p.add_argument("--device", help="model.device: auto, cpu or cuda")
    p.add_argument("--no-cache", action="store_true",
                   help="score a dense model afresh instead of through the dense-baseline cache")  # fmt: skip
    p.add_argument("--prefetch", action="store_true", help="download the suite's datasets")
    p.add_argument("--force", action="store_true", help="prefetch even if done on this node")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.prefetch:
        if args.model is None:
            parser.error("give a MODEL to score, or --prefetch a suite")
        return _score_main(args)
    if args.model is not None:
        parser.error("--prefetch takes no MODEL")
    if (args.suite is None) == (args.config is None):
        parser.error("--prefetch needs exactly one of --suite NAME or --config PATH")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        if args.config:
            suite, perplexity = _suite_from_config(args.config)
        else:
            suite, perplexity = get_suite(args.suite), False
    except ValueError as err:  # also the config module's ConfigError
        parser.error(str(err))
    from raysweep.paths import cache_dir

    info = prefetch_once(
        suite,
        perplexity=perplexity or bool(args.perplexity),
        marker_dir=cache_dir() / "prefetch",
        force=args.force,
    )
    state = "already prefetched on this node" if info["already_done"] else "prefetched"
    print(
        f"suite {suite.name!r}: {state}: {len(info['tasks'])} task(s): {', '.join(info['tasks'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
