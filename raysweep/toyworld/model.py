"""Where the trained toy models live."""

from __future__ import annotations

from pathlib import Path

TOY_MODEL_NAME = "raysweep-toy"
TOY_MOE_MODEL_NAME = "raysweep-toy-moe"
# Both read the same tokenizer and were trained on the same text stream.
TOY_MODEL_NAMES: tuple[str, ...] = (TOY_MODEL_NAME, TOY_MOE_MODEL_NAME)
_ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_MODEL_DIR = _ASSETS / TOY_MODEL_NAME
DEFAULT_MOE_MODEL_DIR = _ASSETS / TOY_MOE_MODEL_NAME


def ensure_toy_model(name: str = TOY_MODEL_NAME) -> Path:
    """The Hugging Face directory of a toy model: ``raysweep-toy`` (LlamaForCausalLM) or
    ``raysweep-toy-moe`` (Qwen3MoeForCausalLM), with the tokenizer.

    The trained files ship with the package. If they are missing (a stripped install), the model
    is trained once into the raysweep cache directory by ``raysweep.toyworld.train``.
    """
    if name not in TOY_MODEL_NAMES:
        raise ValueError(f"unknown toy model {name!r}; known: {', '.join(TOY_MODEL_NAMES)}")
    shipped = _ASSETS / name
    if (shipped / "config.json").is_file():
        return shipped
    from raysweep.paths import cache_dir
    from raysweep.toyworld.train import TrainSettings, moe_settings, train

    target = cache_dir() / "toyworld" / name
    if not (target / "model.safetensors").is_file():
        settings = moe_settings() if name == TOY_MOE_MODEL_NAME else TrainSettings()
        train(settings, target, log_every=0)
    return target
