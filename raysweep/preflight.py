"""What can be known to be wrong before any Ray or model work: one line per problem.

The schema (``raysweep.config``) checks each value alone; these checks read the world the
config points at: the model directory or Hub cache, the tokenizer files, local calibration files,
lm-eval's task index, the device. They are cheap (a model's ``config.json``, the head of each
file, lm-eval's index, a tokenizer for the token estimate of local files) and never load weights.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from raysweep.calibration.text_sources import FILE_PREFIX
from raysweep.config import ModelConfig, SweepConfig
from raysweep.tracking import tracking_problems

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
_TEXT_SUFFIXES = (".txt", ".jsonl", ".json")
_SNIFF_BYTES = 1 << 16
# A source is refused when even 1.5 times its estimated tokens fall short of what it must give.
_TOKEN_TOLERANCE = 1.5
_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "n_ctx")


def preflight(cfg: SweepConfig, *, on_cluster: bool = False) -> list[str]:
    """Every problem found, as a line naming the field, the value and what is allowed."""
    problems = _model_problems(cfg)
    problems += _source_problems(cfg)
    problems += _suite_problems(cfg)
    problems += tracking_problems(cfg)
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
    problems = _pruning_problems(cfg, config)
    if problems:
        return problems
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


def _pruning_problems(cfg: SweepConfig, config: Any) -> list[str]:
    """The model built without weights (meta device): decoder tensors no method can prune, and
    ``pruning.ignore`` patterns that match no prunable module."""
    import torch
    from transformers import AutoModelForCausalLM

    from raysweep.names import parse_structure
    from raysweep.pruning.architecture import ignored_units, in_features
    from raysweep.pruning.prune import UnprunableWeights, check_prunable

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(
                config, trust_remote_code=cfg.model.trust_remote_code
            )
    except Exception:  # noqa: BLE001 - the trial's own load reports what it cannot build
        return []
    try:
        account = check_prunable(model)
    except UnprunableWeights as err:
        return [f"model.path: {cfg.model.path!r} cannot be pruned: {err}"]
    problems = []
    for pattern in cfg.pruning.ignore:
        try:
            ignored_units(account.units, (pattern,))
        except ValueError as err:
            problems.append(f"pruning.ignore: {err}")
    if problems:
        return problems
    pruned = {n: u for n, u in account.units.items()
              if n not in ignored_units(account.units, tuple(cfg.pruning.ignore))}  # fmt: skip
    structures = [("pruning.structures", s) for s in cfg.pruning.structures]
    if cfg.search is not None:  # the search prunes its own structures too
        structures += [("search.structures", s) for s in cfg.search.structures or ()]
    for where, structure in structures:
        nm = parse_structure(structure)
        if nm is None:
            continue
        odd = [n for n, u in pruned.items() if in_features(u) % nm.group]
        if odd:
            problems.append(
                f"{where}: {structure!r} needs every pruned matrix's input width "
                f"divisible by {nm.group}; {len(odd)} are not (e.g. {odd[0]}, "
                f"{in_features(pruned[odd[0]])} inputs): drop the structure or keep them dense "
                "with pruning.ignore"
            )
    return problems


def _files_of(name: str) -> tuple[Path, list[Path] | None, list[Path]]:
    """(root, every file under it or None when it does not exist, the readable ones)."""
    root = Path(name[len(FILE_PREFIX) :]).expanduser()
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file())
    elif root.is_file():
        files = [root]
    else:
        return root, None, []
    return root, files, [p for p in files if p.suffix in (*_TEXT_SUFFIXES, ".parquet")]


def _file_problem(name: str) -> str | None:
    root, files, usable = _files_of(name)
    where = f"calibration source {name!r}"
    if files is None:
        return f"{where}: no such file or directory {str(root)!r}"
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


def _windows_needed(cfg: SweepConfig) -> dict[str, int]:
    """The most windows any point of the sweep draws from each source it names."""
    from raysweep.calibration import allocate_counts

    n = cfg.calibration.n_samples
    alone = [*cfg.calibration.sources]
    if cfg.search is not None:  # a searched weight may come close to 1
        alone += cfg.search.sources or []
    needed = dict.fromkeys(alone, n)
    for mix in cfg.calibration.mixes:
        for name, count in allocate_counts(mix.weights, n).items():
            needed[name] = max(needed.get(name, 0), count)
    return needed


def _text_bytes(path: Path) -> int | None:
    """Bytes of document text in one file, estimated from its head (None: cannot tell)."""
    size = path.stat().st_size
    if path.suffix == ".txt":
        return size
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata
            column = meta.schema.names.index("text")
            return sum(
                meta.row_group(g).column(column).total_uncompressed_size
                for g in range(meta.num_row_groups)
            )
        except Exception:  # noqa: BLE001 - no estimate rather than a wrong one
            return None
    head = path.read_bytes()[:_SNIFF_BYTES]
    lines = head.split(b"\n")
    if len(head) == _SNIFF_BYTES:
        lines = lines[:-1]  # the last line may be cut at the sniff boundary
    row_bytes = text = 0
    for line in lines:
        if body := _row_text(line):
            row_bytes += len(line) + 1
            text += len(body.encode("utf-8"))
    if not row_bytes:  # one JSON document, not lines: at most its size is text
        return size
    return int(size * text / row_bytes)


def _tokenizer(cfg: SweepConfig) -> Any | None:
    """The model's tokenizer, or None when it cannot be loaded (the model checks say why)."""
    from raysweep.models import resolve_model_path

    try:
        from transformers import AutoTokenizer

        path = resolve_model_path(cfg.model)
        return AutoTokenizer.from_pretrained(
            path, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code,
            local_files_only=not Path(path).expanduser().is_dir(),
        )  # fmt: skip
    except Exception:  # noqa: BLE001 - reported by the model checks
        return None


def _bytes_per_token(tokenizer: Any, sample: str) -> float | None:
    """UTF-8 bytes per token of ``tokenizer`` on ``sample``."""
    tokens = len(tokenizer(sample, add_special_tokens=False, verbose=False)["input_ids"])
    return len(sample.encode("utf-8")) / tokens if tokens else None


def _token_problem(cfg: SweepConfig, name: str, windows: int, tokenizer: Any) -> str | None:
    """A problem line when a file source clearly holds fewer tokens than ``windows`` windows
    need. Cheap: the text size is read from the files' heads and the tokenizer's bytes per
    token from a sample; a tolerance keeps an estimate's error from refusing a source that may
    suffice (the calibration build checks the exact count)."""
    files = _files_of(name)[2]
    sizes = [_text_bytes(p) for p in files]
    if any(s is None for s in sizes):
        return None
    sample = next((p for p in files if p.suffix == ".txt"), None)
    text = sample.read_bytes()[:_SNIFF_BYTES].decode("utf-8", "ignore") if sample else ""
    if not text:
        for path in files:
            if path.suffix in (".jsonl", ".json"):
                rows = path.read_bytes()[:_SNIFF_BYTES].split(b"\n")[:-1] or [b""]
                text = "\n".join(_row_text(line) for line in rows)
                if text.strip():
                    break
    ratio = _bytes_per_token(tokenizer, text) if text.strip() and tokenizer else None
    if ratio is None:
        return None
    estimate = int(sum(sizes) / ratio)  # type: ignore[arg-type]
    need = windows * cfg.calibration.seqlen
    if estimate * _TOKEN_TOLERANCE >= need:
        return None
    return (
        f"calibration source {name!r}: holds about {estimate:,} tokens ({sum(sizes):,} bytes of "  # type: ignore[arg-type]
        f"text at {ratio:.2f} bytes per token), but {windows} windows of calibration.seqlen "
        f"{cfg.calibration.seqlen} need {need:,}: add text, or lower calibration.n_samples "
        f"(at most about {estimate // cfg.calibration.seqlen}) or calibration.seqlen"
    )


def _row_text(line: bytes) -> str:
    try:
        row = json.loads(line)
    except ValueError:
        return ""
    return row["text"] if isinstance(row, dict) and isinstance(row.get("text"), str) else ""


def _source_problems(cfg: SweepConfig) -> list[str]:
    tokenizer = functools.cache(lambda: _tokenizer(cfg))  # loaded once, for the first file
    problems = []
    for name, windows in _windows_needed(cfg).items():
        if name.startswith(FILE_PREFIX):
            problem = _file_problem(name) or _token_problem(cfg, name, windows, tokenizer())
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
