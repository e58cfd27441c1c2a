"""Fixtures: a tiny byte-level BPE tokenizer with EOS, and toy-world-shaped offline sources."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from raysweep.calibration import CalibrationSource
from raysweep.calibration.text_sources import builtin_source
from raysweep.toyworld.sources import ToySource

WORDS = {
    "general": [
        "the",
        "river",
        "town",
        "market",
        "old",
        "bridge",
        "rain",
        "people",
        "walk",
        "morning",
        "story",
        "city",
    ],
    "math": [
        "add",
        "plus",
        "minus",
        "times",
        "equals",
        "seven",
        "three",
        "twelve",
        "sum",
        "number",
        "half",
        "total",
    ],
    "code": [
        "def",
        "return",
        "if",
        "else",
        "for",
        "while",
        "print",
        "list",
        "index",
        "value",
        "none",
        "true",
    ],
}

CORPUS = [" ".join(words) for words in WORDS.values()] * 4


def build_tokenizer(eos: bool = True) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on a fixed corpus: every text tokenises, deterministically."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<eos>"] if eos else ["<pad>"]
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer=trainer)
    kwargs = {"eos_token": "<eos>"} if eos else {}
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", **kwargs)


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer()


def word_texts(domain: str, limit: int | None = None) -> Callable[[int], Iterator[str]]:
    def texts(seed: int) -> Iterator[str]:
        rng = random.Random(f"{domain}:{seed}")
        i = 0
        while limit is None or i < limit:
            yield " ".join(rng.choice(WORDS[domain]) for _ in range(rng.randint(5, 40))) + "."
            i += 1

    return texts


TOY_LIKE = (
    ToySource("toy_general", "general", "random general words", word_texts("general")),
    ToySource("toy_math", "math", "random math words", word_texts("math")),
    ToySource("toy_code", "code", "random code words", word_texts("code")),
    ToySource("toy_tiny", None, "twenty short documents", word_texts("general", limit=20)),
)


@pytest.fixture
def toy_sources() -> dict[str, CalibrationSource]:
    return {toy.name: builtin_source(toy) for toy in TOY_LIKE}


@pytest.fixture
def calib_cache(tmp_path):
    return tmp_path / "calib_cache"
