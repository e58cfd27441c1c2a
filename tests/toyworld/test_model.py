"""The committed toy model loads from disk and is clearly above chance, below ceiling."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from raysweep.toyworld import TOY_MODEL_NAME, TOY_TASKS, ensure_toy_model, task_items
from raysweep.toyworld.mcscore import accuracy, encode_pair


def test_model_dir_is_the_committed_asset_and_small():
    model_dir = ensure_toy_model()
    assert model_dir.name == TOY_MODEL_NAME and "assets" in model_dir.parts
    assert (model_dir / "model.safetensors").is_file()
    total = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    assert total <= 20 * 1024 * 1024


def test_model_and_tokenizer_load_from_disk():
    model_dir = ensure_toy_model()
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert isinstance(model, LlamaForCausalLM)
    assert tokenizer.bos_token == "<s>" and tokenizer.eos_token == "</s>"
    assert model.config.bos_token_id == tokenizer.bos_token_id
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.config.vocab_size == len(tokenizer)
    # Digits are single tokens (arithmetic is learnable); text round-trips through the BPE.
    assert tokenizer.tokenize("347") == ["3", "4", "7"]
    text = "def double(n):\n    return n * 2  # Hello, Veloria!"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_encode_pair_moves_trailing_space_to_the_continuation():
    tokenizer = AutoTokenizer.from_pretrained(ensure_toy_model())
    ctx, cont = encode_pair(tokenizer, "Answer: ", "42")
    assert ctx == tokenizer("Answer:", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(cont) == " 42"


# Dense accuracy the committed model must keep, per dimension (chance 0.25 everywhere). Code is
# the lowest: tracing which variable a program prints is the hardest skill for a 1.5 M-parameter
# model (the committed one: general 1.0, commonsense 0.9875, code 0.915, math 0.9925).
DENSE_FLOOR = {"general": 0.95, "commonsense": 0.95, "code": 0.85, "math": 0.95}


@pytest.mark.slow
def test_dense_accuracy_per_dimension_on_400_items_each():
    torch.set_num_threads(1)
    model_dir = ensure_toy_model()
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for dim, floor in DENSE_FLOOR.items():
        tasks = [t for t in TOY_TASKS if t.dimension == dim]
        assert sum(len(task_items(t.name)) for t in tasks) >= 400
        score = sum(accuracy(model, tokenizer, task_items(t.name)) for t in tasks) / len(tasks)
        assert score >= floor, (dim, score)


@pytest.mark.parametrize("name", ["raysweep-toy", "raysweep-toy-moe"])
def test_committed_models_were_trained_with_the_settings_train_uses(name):
    """``python -m raysweep.toyworld.train [--moe]`` rebuilds the committed files: the settings
    recorded beside each model, thread count included, are the code's defaults."""
    import json
    from dataclasses import asdict

    from raysweep.toyworld.train import TrainSettings, moe_settings

    recorded = json.loads((ensure_toy_model(name) / "training.json").read_text())["settings"]
    make = moe_settings if name == "raysweep-toy-moe" else TrainSettings
    assert recorded == json.loads(json.dumps(asdict(make())))
