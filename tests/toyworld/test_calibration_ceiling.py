"""benchmarks/toy_calibration_ceiling.py: its calibrations are what its docstring says they are."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from itertools import islice
from pathlib import Path

from raysweep.calibration import build_calibration_set, get_source
from raysweep.toyworld.tasks import TOY_TASKS, task_items
from raysweep.toyworld.tradeoff import uniform_weights

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    path = ROOT / "benchmarks" / "toy_calibration_ceiling.py"
    spec = importlib.util.spec_from_file_location("toy_calibration_ceiling", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flat_and_shuffled_uniform_rewrite_the_uniform_mix_documents():
    mixes, extra = _bench().calibrations()
    uniform, flat = mixes["uniform"], mixes["uniform, flat"]
    assert uniform == uniform_weights()
    assert flat == {f"flat_{n}": w for n, w in uniform.items()}
    plain = list(islice(get_source("toy_code_programs").texts(3), 5))
    flattened = list(islice(extra["flat_toy_code_programs"].texts(3), 5))
    assert any("\n" in doc for doc in plain)
    assert flattened == [" ".join(doc.split()) for doc in plain]
    assert mixes["uniform, shuffled"] == {f"shuffled_{n}": w for n, w in uniform.items()}
    shuffled = list(islice(extra["shuffled_toy_code_programs"].texts(3), 5))
    assert [Counter(d.split()) for d in shuffled] == [Counter(d.split()) for d in plain]
    assert [re.findall(r"\s+", d) for d in shuffled] == [re.findall(r"\s+", d) for d in plain]
    assert shuffled != plain


def test_task_text_forms_are_the_held_out_items_word_for_word():
    _, extra = _bench().calibrations()
    items = {i.context + i.choices[i.label] for t in TOY_TASKS for i in task_items(t.name)}
    ordered = list(islice(extra["task_text_ordered"].texts(0), 20))
    shuffled = list(islice(extra["task_text_shuffled"].texts(0), 20))
    assert set(ordered) <= items
    # Same seed, same document draws: the shuffled form permutes each document's words in place.
    assert [Counter(d.split()) for d in shuffled] == [Counter(d.split()) for d in ordered]
    assert [re.findall(r"\s+", d) for d in shuffled] == [re.findall(r"\s+", d) for d in ordered]
    assert shuffled != ordered


def test_every_calibration_builds_windows(tmp_path):
    from transformers import AutoTokenizer

    from raysweep.toyworld.train import ensure_toy_model

    tokenizer = AutoTokenizer.from_pretrained(ensure_toy_model())
    mixes, extra = _bench().calibrations()
    for name, mix in mixes.items():
        windows = build_calibration_set(tokenizer, mix, 8, 64, 0, extra_sources=extra,
                                        cache_dir=tmp_path)  # fmt: skip
        assert windows.shape == (8, 64), name
        text = tokenizer.decode(windows.flatten())
        # Flattened text has no line breaks; every other form keeps its documents' whitespace.
        assert ("\n" in text) == (not name.endswith(", flat")), name
