"""Where the trained toy model lives."""

from __future__ import annotations

from pathlib import Path

TOY_MODEL_NAME = "raysweep-toy"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / TOY_MODEL_NAME


def ensure_toy_model() -> Path:
    """The Hugging Face directory of the toy model (LlamaForCausalLM + tokenizer).

    The trained files ship with the package. If they are missing (a stripped install), the model
    is trained once into the raysweep cache directory by ``raysweep.toyworld.train``.
    """
    if (DEFAULT_MODEL_DIR / "config.json").is_file():
        return DEFAULT_MODEL_DIR
    from raysweep.paths import cache_dir
    from raysweep.toyworld.train import TrainSettings, train

    target = cache_dir() / "toyworld" / TOY_MODEL_NAME
    if not (target / "model.safetensors").is_file():
        train(TrainSettings(), target, log_every=0)
    return target
