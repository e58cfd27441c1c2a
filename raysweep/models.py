"""Load a causal LM + tokenizer from a :class:`ModelConfig`, once per process.

A sweep runs many trials in one worker process (Tune reuses actors on CPU). Each trial needs the
*dense* weights, so the first load keeps a pristine CPU copy of the state dict and later trials
restore it in place: one disk read per worker instead of one per trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from raysweep.config import TOY_MODEL, ModelConfig

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    model_id: str  # what records call the model (the path as configured)
    path: str  # where it was loaded from
    pristine: dict[str, torch.Tensor]  # dense weights on CPU, restored before each trial


_CACHE: dict[tuple[str, str | None, str, str], LoadedModel] = {}


def resolve_model_path(spec: ModelConfig) -> str:
    if spec.path == TOY_MODEL:
        from raysweep.toyworld import ensure_toy_model

        return str(ensure_toy_model())
    return spec.path


def resolve_device(spec_device: str, want_gpu: bool) -> torch.device:
    if spec_device == "auto":
        return torch.device("cuda" if want_gpu and torch.cuda.is_available() else "cpu")
    return torch.device(spec_device)


def load_dense(spec: ModelConfig, device: torch.device) -> LoadedModel:
    """The dense model on ``device``, with weights restored to the pristine copy if cached."""
    key = (spec.path, spec.revision, spec.dtype, str(device))
    hit = _CACHE.get(key)
    if hit is not None:
        hit.model.load_state_dict(hit.pristine)
        return hit
    path = resolve_model_path(spec)
    dtype = "auto" if spec.dtype == "auto" else _DTYPES[spec.dtype]
    tok = AutoTokenizer.from_pretrained(
        path, revision=spec.revision, trust_remote_code=spec.trust_remote_code
    )
    model = AutoModelForCausalLM.from_pretrained(
        path, revision=spec.revision, dtype=dtype, trust_remote_code=spec.trust_remote_code
    )
    model.to(device).eval()
    model.config.use_cache = False
    pristine = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    loaded = LoadedModel(model, tok, spec.path, path, pristine)
    _CACHE.clear()  # one dense model per process: a worker serves one sweep
    _CACHE[key] = loaded
    return loaded


def model_fingerprint(spec: ModelConfig) -> str:
    """A cache-key component naming the model weights (path or hub id, revision, dtype)."""
    path = resolve_model_path(spec)
    p = Path(path)
    stamp = ""
    if p.is_dir():
        weights = sorted(p.glob("*.safetensors")) or sorted(p.glob("*.bin"))
        stamp = ",".join(f"{w.name}:{w.stat().st_size}" for w in weights)
    return f"{spec.path}@{spec.revision or 'main'}:{spec.dtype}[{stamp}]"
