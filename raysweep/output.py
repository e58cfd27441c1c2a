"""An output directory belongs to one sweep config and, at a time, to one driver.

``claim_output`` takes a non-blocking exclusive lock on ``<output>/.raysweep.lock`` for the life
of the driver (the kernel drops it when the process dies, even by SIGKILL), and compares the new
config with the ``config.yaml`` of a run already there. A rerun may grow the sweep's axes (more
sources, mixes, sparsities, methods, structures, seeds, search trials) and change how it runs
(Ray, resources, output path); anything that changes what an existing record means (model,
sample count, sequence length, pruning options, evaluation suite or limit, search objective, …)
is refused, so that one report never mixes records measured two ways. ``--new-config`` says
the change is meant: the run then goes to a sub-run ``config-<fingerprint>/`` of the directory
(:func:`place_new_config`), where its records stay apart.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from raysweep.atomic import write_text_atomic
from raysweep.config import ConfigError, SweepConfig

CONFIG_FILE = "config.yaml"
LOCK_FILE = ".raysweep.lock"
SUB_RUN_PREFIX = "config-"
# Dotted fields a rerun may change: the sweep's axes, and how (not what) it runs.
GROWABLE = (
    "name", "output_dir", "ray", "resources", "analysis",
    "calibration.sources", "calibration.mixes", "calibration.uniform_mix", "calibration.seeds",
    "pruning.methods", "pruning.sparsities", "pruning.structures", "pruning.device",
    "search.n_trials", "search.max_concurrent", "search.confirm", "search.save_best",
)  # fmt: skip


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, Mapping) or not tree:
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _growable(field: str) -> bool:
    return any(field == g or field.startswith(f"{g}.") for g in GROWABLE)


def _selection(suite: Any, limit: Any, item_selection: Any, item_seed: Any) -> dict[str, Any]:
    from raysweep.evaluation.subsets import selection_key

    try:
        return selection_key(suite, limit, str(item_selection), int(item_seed))
    except (ValueError, TypeError):  # a suite this machine cannot resolve: assume it is cut
        return {} if item_selection == "first" else {"item_selection": item_selection,
                                                     "item_seed": item_seed}  # fmt: skip


def _meaning(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with its item selection as it acts: ``evaluation.item_selection`` and
    ``item_seed`` (and the search's, resolved against its suite and limit) only where random
    subsets are drawn. A config written before there was a choice took lm-eval's first N, and
    one whose limits cut no task scores every item either way: neither differs from a config
    that asks for random items but cuts nothing."""
    from raysweep.config import EvaluationConfig

    tree = copy.deepcopy(dict(config))
    ev = tree.get("evaluation")
    if not isinstance(ev, dict):
        return tree
    selection = ev.pop("item_selection", "first")
    seed = ev.pop("item_seed", 0)
    suite = ev.get("suite", EvaluationConfig.model_fields["suite"].default)
    ev.update(_selection(suite, ev.get("limit"), selection, seed))
    search = tree.get("search")
    if isinstance(search, dict):
        chosen = search.pop("item_selection", None) or selection
        search.update(_selection(search.get("suite") or suite,
                                 search.get("limit") or ev.get("limit"), chosen, seed))  # fmt: skip
    return tree


def config_conflicts(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``field: old -> new`` for every difference that changes what a record means."""
    a, b = _flatten(_meaning(old)), _flatten(_meaning(new))
    lines = []
    for field in sorted(set(a) | set(b)):
        if _growable(field) or a.get(field) == b.get(field):
            continue
        lines.append(f"{field}: {a.get(field, '(absent)')!r} -> {b.get(field, '(absent)')!r}")
    return lines


def meaning_fingerprint(config: Mapping[str, Any]) -> str:
    """12 hex digits over every field a rerun may not change (the same for a grown sweep)."""
    fields = {k: v for k, v in _flatten(_meaning(config)).items() if not _growable(k)}
    blob = json.dumps(fields, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _existing_config(out: Path) -> Mapping[str, Any] | None:
    existing = out / CONFIG_FILE
    if not existing.is_file():
        return None
    try:
        old = yaml.safe_load(existing.read_text()) or {}
    except yaml.YAMLError:
        old = None
    if not isinstance(old, Mapping):
        raise ConfigError(f"output_dir: {str(existing)!r} is not a raysweep config")
    return old


def place_new_config(cfg: SweepConfig) -> tuple[SweepConfig, str | None]:
    """Where a run of ``cfg`` goes when the user asked for a new config (``--new-config``).

    When ``cfg.output_dir`` holds a run whose meaning differs, the run is kept apart in the
    sub-run ``<output_dir>/config-<fingerprint>/`` (the same directory for the same meaning, so
    a rerun resumes it); otherwise ``cfg`` is unchanged. Returns the config and a line saying
    where it went (None when unchanged).
    """
    out = Path(cfg.output_dir)
    old = _existing_config(out)
    new = cfg.model_dump(mode="json")
    if old is None or not config_conflicts(old, new):
        return cfg, None
    sub = out / f"{SUB_RUN_PREFIX}{meaning_fingerprint(new)}"
    placed = cfg.model_copy(update={"output_dir": str(sub)})
    return placed, (
        f"--new-config: {str(out)!r} holds a run of another config; this one runs apart in "
        f"{str(sub)!r} (rerun the same command to resume it)"
    )


@contextlib.contextmanager
def claim_output(cfg: SweepConfig) -> Iterator[Path]:
    """Own ``cfg.output_dir`` for the block (raises ConfigError if another driver or another
    config owns it); writes the resolved ``config.yaml``. Yields the absolute directory."""
    out = Path(cfg.output_dir).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / LOCK_FILE, "a+")  # noqa: SIM115 - held for the whole block
    except OSError as exc:
        raise ConfigError(
            f"output_dir: {str(out)!r} is not writable ({exc.strerror}): choose a directory this "
            "user can write, e.g. --output runs/mine"
        ) from None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise ConfigError(
                f"output_dir: {str(out)!r} is in use by another raysweep driver ({holder}); wait "
                "for it to finish, or use another --output"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        handle.flush()
        existing = out / CONFIG_FILE
        new = cfg.model_dump(mode="json")
        old = _existing_config(out)
        if old is not None:
            conflicts = config_conflicts(old, new)
            if conflicts:
                raise ConfigError(
                    f"output_dir: {str(out)!r} holds a run of another config; its records "
                    "would mix with this one's:\n  "
                    + "\n  ".join(conflicts)
                    + "\n  allowed: the same config (a rerun resumes it), with more sources, "
                    "mixes, sparsities, methods, structures or seeds; another --output; or "
                    "--new-config to run it apart in a sub-run of this directory"
                )
        write_text_atomic(existing, cfg.to_yaml())
        try:
            yield out
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
