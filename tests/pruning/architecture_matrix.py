"""Which decoder-only causal-LM families of the installed transformers raysweep can prune.

Regenerate the committed expectation and its table (20-40 s on one core) with::

    .venv/bin/python -m tests.pruning.architecture_matrix \\
        --json tests/pruning/data/architecture_matrix.json --markdown docs/architectures.md

Walks every ``model_type`` in ``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES``. Skipped by rule, not by name:

- encoder-decoder: the type has a seq2seq LM class (``MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING``)
  or its config says ``is_encoder_decoder``;
- encoder-only: the type has a masked-LM class (its causal-LM class is the encoder run with
  ``is_decoder=True``);
- composite wrapper: the config holds a ``text_config`` whose ``model_type`` is itself walked
  (``qwen3_5`` -> ``qwen3_5_text``, ``gemma4`` -> ``gemma4_text``, ...).

Every other type gets a tiny random model (seeded, float32, eval, 1 torch thread): from
``tests.pruning.tiny_hybrids`` / ``tiny_models`` / ``tiny_moe`` where one builds that type, else
from its config class with generic overrides (hidden 64, 4 heads, FFN 128, vocab 96, 4 experts
top-2, small MLA ranks, ...; per-layer lists such as ``layer_types`` keep one layer of each
distinct kind, 2-4 layers). Each is classified:

- ``pruned``: ``prune_model(model, calib, "wanda", 0.5)`` returned; records the sparsity over the
  prunable matrices and over all decoder matrices (``measure_sparsity``), the share of
  decoder-layer parameters that pruning covers, and whether the logits stay finite;
- ``refused``: ``prune_model`` raised a ``ValueError`` of its own (from a raysweep frame) before
  changing any weight;
- ``failed``: any other exception inside ``prune_model`` (a ``ValueError`` from transformers'
  code, or after weights changed), or no return within the per-model time limit;
- ``not_buildable``: the config, the model or its dense forward failed (or the model is too big
  after the generic overrides).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import signal
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn
from transformers import CONFIG_MAPPING
from transformers.models.auto import modeling_auto

from raysweep.pruning import (
    find_decoder_stack,
    iter_prunable,
    measure_sparsity,
    prune_model,
)
from raysweep.pruning.architecture import weight_matrix
from tests.pruning import tiny_hybrids, tiny_models, tiny_moe

ROOT = Path(__file__).resolve().parents[2]

COMMAND = (
    ".venv/bin/python -m tests.pruning.architecture_matrix "
    "--json tests/pruning/data/architecture_matrix.json --markdown docs/architectures.md"
)
CLASSES = ("pruned", "refused", "failed", "not_buildable", "skipped")
VOCAB = tiny_models.VOCAB
METHOD, SPARSITY = "wanda", 0.5
MAX_PARAMS = 5_000_000  # a model bigger than this after the overrides kept a huge default
TIMEOUT_S = 6  # a prune of these models takes well under 1 s

# Generic overrides, applied to a config key only where the default config has it.
_HIDDEN, _HEADS, _KV_HEADS, _HEAD_DIM, _FFN, _EXPERT_FFN = 64, 4, 2, 16, 128, 32
_OVERRIDES: dict[str, Any] = {
    **dict.fromkeys(("hidden_size", "n_embd", "d_model", "dim", "hidden_dim"), _HIDDEN),
    **dict.fromkeys(
        ("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size", "intermediate_size_mlp",
         "dense_intermediate_size", "ffn_inner_hidden_size"),
        _FFN,
    ),
    **dict.fromkeys(("num_attention_heads", "n_head", "n_heads", "num_heads"), _HEADS),
    **dict.fromkeys(("num_key_value_heads", "num_kv_heads", "n_kv_heads", "kv_n_heads"), _KV_HEADS),
    **dict.fromkeys(("head_dim", "global_head_dim", "attention_head_dim"), _HEAD_DIM),
    **dict.fromkeys(("vocab_size", "vocab_size_per_layer_input", "unpadded_vocab_size"), VOCAB),
    **dict.fromkeys(
        ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len",
         "original_max_position_embeddings", "max_window_layers", "model_max_length"),
        128,
    ),
    **dict.fromkeys(
        ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts",
         "num_routed_experts"),
        4,
    ),
    **dict.fromkeys(
        ("num_experts_per_tok", "num_experts_per_token", "moe_top_k", "top_k_experts",
         "moe_k", "num_selected_experts"),
        2,
    ),
    **dict.fromkeys(
        ("moe_intermediate_size", "shared_expert_intermediate_size", "expert_intermediate_size",
         "moe_shared_expert_intermediate_size", "shared_intermediate_size",
         "moe_ffn_hidden_size"),
        _EXPERT_FFN,
    ),
    **dict.fromkeys(("n_group", "num_expert_group", "topk_group", "first_k_dense_replace"), 1),
    "kv_lora_rank": 16,
    "q_lora_rank": 16,  # only where the default is not None (see _generic_kwargs)
    "qk_rope_head_dim": 8,
    "qk_nope_head_dim": 8,
    "qk_head_dim": 16,
    "v_head_dim": 16,
    "index_head_dim": 16,
    "index_n_heads": 2,
    "index_topk": 8,
    "sliding_window": 8,
    "attention_window_size": 8,
    "attention_chunk_size": 8,
    "rotary_dim": 8,
    **dict.fromkeys(("decoder_attention_heads",), _HEADS),
    **dict.fromkeys(("decoder_ffn_dim",), _FFN),
    "hidden_size_per_layer_input": 8,
    "laurel_rank": 8,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 16,
    "linear_value_head_dim": 16,
    "linear_head_dim": 16,
    "linear_num_heads": 4,
    **dict.fromkeys(("state_size", "mamba_d_state", "ssm_state_size"), 16),
    **dict.fromkeys(("time_step_rank", "mamba_dt_rank"), 8),
    **dict.fromkeys(("chunk_size", "mamba_chunk_size"), 8),
    **dict.fromkeys(("mamba_n_heads", "mamba_num_heads", "n_mamba_heads"), 8),
    **dict.fromkeys(("mamba_d_head", "mamba_head_dim", "mamba_headdim"), 16),
    **dict.fromkeys(("n_groups", "mamba_n_groups", "mamba_ngroups"), 1),
    **dict.fromkeys(("pad_token_id",), 0),
    **dict.fromkeys(("bos_token_id", "decoder_start_token_id"), 1),
    **dict.fromkeys(("eos_token_id",), 2),
}  # fmt: skip
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers")
MAX_LAYERS = 4


def _tiny_builders() -> dict[str, tuple[str, Callable[[], nn.Module]]]:
    """model_type -> (builder name, build()) for the hand-tuned tiny models of the test suite."""
    found: dict[str, tuple[str, Callable[[], nn.Module]]] = {}
    for arch in ("llama", "mistral", "qwen2", "gemma2", "phi3", "gpt2", "opt", "gpt_neox"):
        found[arch] = ("tiny_models", lambda a=arch: tiny_models.build(a))
    for family in tiny_moe.FAMILIES:
        found[family] = ("tiny_moe", lambda f=family: tiny_moe.build_moe(f))
    for arch in tiny_hybrids.ARCHS:
        found[arch] = ("tiny_hybrids", lambda a=arch: tiny_hybrids.build(a))
    return found


def skip_reason(model_type: str) -> str | None:
    """Why ``model_type`` is not a decoder-only causal LM to walk (``None``: walk it)."""
    if model_type in modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        return "encoder-decoder (has a seq2seq LM class)"
    if model_type in modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "encoder-only (has a masked-LM class; its causal LM is the encoder as a decoder)"
    config_cls = CONFIG_MAPPING[model_type]
    if getattr(config_cls, "is_encoder_decoder", False) is True:
        return "encoder-decoder (config.is_encoder_decoder)"
    text = (getattr(config_cls, "sub_configs", None) or {}).get("text_config")
    text_type = getattr(text, "model_type", None)
    if text_type and text_type != model_type and text_type in _causal_lm_types():
        return f"composite wrapper: its text model is walked as {text_type}"
    return None


def _causal_lm_types() -> dict[str, str]:
    return dict(modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def _layer_plan(defaults: dict[str, Any]) -> tuple[int, list[int]]:
    """(default layer count, indices of the layers to keep): one of each distinct kind of layer,
    in order, 2 to ``MAX_LAYERS`` layers."""
    count = next((defaults[k] for k in _LAYER_KEYS if isinstance(defaults.get(k), int)), 0)
    if count <= 0:
        return 0, []
    kinds: list[tuple[Any, ...]] = [() for _ in range(count)]
    for key, value in defaults.items():
        if _is_index_list(value, count):
            for i in range(count):
                kinds[i] += (key, i in value)
        elif isinstance(value, list) and len(value) == count and key not in _OVERRIDES:
            for i in range(count):
                kinds[i] += (key, json.dumps(value[i], sort_keys=True, default=str))
        elif _is_layer_dict(value, count):
            by_layer = {int(k): v for k, v in value.items()}
            for i in range(count):
                kinds[i] += (key, json.dumps(by_layer.get(i), sort_keys=True, default=str))
    keep: list[int] = []
    seen: set[tuple[Any, ...]] = set()
    for i, kind in enumerate(kinds):
        if kind not in seen and len(keep) < MAX_LAYERS:
            seen.add(kind)
            keep.append(i)
    for i in range(count):
        if len(keep) >= 2:
            break
        if i not in keep:
            keep.append(i)
    return count, sorted(keep)


def _is_index_list(value: Any, count: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < count for v in value)
        and all(a < b for a, b in zip(value, value[1:], strict=False))
        and (len(value) < count or value == list(range(count)))
    )


def _is_layer_dict(value: Any, count: int) -> bool:
    """Per-layer overrides keyed by layer index (``per_layer_config``: ``{"02": {...}}``)."""
    return (
        isinstance(value, dict)
        and len(value) > 0
        and all(str(k).isdigit() and int(k) < count for k in value)
        and all(isinstance(v, dict) for v in value.values())
    )


def _overrides_for(defaults: dict[str, Any], per_layer: int | None = None) -> dict[str, Any]:
    """The generic overrides of the keys in ``defaults`` (lists of ``per_layer`` values where
    the default is a per-layer list)."""
    kwargs: dict[str, Any] = {}
    for key, value in _OVERRIDES.items():
        default = defaults.get(key, _MISSING)
        if default is _MISSING or (default is None and key in _ONLY_IF_SET):
            continue
        if isinstance(default, list):  # one value per layer, or a list of token ids
            value = [value] * (per_layer if per_layer is not None else 1)
        kwargs[key] = value
    # Equal in the defaults, equal in the tiny config: multi-head attention stays multi-head,
    # a RoPE head (MLA) keeps head_dim = qk_rope_head_dim.
    for key, twin in _TWINS:
        if key in kwargs and twin in kwargs and defaults[key] == defaults[twin]:
            kwargs[key] = kwargs[twin]
    return kwargs


def _generic_kwargs(config: Any) -> dict[str, Any]:
    """Config kwargs: the generic overrides for keys the default config has, per-layer lists cut
    to the kept layers, and the same for each sub-config (from its non-default values)."""
    defaults = config.to_dict()
    count, keep = _layer_plan(defaults)
    per_layer = {
        k for k, v in defaults.items() if isinstance(v, list) and count and len(v) == count
    }
    kwargs = _overrides_for(defaults)
    for key in per_layer & set(kwargs):
        kwargs[key] = kwargs[key] * len(keep)
    if keep:
        for key in _LAYER_KEYS:
            if isinstance(defaults.get(key), int):
                kwargs[key] = len(keep)
        for key, value in defaults.items():
            if key in _OVERRIDES:
                continue
            if _is_index_list(value, count):
                kwargs[key] = [j for j, i in enumerate(keep) if i in value]
            elif isinstance(value, list) and len(value) == count:
                kwargs[key] = [value[i] for i in keep]
            elif _is_layer_dict(value, count):
                by_layer = {int(k): (k, v) for k, v in value.items()}
                kwargs[key] = {
                    (str(j) if isinstance(by_layer[i][0], str) else j): {
                        **by_layer[i][1],
                        **_overrides_for(by_layer[i][1]),
                    }
                    for j, i in enumerate(keep)
                    if i in by_layer
                }
    for name in getattr(config, "sub_configs", None) or {}:
        sub = getattr(config, name, None)
        if hasattr(sub, "to_diff_dict"):
            kwargs[name] = {**sub.to_diff_dict(), **_generic_kwargs(sub)}
    return kwargs


_MISSING = object()
_ONLY_IF_SET = {
    "q_lora_rank", "sliding_window", "attention_window_size", "attention_chunk_size",
    "rotary_dim", "unpadded_vocab_size", "pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id",
}  # fmt: skip
_TWINS = (
    ("num_key_value_heads", "num_attention_heads"),
    ("num_kv_heads", "num_attention_heads"),
    ("head_dim", "qk_rope_head_dim"),
)


def generic_build(model_type: str) -> nn.Module:
    """A tiny random model of ``model_type`` from its config class with the generic overrides."""
    config_cls = CONFIG_MAPPING[model_type]
    config = config_cls(**_generic_kwargs(config_cls()))
    config._attn_implementation = "eager"
    model_cls = getattr(transformers, _causal_lm_types()[model_type])
    with torch.device("meta"):
        size = sum(p.numel() for p in model_cls(config).parameters())
    if size > MAX_PARAMS:
        raise _TooLarge(f"{size / 1e6:.1f} M parameters after the generic overrides")
    torch.manual_seed(0)
    return model_cls(config).to(torch.float32).eval()


class _TooLarge(RuntimeError):
    pass


class _Timeout(BaseException):
    """Not an Exception: a prune that runs out of time must not be caught as a failure."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def _raise(*_: object) -> None:
        raise _Timeout(f"over {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _why(exc: BaseException) -> str:
    """``Type: message`` (its first line, and the next where the first ends in ``:``; at most
    240 characters) and the raising function (for a timeout: the innermost raysweep one)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [""]
    first = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]
    text = f"{type(exc).__name__}: {first}"[:240]
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, _Timeout):
        frames = [f for f in frames if "raysweep" in Path(f.filename).parts] or frames
    if frames and not isinstance(exc, _TooLarge):
        # The function, not the line: stable while the code around it changes.
        text += f" [{_short(frames[-1].filename)}:{frames[-1].name}]"
    return text


def _short(filename: str) -> str:
    """A source path from its package on (``raysweep/...``, ``transformers/...``)."""
    parts = Path(filename).parts
    for anchor in ("raysweep", "transformers", "torch", "huggingface_hub", "benchmarks"):
        if anchor in parts:
            return str(Path(*parts[len(parts) - 1 - parts[::-1].index(anchor) :]))
    return Path(filename).name


def _raised_in_raysweep(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and "raysweep" in Path(frames[-1].filename).parts


def _logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(ids)
    return out.logits if hasattr(out, "logits") else out[0]


def _prunable_sparsity(model: nn.Module) -> tuple[float, float]:
    """(zeros / weights over the prunable matrices, their share of decoder-layer parameters)."""
    zeros = total = 0
    for unit in iter_prunable(model).values():
        matrix = weight_matrix(unit)
        zeros += int((matrix == 0).sum())
        total += matrix.numel()
    layers = find_decoder_stack(model).layers
    params = {id(p): p.numel() for p in layers.parameters()}
    decoder = sum(params.values())
    return (zeros / total if total else 0.0), (total / decoder if decoder else 0.0)


def classify(model_type: str, builders: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of the matrix for ``model_type`` (see the module docstring)."""
    builders = _tiny_builders() if builders is None else builders
    row: dict[str, Any] = {"model_class": _causal_lm_types()[model_type]}
    reason = skip_reason(model_type)
    if reason is not None:
        return {**row, "class": "skipped", "reason": reason}
    builder, build = builders.get(model_type, ("generic", lambda: generic_build(model_type)))
    row["builder"] = builder
    calib = tiny_models.calibration(4, 16)
    ids = tiny_models.calibration(2, 16, seed=2)
    try:
        with _time_limit(TIMEOUT_S):
            model = build()
            dense = _logits(model, ids)
            if not torch.isfinite(dense).all():
                raise RuntimeError("dense logits are not finite")
            row["layers"] = len(find_decoder_stack(model).layers)
    except (Exception, _Timeout) as exc:
        return {**row, "class": "not_buildable", "reason": _why(exc)}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        with _time_limit(TIMEOUT_S):
            prune_model(model, calib, METHOD, SPARSITY)
    except (Exception, _Timeout) as exc:
        after = model.state_dict()
        untouched = all(torch.equal(after[k], v) for k, v in before.items())
        refused = isinstance(exc, ValueError) and untouched and _raised_in_raysweep(exc)
        return {**row, "class": "refused" if refused else "failed", "reason": _why(exc)}
    prunable, coverage = _prunable_sparsity(model)
    row.update(
        {
            "class": "pruned",
            "reason": "",
            "sparsity_prunable": round(prunable, 4),
            "sparsity_decoder": round(measure_sparsity(model)["total"], 4),
            "coverage": round(coverage, 4),
        }
    )
    try:
        with _time_limit(TIMEOUT_S):
            row["finite_after"] = bool(torch.isfinite(_logits(model, ids)).all())
    except (Exception, _Timeout) as exc:
        row["finite_after"] = False
        row["reason"] = f"forward after pruning: {_why(exc)}"
    return row


def walk(model_types: list[str] | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Classify every causal-LM ``model_type`` (or the given ones); the JSON document."""
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    builders = _tiny_builders()
    types = sorted(_causal_lm_types()) if model_types is None else model_types
    rows: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    for done, model_type in enumerate(types):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows[model_type] = classify(model_type, builders)
        if done % 25 == 24:  # a full collection per model would take most of the walk
            gc.collect()
        if log is not None:
            row = rows[model_type]
            log(f"{model_type:28s} {row['class']:14s} {time.perf_counter() - t0:5.1f}s "
                f"{row.get('reason', '')[:110]}")  # fmt: skip
    counts = Counter(row["class"] for row in rows.values())
    return {
        "transformers": transformers.__version__,
        "torch": torch.__version__.split("+")[0],
        "method": METHOD,
        "sparsity": SPARSITY,
        "command": COMMAND,
        "counts": {c: counts.get(c, 0) for c in CLASSES},
        "models": rows,
        "_wall_s": time.perf_counter() - start,
    }


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def render_markdown(doc: dict[str, Any]) -> str:
    """The Markdown table of a walk's JSON document (a pure function of it)."""
    counts = doc["counts"]
    walked = sum(n for c, n in counts.items() if c != "skipped")
    lines = [
        "# Architecture matrix",
        "",
        f"Generated by `python -m tests.pruning.architecture_matrix` with transformers {doc['transformers']}"
        f" and torch {doc['torch']}; do not edit by hand. Regenerate with:",
        "",
        "```bash",
        doc["command"],
        "```",
        "",
        f"Every `model_type` in transformers' causal-LM auto mapping, as a tiny random model (2-4"
        f' layers, hidden 32-64), pruned with `prune_model(model, calib, "{doc["method"]}",'
        f" {doc['sparsity']})`. Sparsities are percentages: over the prunable matrices, over all"
        " decoder-layer matrices (`measure_sparsity`), and the share of decoder-layer parameters"
        " that the prunable matrices hold (coverage). The rules that skip a type and the meaning"
        " of each class are in the script's docstring.",
        "",
        f"{walked} of {sum(counts.values())} types walked.",
        "",
        "| class | count |",
        "| --- | ---: |",
        *(f"| {c} | {counts[c]} |" for c in CLASSES),
        "",
        "| model_type | class | builder | layers | prunable % | decoder % | coverage % |"
        " finite after | reason |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    order = {c: i for i, c in enumerate(CLASSES)}
    for model_type, row in sorted(
        doc["models"].items(), key=lambda kv: (order[kv[1]["class"]], kv[0])
    ):
        finite = row.get("finite_after")
        reason = row.get("reason", "").replace("|", "\\|")
        lines.append(
            f"| {model_type} | {row['class']} | {row.get('builder', '')} | {row.get('layers', '')}"
            f" | {_pct(row.get('sparsity_prunable'))} | {_pct(row.get('sparsity_decoder'))}"
            f" | {_pct(row.get('coverage'))} | {'' if finite is None else ('yes' if finite else 'NO')}"
            f" | {reason} |"
        )
    return "\n".join(lines) + "\n"


def write_json(doc: dict[str, Any], path: Path) -> None:
    data = {k: v for k, v in doc.items() if not k.startswith("_")}  # no timings: stable diffs
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the matrix as JSON here")
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs" / "architectures.md")
    parser.add_argument("--only", nargs="*", help="walk just these model types (no files written)")
    args = parser.parse_args(argv)
    doc = walk(args.only, log=lambda line: print(line, flush=True))
    print(f"{doc['counts']}  walk: {doc['_wall_s']:.1f} s")
    if args.only:
        return 0
    if args.json:
        write_json(doc, args.json)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(render_markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
