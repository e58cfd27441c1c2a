"""What can be known to be wrong before any Ray or model work: one line per problem.

The schema (``raysweep.config``) checks each value alone; these checks read the world the
config points at: the model directory or Hub cache, the tokenizer files, local calibration files,
lm-eval's task index, the device. They are cheap (a model's ``config.json``, the head of each
file, lm-eval's index) and never load weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raysweep.calibration.text_sources import FILE_PREFIX
from raysweep.config import ModelConfig, SweepConfig

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
_TEXT_SUFFIXES = (".txt", ".jsonl", ".json")
_SNIFF_BYTES = 1 << 16
_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "n_ctx")


def preflight(cfg: SweepConfig, *, on_cluster: bool = False) -> list[str]:
    """Every problem found, as a line naming the field, the value and what is allowed."""
    problems = _model_problems(cfg)
    problems += _source_problems(cfg)
    problems += _suite_problems(cfg)
    if not on_cluster:  # the driver of a cluster may run on a CPU-only head node
        problems += _device_problems(cfg)
    return problems


def _model_config(spec: ModelConfig) -> tuple[Any | None, str | None]:
    """(the model's transformers config, or None; a problem line, or None)."""
    from raysweep.models import resolve_model_path

    path = resolve_model_path(spec)
    local = Path(path).expanduser()
    looks_local = local.exists() or path.startswith(("/", ".", "~")) or path.count("/") > 1
    if looks_local:
        if not local.is_dir():
            return None, (
                f"model.path: {spec.path!r} does not exist (a local model directory or a Hub id "
                "such as 'meta-llama/Llama-3.1-8B')"
            )
        if not (local / "config.json").is_file():
            return None, f"model.path: {spec.path!r} has no config.json: not a model directory"
        if not any((local / name).is_file() for name in _TOKENIZER_FILES):
            return None, (
                f"model.path: {spec.path!r} has no tokenizer files "
                f"({', '.join(_TOKENIZER_FILES)}): save the tokenizer beside the model"
            )
    from transformers import AutoConfig

    remote = not local.is_dir()
    try:
        config = AutoConfig.from_pretrained(path, revision=spec.revision, local_files_only=remote,
                                            trust_remote_code=spec.trust_remote_code)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - any failure here is the user's to fix
        if remote:  # not in the local Hub cache: ask the Hub once, without retries
            return None, _hub_problem(spec)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, (f"model.path: {spec.path!r} (revision {spec.revision or 'main'}) cannot be "
                      f"loaded: {reason[:300]}")  # fmt: skip
    return config, None


def _hub_problem(spec: ModelConfig) -> str | None:
    """A problem line if the Hub says the model does not exist or is gated; None if it exists
    or the Hub cannot be reached (offline: the trials' own download will tell)."""
    import os
    import warnings

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        warnings.warn(f"model.path: {spec.path!r} is not in the local Hub cache and the Hub is "
                      "offline (HF_HUB_OFFLINE): not checked before the sweep", stacklevel=3)  # fmt: skip
        return None
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        HfApi().model_info(spec.path, revision=spec.revision, timeout=10)
    except GatedRepoError:
        return (f"model.path: {spec.path!r} is gated on the Hub: accept its licence there and "
                "set HF_TOKEN for the driver and the trials")  # fmt: skip
    except RevisionNotFoundError:
        return f"model.revision: {spec.revision!r} does not exist for {spec.path!r} on the Hub"
    except RepositoryNotFoundError:
        return (f"model.path: {spec.path!r} is neither a local directory nor a model on the Hub "
                "(or it is private: set HF_TOKEN)")  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - no network: cannot tell from here
        warnings.warn(f"model.path: {spec.path!r} could not be checked on the Hub ({exc!r:.120})",
                      stacklevel=3)  # fmt: skip
    return None


def _model_problems(cfg: SweepConfig) -> list[str]:
    config, problem = _model_config(cfg.model)
    if problem:
        return [problem]
    if config is None:
        return []
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in _POSITION_KEYS:
        positions = getattr(text, key, None)
        if isinstance(positions, int) and positions > 0:
            if cfg.calibration.seqlen > positions:
                return [
                    f"calibration.seqlen: {cfg.calibration.seqlen} exceeds the model's "
                    f"{key} ({positions}): use at most {positions}"
                ]
            break
    return []


def _file_problem(name: str) -> str | None:
    root = Path(name[len(FILE_PREFIX) :]).expanduser()
    where = f"calibration source {name!r}"
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file())
    elif root.is_file():
        files = [root]
    else:
        return f"{where}: no such file or directory {str(root)!r}"
    usable = [p for p in files if p.suffix in (*_TEXT_SUFFIXES, ".parquet")]
    if not usable:
        return (
            f"{where}: no .txt, .jsonl, .json or .parquet file in {str(root)!r}"
            if root.is_dir()
            else f"{where}: unsupported file type {root.suffix!r} (use .txt, .jsonl, .json or .parquet)"
        )
    for path in usable:
        if path.stat().st_size == 0:
            return f"{where}: {str(path)!r} is empty"
        if path.suffix not in _TEXT_SUFFIXES:
            continue
        head = path.read_bytes()[:_SNIFF_BYTES]
        if b"\x00" in head:
            return f"{where}: {str(path)!r} is binary, not text"
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not merely a character cut at the sniff boundary
                return (
                    f"{where}: {str(path)!r} is not UTF-8 (byte {exc.start}): "
                    "convert it, e.g. iconv -f latin1 -t utf-8"
                )
            text = head[: exc.start].decode("utf-8")
        if path.suffix == ".jsonl":
            first = next((line for line in text.splitlines() if line.strip()), "")
            try:
                row = json.loads(first)
            except json.JSONDecodeError:
                if len(first) < len(text):
                    return f"{where}: the first line of {str(path)!r} is not JSON"
                continue
            if not isinstance(row, dict) or "text" not in row:
                fields = ", ".join(row) if isinstance(row, dict) else type(row).__name__
                return (
                    f"{where}: rows of {str(path)!r} have no 'text' field (fields: {fields}); "
                    "declare it under calibration.custom_sources with text_field or template"
                )
    return None


def _source_problems(cfg: SweepConfig) -> list[str]:
    names = [*cfg.calibration.sources]
    for mix in cfg.calibration.mixes:
        names += list(mix.weights)
    if cfg.search is not None and cfg.search.sources:
        names += cfg.search.sources
    problems = []
    for name in dict.fromkeys(names):
        if name.startswith(FILE_PREFIX):
            problem = _file_problem(name)
            if problem:
                problems.append(problem)
    return problems


def _suite_problems(cfg: SweepConfig) -> list[str]:
    from raysweep.evaluation import validate_suite

    suites = [("evaluation.suite", cfg.evaluation.suite)]
    if cfg.search is not None and cfg.search.suite is not None:
        suites.append(("search.suite", cfg.search.suite))
    problems = []
    for field, suite in suites:
        try:
            validate_suite(suite, allow_code_execution=cfg.evaluation.allow_code_execution)
        except (ValueError, KeyError) as exc:
            problems.append(f"{field}: {exc}")
    return problems


def _device_problems(cfg: SweepConfig) -> list[str]:
    import torch

    problems = []
    for field, value in (
        ("model.device", cfg.model.device),
        ("pruning.device", cfg.pruning.device),
    ):
        if value is None or value == "auto":
            continue
        try:
            device = torch.device(value)
        except (RuntimeError, ValueError):
            problems.append(
                f"{field}: {value!r} is not a device (use 'auto', 'cpu', 'cuda' or 'cuda:N')"
            )
            continue
        if device.type == "cuda" and not torch.cuda.is_available():
            problems.append(
                f"{field}: {value!r} but this machine has no CUDA device (use 'cpu' or 'auto')"
            )
        elif device.type not in ("cpu", "cuda", "mps", "xpu"):
            problems.append(f"{field}: {value!r} is not supported (use 'auto', 'cpu' or 'cuda')")
    if cfg.resources.gpu > 0 and cfg.ray.address is None and not torch.cuda.is_available():
        problems.append(
            f"resources.gpu: {cfg.resources.gpu:g} per trial, but this machine has no "
            "GPU and ray.address is not set: trials would wait for ever (use 0)"
        )
    return problems
