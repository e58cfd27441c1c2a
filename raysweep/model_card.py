"""The Hub model card (``README.md``) of a saved pruned model, made from its recipe card.

A YAML header with the Hub's model-card metadata (``base_model`` where the dense model is a Hub
id, ``library_name``, ``tags``, ``datasets`` for calibration sources read from the Hub), then
what a reader of the Hub page needs: how it was pruned (method, structure, allocation,
refinement), how sparse it is (over the prunable matrices and over the whole decoder, what was
kept dense), the calibration mix with its windows per source, the retention per capability
dimension against the dense scores when it was evaluated, and the command that makes it again.
Everything comes from the recipe card (``raysweep_prune.json``) written beside it.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MODEL_CARD_FILE = "README.md"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _hub_id(path: str) -> str | None:
    """``path`` when it names a Hub repository rather than a local folder."""
    return path if _HUB_ID.match(path) and not Path(path).expanduser().exists() else None


def _datasets(mix: Mapping[str, float], custom: Mapping[str, Any]) -> list[str]:
    """Hub dataset ids behind the calibration sources (none for local or generated ones)."""
    from raysweep.calibration import get_source, source_from_spec

    found = []
    for name in mix:
        try:
            source = source_from_spec(name, custom[name]) if name in custom else get_source(name)
        except (KeyError, ValueError):
            continue
        dataset = getattr(source, "dataset", None)
        if isinstance(dataset, str) and dataset and dataset not in found:
            found.append(dataset)
    return found


def _header(card: Mapping[str, Any]) -> str:
    import yaml

    pruning, calibration = card["pruning"], card["calibration"]
    tags = ["pruned", "sparsity", "raysweep", pruning["method"]]
    if pruning["structure"] != "unstructured":
        tags.append(f"{pruning['structure']}-sparsity")
    if pruning.get("allocation", "uniform") != "uniform":
        tags.append(pruning["allocation"])
    if pruning.get("refine", "none") != "none":
        tags.append(pruning["refine"])
    meta: dict[str, Any] = {"library_name": "transformers", "tags": tags}
    base = _hub_id(card["model"]["path"])
    if base:
        meta["base_model"] = base
    datasets = _datasets(calibration["mix"], calibration.get("custom_sources", {}))
    if datasets:
        meta["datasets"] = datasets
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _command(card: Mapping[str, Any]) -> str:
    config = card["config"]
    mix = ",".join(f"{k}={v!r}" for k, v in config["mix"].items())
    argv = ["python", "-m", "raysweep.prune", "--model", config["model"]["path"],
            "--calibration", mix, "--method", config["method"],
            "--sparsity", f"{config['sparsity']:g}", "--structure", config["structure"],
            "--n-samples", str(config["n_samples"]), "--seqlen", str(config["seqlen"]),
            "--seed", str(config["seed"]), "--mode", config["mode"]]  # fmt: skip
    if config.get("allocation", "uniform") != "uniform":
        argv += [f"pruning.allocations=[{config['allocation']}]",
                 f"pruning.owl_m={config['owl_m']}", f"pruning.owl_lambda={config['owl_lambda']}"]  # fmt: skip
    if config.get("refine", "none") != "none":
        argv.append(f"pruning.refine={config['refine']}")
    if config.get("ignore"):
        argv.append("pruning.ignore=" + json.dumps(config["ignore"]))
    argv += ["--save", "DIR"]
    return " ".join(shlex.quote(a) for a in argv)


def _body(card: Mapping[str, Any]) -> list[str]:
    pruning, calibration = card["pruning"], card["calibration"]
    lines = [
        f"# {Path(str(card['model']['path'])).name} pruned with {pruning['method']}", "",
        f"Pruned by [raysweep](https://pypi.org/project/raysweep/) from `{card['model']['path']}` "
        f"(revision `{card['model'].get('revision') or 'main'}`): a dense checkpoint with exact "
        "zeros, no sparse format. "
        + ("It was loaded with `trust_remote_code`: the folder carries the model's own code."
           if card["model"].get("trust_remote_code") else
           "It carries no remote code (its model class ships with transformers)."), "",
        "## Pruning", "",
        "| | |", "|---|---|",
        f"| method | {pruning['method']} |",
        f"| structure | {pruning['structure']} |",
        f"| target sparsity | {_percent(pruning['sparsity'])} |",
        f"| layer-wise allocation | {pruning.get('allocation', 'uniform')} |",
        f"| mask refinement | {pruning.get('refine', 'none')} |",
        f"| mode | {pruning['mode']} |",
        f"| achieved sparsity (prunable matrices) | {_percent(pruning['achieved_sparsity'])} |",
        f"| zeros over all decoder-layer parameters | "
        f"{_percent(pruning.get('decoder_zero_fraction'))} |",
        "",
    ]  # fmt: skip
    kept = pruning.get("dense_kept") or {}
    if kept:
        lines += ["Kept dense (share of the decoder-layer parameters): "
                  + ", ".join(f"{k} {_percent(v)}" for k, v in kept.items()) + ".", ""]  # fmt: skip
    if pruning.get("statistics_fallback"):
        lines += ["Pruned by magnitude for want of input statistics (read without being called): "
                  + ", ".join(f"`{k}`" for k in pruning["statistics_fallback"]) + ".", ""]  # fmt: skip
    if pruning.get("allocation", "uniform") != "uniform" and pruning.get("layer_sparsity"):
        per_layer = ", ".join(f"{100 * s:.1f}" for s in pruning["layer_sparsity"])
        lines += [f"Per-layer sparsity (%), decoder layer 0 first: {per_layer}.", ""]
    counts = calibration.get("counts") or {}
    lines += ["## Calibration", "",
              f"{calibration['n_samples']} windows of {calibration['seqlen']} tokens, seed "
              f"{calibration['seed']} (mix `{calibration['mix_name']}`):", "",
              "| source | weight | windows |", "|---|---:|---:|"]  # fmt: skip
    lines += [f"| {s} | {w:.4g} | {counts.get(s, '')} |" for s, w in calibration["mix"].items()]
    lines.append("")
    evaluation = card.get("evaluation")
    if evaluation:
        dense = evaluation.get("dense_dimension_scores") or {}
        lines += ["## Retention per capability dimension", "",
                  f"Suite `{evaluation.get('suite') or evaluation['evaluation']['suite']}`; retention = pruned score / dense "
                  "score.", "", "| dimension | pruned | dense | retention |",
                  "|---|---:|---:|---:|"]  # fmt: skip
        for dim, score in evaluation["dimension_scores"].items():
            ret = (evaluation.get("retention") or {}).get(dim)
            lines.append(f"| {dim} | {score:.4f} | {dense.get(dim, float('nan')):.4f} | "
                         f"{'n/a' if ret is None else f'{ret:.3f}'} |")  # fmt: skip
        worst, total = evaluation.get("worst_retention"), evaluation.get("total_retention")
        if worst is not None:
            lines += ["", f"Worst-case retention {worst:.3f}, total (mean) {total:.3f}."]
        lines.append("")
    lines += ["## Reproduce", "", "```bash", _command(card), "```", "",
              f"The recipe card `raysweep_prune.json` holds the full configuration "
              f"(trial `{card['trial_id']}`).", ""]  # fmt: skip
    return lines


def model_card(card: Mapping[str, Any]) -> str:
    """The ``README.md`` text of a saved pruned model from its recipe card."""
    return _header(card) + "\n" + "\n".join(_body(card))


def write_model_card(directory: str | Path, card: Mapping[str, Any]) -> Path:
    """Write (atomically) ``directory/README.md`` from ``card``."""
    from raysweep.atomic import write_text_atomic

    path = Path(directory) / MODEL_CARD_FILE
    write_text_atomic(path, model_card(card))
    return path
