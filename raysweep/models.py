"""Load a causal LM + tokenizer from a :class:`ModelConfig`, once per process.

A CPU sweep runs many trials in one worker process (Tune reuses actors, see
:func:`reuses_actors`). Each trial needs the *dense* weights, so there the first load keeps a
pristine CPU copy of the state dict and later trials restore it in place: one disk read per worker
instead of one per trial. A GPU trial gets a fresh process, so the copy (16 GB for an 8B model in
bf16) would never be read: it is not made, and a second load in such a process reads the disk.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from raysweep.config import ModelConfig, ResourcesConfig, TrialConfig

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    model_id: str  # what records call the model (the path as configured)
    path: str  # where it was loaded from
    # Dense weights on CPU, restored before each trial; None when the process runs one trial.
    pristine: dict[str, torch.Tensor] | None


_CACHE: dict[tuple[str, str | None, str, str], LoadedModel] = {}


def resolve_model_path(spec: ModelConfig) -> str:
    """The local directory of a plug-in world's model named ``spec.path`` (the toy world's
    ``raysweep-toy``, say; see :mod:`raysweep.worlds`), else ``spec.path`` itself."""
    from raysweep.worlds import registry

    return registry().model_path(spec.path) or spec.path


def resolve_device(spec_device: str, want_gpu: bool) -> torch.device:
    if spec_device == "auto":
        return torch.device("cuda" if want_gpu and torch.cuda.is_available() else "cpu")
    return torch.device(spec_device)


def trial_device(trial: TrialConfig) -> torch.device:
    """Where ``trial``'s model lives: ``model.device``, with ``auto`` meaning CUDA when the trial
    has a GPU."""
    return resolve_device(trial.model.device, want_gpu=trial.resources.gpu > 0)


def reuses_actors(resources: ResourcesConfig) -> bool:
    """Whether Ray Tune runs several trials in one worker process (its ``reuse_actors``).

    Only CPU trials share a worker: with GPUs a fresh process per trial is the safe choice (no
    CUDA state or allocator fragmentation carried from one trial to the next).
    """
    return resources.gpu == 0


def load_dense(spec: ModelConfig, device: torch.device, *, keep_pristine: bool) -> LoadedModel:
    """The dense model on ``device``.

    With ``keep_pristine`` (the process will run more trials) the model stays cached with a CPU
    copy of its weights, and the next call restores them in place instead of reading the disk.
    Without it nothing is kept: the model is the caller's to prune, and the next call reloads it.
    """
    key = (spec.path, spec.revision, spec.dtype, str(device))
    hit = _CACHE.get(key)
    if hit is not None and hit.pristine is not None:
        hit.model.load_state_dict(hit.pristine)
        return hit
    _CACHE.clear()  # one dense model per process: a worker serves one sweep
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
    if not keep_pristine:
        return LoadedModel(model, tok, spec.path, path, pristine=None)
    pristine = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    loaded = LoadedModel(model, tok, spec.path, path, pristine)
    _CACHE[key] = loaded
    return loaded


def model_spec_key(spec: ModelConfig) -> str:
    """The model's identity, one cache-key component for the dense baseline and statistics
    caches: a Hub id by its revision (what the Hub resolves it to), a local directory by the
    digest of its weight files (:func:`weights_digest`), so a checkpoint replaced by another of
    the same size is another model. (The calibration cache of generated sets hashes the loaded
    weights instead, ``calibration.cache.weights_fingerprint``.)"""
    path = resolve_model_path(spec)
    p = Path(path)
    stamp = ""
    if p.is_dir():
        weights = sorted(p.glob("*.safetensors")) or sorted(p.glob("*.bin"))
        stamp = f"weights:{weights_digest(weights)}" if weights else ""
    return f"{spec.path}@{spec.revision or 'main'}:{spec.dtype}[{stamp}]"


# A weight file's digest reads 64 blocks of 64 KiB spread evenly over it (the whole file when
# smaller): 4 MiB per file, milliseconds even for a 5 GB shard, where hashing all of an 8B
# model's 16 GB would take a minute per process. A checkpoint differs from another of the same
# size (another seed, fine-tune or prune of the architecture) in nearly every block; a change
# confined to a few bytes between the blocks would be missed.
_DIGEST_BLOCKS = 64
_DIGEST_BLOCK = 1 << 16


def weights_digest(files: list[Path]) -> str:
    """SHA-256 (16 hex) over each weight file's name, size and sampled content."""
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:".encode())
        digest.update(_sampled_digest(str(file.resolve()), stat.st_size, stat.st_mtime_ns))
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=256)
def _sampled_digest(path: str, size: int, mtime_ns: int) -> bytes:
    """The file's sampled content hash; the stamps (size, mtime_ns) only say when to read again."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= _DIGEST_BLOCKS * _DIGEST_BLOCK:
            digest.update(f.read())
        else:
            for i in range(_DIGEST_BLOCKS):
                f.seek(i * (size - _DIGEST_BLOCK) // (_DIGEST_BLOCKS - 1))
                digest.update(f.read(_DIGEST_BLOCK))
    return digest.digest()
