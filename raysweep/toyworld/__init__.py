"""The offline toy world: four generated capability domains, calibration sources, held-out
lm-eval tasks and two tiny trained models (a Llama and an MoE sharing its tokenizer), so that
calibration trade-offs can be shown without the Hugging Face Hub or a GPU."""

from typing import Any

from raysweep.toyworld.model import TOY_MODEL_NAME, TOY_MODEL_NAMES, TOY_MOE_MODEL_NAME
from raysweep.toyworld.sources import TOY_SOURCES, ToySource
from raysweep.toyworld.tasks import TOY_TASK_TAG, TOY_TASKS, ToyTask, ensure_toy_tasks, task_items

__all__ = [
    "TOY_MODEL_NAME",
    "TOY_MODEL_NAMES",
    "TOY_MOE_MODEL_NAME",
    "TOY_SOURCES",
    "TOY_TASKS",
    "TOY_TASK_TAG",
    "ToySource",
    "ToyTask",
    "ensure_toy_model",
    "ensure_toy_tasks",
    "task_items",
]


def __getattr__(name: str) -> Any:
    # ensure_toy_model trains a missing model, so it lives with the training code (torch,
    # transformers, tokenizers): imported on first use, not with the package.
    if name == "ensure_toy_model":
        from raysweep.toyworld.train import ensure_toy_model

        return ensure_toy_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
