"""Shared helpers for the toy-world generators: seeded RNGs, held-out splits, invented words."""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

# Fraction of keys (entity/attribute pairs, arithmetic operand tuples, program texts, ...) kept
# out of every training-style text and used only by the evaluation tasks.
HELD_OUT_PER_MILLE = 250


def rng_for(seed: int, stream: str) -> random.Random:
    """An independent ``random.Random`` per (seed, stream): streams never share state."""
    return random.Random(f"{stream}:{seed}")


def is_held_out(key: str, per_mille: int = HELD_OUT_PER_MILLE) -> bool:
    """Stable (process- and platform-independent) membership of ``key`` in the evaluation split."""
    return zlib.crc32(key.encode("utf-8")) % 1000 < per_mille


@dataclass(frozen=True)
class McItem:
    """One multiple-choice item: the model scores ``context + " " + choice`` for every choice."""

    context: str
    choices: tuple[str, ...]
    label: int


_ONSETS = (
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "gr",
    "kr",
    "tr",
    "st",
    "sh",
    "th",
    "ch",
    "pl",
    "fl",
    "sk",
)
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou", "ia")
_CODAS = ("", "", "", "n", "r", "l", "s", "th", "nd", "rk", "m")


def invent_word(rng: random.Random, syllables: int) -> str:
    """A pronounceable invented word, capitalised, e.g. ``Dravoria``."""
    parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)]
    return ("".join(parts) + rng.choice(_CODAS)).capitalize()


def invent_unique_words(
    rng: random.Random, count: int, syllables: tuple[int, int], taken: set[str]
) -> list[str]:
    """``count`` invented words not in ``taken`` (which is updated), in generation order."""
    out: list[str] = []
    while len(out) < count:
        word = invent_word(rng, rng.randint(*syllables))
        if word not in taken and len(word) >= 4:
            taken.add(word)
            out.append(word)
    return out


FIRST_NAMES = (
    "Ada",
    "Ben",
    "Cara",
    "Dev",
    "Eli",
    "Fay",
    "Gus",
    "Hana",
    "Ivo",
    "Jade",
    "Kai",
    "Lena",
    "Milo",
    "Nora",
    "Omar",
    "Pia",
    "Quin",
    "Rosa",
    "Sami",
    "Tara",
    "Uma",
    "Vik",
    "Wren",
    "Yara",
    "Zane",
    "Ines",
    "Leo",
    "Maya",
    "Noah",
    "Ruth",
)
