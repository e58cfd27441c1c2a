"""The built-in offline calibration sources of the toy world.

They mirror the spread of real calibration corpora: capability-aligned sources in several
formats (plain text, question/answer, instruction style), a mixed web-like crawl, an
instruction mix, low-diversity repetitive text, and two controls (shuffled words, random tokens).
Each ``texts(seed)`` yields documents forever, identically for the same seed.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from raysweep.toyworld import arithmetic, commonsense, general, programs
from raysweep.toyworld._common import rng_for


@dataclass(frozen=True)
class ToySource:
    name: str
    dimension: str | None
    description: str
    texts: Callable[[int], Iterator[str]]


_DOMAIN_TEXTS: dict[str, tuple[Callable[[int], Iterator[str]], ...]] = {
    "general": (general.prose, general.qa, general.instruct),
    "commonsense": (commonsense.prose, commonsense.qa, commonsense.instruct),
    "code": (programs.programs, programs.source, programs.qa, programs.instruct),
    "math": (arithmetic.equations, arithmetic.word_problems, arithmetic.qa, arithmetic.instruct),
}

_MENU = (
    "Home | About | Contact",
    "Menu: News  Blog  Shop  Login",
    "Skip to content",
    "Home > Articles > Latest",
)
_FOOTER = (
    "Share this: Email Facebook Twitter",
    "Copyright 2024. All rights reserved.",
    "Tags: news, travel, tips",
    "Leave a comment below!",
    "Read more posts like this.",
    "Posted by admin on 12 March 2024",
)
_COMMENTS = (
    "Great post, thanks!",
    "Very helpful, I did not know this.",
    "First!",
    "Can you write more about this?",
    "lol same",
    "This saved my day.",
)


def web(seed: int) -> Iterator[str]:
    """A crawl-like mix: mostly prose pages with menus, footers and comments, some of everything."""
    rng = rng_for(seed, "web")
    streams = {d: [f(seed + 7919 * i) for i, f in enumerate(fs)] for d, fs in _DOMAIN_TEXTS.items()}
    weights = {"general": 0.55, "commonsense": 0.25, "code": 0.1, "math": 0.1}
    while True:
        domain = rng.choices(list(weights), list(weights.values()))[0]
        body = next(rng.choice(streams[domain][:2]))
        parts = [rng.choice(_MENU), body, rng.choice(_FOOTER)]
        if rng.random() < 0.5:
            parts.append(f"Comment: {rng.choice(_COMMENTS)}")
        yield "\n\n".join(parts)


# Domain shares of the instruction mix. Like Alpaca- or Dolly-style sets it is mostly general
# knowledge and everyday requests with a little code and math; equal shares would make it the
# uniform mix written in one format, a mix rather than a single source.
_INSTRUCTION_SHARES = {"general": 0.45, "commonsense": 0.35, "code": 0.1, "math": 0.1}


def instruction_mix(seed: int) -> Iterator[str]:
    """Instruction/response pairs from every domain, mostly general and everyday requests."""
    rng = rng_for(seed, "instruction-mix")
    streams = {d: fs[-1](seed) for d, fs in _DOMAIN_TEXTS.items()}
    domains, weights = list(_INSTRUCTION_SHARES), list(_INSTRUCTION_SHARES.values())
    while True:
        yield next(streams[rng.choices(domains, weights)[0]])


def repetitive(seed: int) -> Iterator[str]:
    """Low-diversity text: a handful of fixed pages repeated with tiny variations."""
    rng = rng_for(seed, "repetitive")
    pages = [next(general.prose(0)), next(commonsense.prose(0)), "Buy now! Best prices. Buy now!"]
    while True:
        page = rng.choice(pages)
        yield "\n\n".join([page] * rng.randint(2, 4))


def shuffled_words(seed: int) -> Iterator[str]:
    """Control: the crawl-like pages of ``web`` with their words shuffled (same words, no syntax).

    Each page's words are permuted across its whitespace slots, which stay where they were: the
    control keeps every word and every whitespace run of the page (line breaks and indentation
    included) and loses only word order, so it differs from ``toy_web`` in that one respect.
    """
    rng = rng_for(seed, "shuffled")
    for page in web(seed):
        yield shuffle_words(page, rng)


def shuffle_words(text: str, rng: random.Random) -> str:
    """``text`` with its words permuted and its whitespace runs left in place."""
    parts = _WHITESPACE.split(text)  # words at even indices, whitespace runs at odd ones
    slots = [i for i in range(0, len(parts), 2) if parts[i]]  # a leading/trailing word may be ""
    words = [parts[i] for i in slots]
    rng.shuffle(words)
    for i, word in zip(slots, words, strict=True):
        parts[i] = word
    return "".join(parts)


_WHITESPACE = re.compile(r"(\s+)")


def random_tokens(seed: int) -> Iterator[str]:
    """Control: uniformly random printable characters in word-sized groups."""
    rng = rng_for(seed, "random-tokens")
    alphabet = string.ascii_letters + string.digits + string.punctuation
    while True:
        yield " ".join(_random_word(rng, alphabet) for _ in range(rng.randint(80, 160)))


def _random_word(rng: random.Random, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))


TOY_SOURCES: tuple[ToySource, ...] = (
    ToySource(
        "toy_general_prose",
        "general",
        "Encyclopedia paragraphs about invented countries.",
        general.prose,
    ),
    ToySource(
        "toy_general_qa", "general", "Question/answer pairs about invented countries.", general.qa
    ),
    ToySource(
        "toy_general_reading",
        "general",
        "Passages about unseen countries followed by questions (not in the training mix).",
        general.reading,
    ),
    ToySource(
        "toy_general_instruct",
        "general",
        "Instructions to describe countries or state a fact.",
        general.instruct,
    ),
    ToySource(
        "toy_commonsense_stories",
        "commonsense",
        "Everyday stories: materials, what happened to objects, causes.",
        commonsense.prose,
    ),
    ToySource(
        "toy_commonsense_qa",
        "commonsense",
        "Question/answer pairs about everyday physical outcomes.",
        commonsense.qa,
    ),
    ToySource(
        "toy_commonsense_instruct",
        "commonsense",
        "Instructions to predict an everyday outcome.",
        commonsense.instruct,
    ),
    ToySource(
        "toy_code_programs",
        "code",
        "Small Python programs followed by their printed output.",
        programs.programs,
    ),
    ToySource(
        "toy_code_source",
        "code",
        "Plain Python source: programs and documented functions.",
        programs.source,
    ),
    ToySource(
        "toy_code_qa", "code", "What does this program print? question/answer pairs.", programs.qa
    ),
    ToySource(
        "toy_code_instruct",
        "code",
        "Instructions to write a function or run a program.",
        programs.instruct,
    ),
    ToySource(
        "toy_math_equations",
        "math",
        "Lines of solved multi-digit arithmetic.",
        arithmetic.equations,
    ),
    ToySource(
        "toy_math_word",
        "math",
        "Two-step word problems with worked solutions.",
        arithmetic.word_problems,
    ),
    ToySource("toy_math_qa", "math", "Arithmetic drill as question/answer pairs.", arithmetic.qa),
    ToySource(
        "toy_math_instruct",
        "math",
        "Instructions to compute or solve step by step.",
        arithmetic.instruct,
    ),
    ToySource(
        "toy_web", None, "Crawl-like pages: mostly prose with menus, footers and comments.", web
    ),
    ToySource(
        "toy_instruction_mix",
        None,
        "Instruction/response pairs, mostly general and everyday requests, some code and math.",
        instruction_mix,
    ),
    ToySource("toy_repetitive", None, "Low diversity: a few fixed pages repeated.", repetitive),
    ToySource(
        "toy_shuffled_words",
        None,
        "Control: the crawl-like pages with shuffled word order.",
        shuffled_words,
    ),
    ToySource("toy_random_tokens", None, "Control: random printable characters.", random_tokens),
)

SOURCES_BY_NAME: dict[str, ToySource] = {s.name: s for s in TOY_SOURCES}


# Domain shares of the pre-training stream (beside 10 % web pages). Program tracing is the hardest
# skill for a model this small, so code gets the largest share and a training-only drill format.
_TRAINING_SHARES = {"general": 0.25, "commonsense": 0.2, "code": 0.35, "math": 0.2}


def training_texts(seed: int) -> Iterator[str]:
    """The model's pre-training stream: every domain in every format (code with drills too)."""
    rng = rng_for(seed, "training")
    formats = {**_DOMAIN_TEXTS, "code": (*_DOMAIN_TEXTS["code"], programs.drills)}
    streams = {d: [f(seed + 31 * i) for i, f in enumerate(fs)] for d, fs in formats.items()}
    domains, weights = list(_TRAINING_SHARES), list(_TRAINING_SHARES.values())
    web_stream = web(seed)
    while True:
        if rng.random() < 0.1:
            yield next(web_stream)
        else:
            yield next(rng.choice(streams[rng.choices(domains, weights)[0]]))
