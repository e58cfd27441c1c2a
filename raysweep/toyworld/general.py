"""General knowledge: a fixed world of invented countries and their facts, told as prose.

Besides, ``reading`` gives passages about freshly invented countries followed by questions
(an open-book format used as a calibration source only).

The world itself never changes (``WORLD_SEED``); a document seed only chooses which countries a
text talks about and how it phrases them. Every fact is stated in prose, but a quarter of the
(country, attribute) pairs are never *asked* as a question in any text: those questions form the
held-out knowledge task, which the model can only answer by recalling the prose.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from raysweep.toyworld._common import McItem, invent_unique_words, is_held_out, rng_for

# More of the facts are held out here than elsewhere, for a task of >= 150 questions.
HELD_OUT_PER_MILLE = 500

WORLD_SEED = 20260
N_COUNTRIES = 200
ATTRIBUTES = ("capital", "language", "currency", "animal")

_ANIMALS = (
    "fox",
    "owl",
    "bear",
    "wolf",
    "eagle",
    "otter",
    "heron",
    "lynx",
    "stag",
    "hare",
    "swan",
    "crane",
    "falcon",
    "badger",
    "beaver",
    "bison",
    "camel",
    "tiger",
    "lion",
    "seal",
    "whale",
    "dolphin",
    "raven",
    "goat",
    "horse",
    "panther",
    "moose",
    "yak",
)
_ADJECTIVES = (
    "quiet",
    "busy",
    "green",
    "rocky",
    "sunny",
    "misty",
    "windy",
    "ancient",
    "lively",
    "narrow",
    "wide",
    "cold",
    "warm",
    "famous",
    "small",
)
_PLACES = (
    "harbours",
    "markets",
    "valleys",
    "bridges",
    "gardens",
    "temples",
    "beaches",
    "forests",
    "villages",
    "mountains",
    "libraries",
    "festivals",
)

_STATEMENTS = {
    "capital": (
        "The capital of {c} is {v}.",
        "{v} is the capital city of {c}.",
        "The government of {c} sits in {v}, its capital.",
        "{c} is governed from {v}.",
    ),
    "language": (
        "People in {c} speak {v}.",
        "The main language of {c} is {v}.",
        "In {c}, most people speak {v}.",
        "{v} is the language of {c}.",
    ),
    "currency": (
        "{c} uses the {v} as its currency.",
        "The currency of {c} is the {v}.",
        "In {c}, people pay with the {v}.",
        "Prices in {c} are given in {v}s.",
    ),
    "animal": (
        "The national animal of {c} is the {v}.",
        "{c} has the {v} as its national animal.",
        "The {v} is the national animal of {c}.",
        "On the flag of {c} there is a {v}.",
    ),
}
QUESTIONS = {
    "capital": "What is the capital of {c}?",
    "language": "Which language do people speak in {c}?",
    "currency": "What currency is used in {c}?",
    "animal": "What is the national animal of {c}?",
}


@dataclass(frozen=True)
class Country:
    name: str
    capital: str
    language: str
    currency: str
    animal: str

    def value(self, attribute: str) -> str:
        return str(getattr(self, attribute))


@cache
def world() -> tuple[Country, ...]:
    """The fixed list of invented countries (identical in every process)."""
    rng = rng_for(WORLD_SEED, "general-world")
    taken: set[str] = set()
    names = invent_unique_words(rng, N_COUNTRIES, (2, 3), taken)
    capitals = invent_unique_words(rng, N_COUNTRIES, (2, 3), taken)
    languages = [w + "ish" for w in invent_unique_words(rng, 30, (1, 2), taken)]
    currencies = [w.lower() for w in invent_unique_words(rng, 30, (1, 2), taken)]
    return tuple(
        Country(n, c, rng.choice(languages), rng.choice(currencies), rng.choice(_ANIMALS))
        for n, c in zip(names, capitals, strict=True)
    )


def _pair_key(country: Country, attribute: str) -> str:
    return f"general:{country.name}:{attribute}"


def asked_in_training(country: Country, attribute: str) -> bool:
    return not is_held_out(_pair_key(country, attribute), HELD_OUT_PER_MILLE)


def _describe(rng: random.Random, country: Country) -> str:
    attrs = list(ATTRIBUTES)
    rng.shuffle(attrs)
    sentences = [
        rng.choice(_STATEMENTS[a]).format(c=country.name, v=country.value(a)) for a in attrs
    ]
    filler = f"{country.name} is known for its {rng.choice(_ADJECTIVES)} {rng.choice(_PLACES)}."
    sentences.insert(rng.randrange(len(sentences) + 1), filler)
    return " ".join(sentences)


def prose(seed: int) -> Iterator[str]:
    """Encyclopedia-style paragraphs, two or three countries per document."""
    rng = rng_for(seed, "general-prose")
    countries = world()
    while True:
        picked = rng.sample(countries, rng.randint(2, 3))
        yield "\n\n".join(_describe(rng, c) for c in picked)


def _training_questions(rng: random.Random, count: int) -> list[tuple[Country, str]]:
    countries = world()
    out: list[tuple[Country, str]] = []
    while len(out) < count:
        country, attribute = rng.choice(countries), rng.choice(ATTRIBUTES)
        if asked_in_training(country, attribute):
            out.append((country, attribute))
    return out


def qa(seed: int) -> Iterator[str]:
    """Question/answer pairs about the facts whose questions are not held out."""
    rng = rng_for(seed, "general-qa")
    while True:
        pairs = _training_questions(rng, rng.randint(3, 6))
        yield "\n\n".join(
            f"Question: {QUESTIONS[a].format(c=c.name)}\nAnswer: {c.value(a)}" for c, a in pairs
        )


def instruct(seed: int) -> Iterator[str]:
    """Instruction/response pairs: describe a country, or state one fact in a sentence."""
    rng = rng_for(seed, "general-instruct")
    countries = world()
    while True:
        if rng.random() < 0.5:
            country = rng.choice(countries)
            yield f"### Instruction:\nWrite a short description of {country.name}.\n\n### Response:\n{_describe(rng, country)}"
        else:
            ((country, attribute),) = _training_questions(rng, 1)
            answer = rng.choice(_STATEMENTS[attribute]).format(
                c=country.name, v=country.value(attribute)
            )
            yield f"### Instruction:\n{QUESTIONS[attribute].format(c=country.name)} Reply in one sentence.\n\n### Response:\n{answer}"


def fact_items(seed: int, count: int) -> list[McItem]:
    """Closed-book: held-out questions with four answers of the same kind (chance 0.25)."""
    rng = rng_for(seed, "general-task")
    countries = world()
    pairs = [(c, a) for c in countries for a in ATTRIBUTES if not asked_in_training(c, a)]
    rng.shuffle(pairs)
    items = []
    for country, attribute in pairs[:count]:
        pool = sorted({c.value(attribute) for c in countries} - {country.value(attribute)})
        choices = [country.value(attribute), *rng.sample(pool, 3)]
        rng.shuffle(choices)
        context = f"Question: {QUESTIONS[attribute].format(c=country.name)}\nAnswer:"
        items.append(McItem(context, tuple(choices), choices.index(country.value(attribute))))
    return items


def _fresh_countries(rng: random.Random, count: int) -> list[Country]:
    """Countries invented on the spot, never named in the fixed world."""
    known = {c.name for c in world()} | {c.capital for c in world()}
    taken = set(known)
    names = invent_unique_words(rng, count, (2, 3), taken)
    capitals = invent_unique_words(rng, count, (2, 3), taken)
    languages = [w + "ish" for w in invent_unique_words(rng, count, (1, 2), taken)]
    currencies = [w.lower() for w in invent_unique_words(rng, count, (1, 2), taken)]
    animals = rng.sample(_ANIMALS, count)
    return [
        Country(*row) for row in zip(names, capitals, languages, currencies, animals, strict=True)
    ]


def _passage(rng: random.Random, countries: list[Country], attribute: str) -> str:
    """Two facts per country, always including ``attribute`` (so every country is a distractor)."""
    sentences = []
    for country in countries:
        other = rng.choice([a for a in ATTRIBUTES if a != attribute])
        pair = [attribute, other] if rng.random() < 0.5 else [other, attribute]
        sentences += [
            rng.choice(_STATEMENTS[a]).format(c=country.name, v=country.value(a)) for a in pair
        ]
    return " ".join(sentences)


def _reading_item(rng: random.Random) -> tuple[str, Country, str, list[Country]]:
    countries = _fresh_countries(rng, 3)
    target, attribute = rng.choice(countries), rng.choice(ATTRIBUTES)
    return _passage(rng, countries, attribute), target, attribute, countries


def reading(seed: int) -> Iterator[str]:
    """Open-book practice: a passage about newly invented countries, then questions about it."""
    rng = rng_for(seed, "general-reading")
    while True:
        passage, target, attribute, countries = _reading_item(rng)
        questions = [(target, attribute), (rng.choice(countries), attribute)]
        qa_text = "\n".join(
            f"Question: {QUESTIONS[a].format(c=c.name)}\nAnswer: {c.value(a)}" for c, a in questions
        )
        yield f"Passage: {passage}\n{qa_text}"
