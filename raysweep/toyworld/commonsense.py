"""Commonsense: everyday physics of materials (material x action -> effect) and cause/effect.

Each object has a fixed material, and each (material, action) pair a fixed effect. Training texts
state the materials and tell what happened to objects; a quarter of the (object, action) pairs
never occur in any text, so the held-out task asks the model to combine what an object is made
of with how that material behaves.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from raysweep.toyworld._common import FIRST_NAMES, McItem, is_held_out, rng_for

OBJECTS = {
    "glass": ("vase", "window", "bottle", "jar", "mirror", "lens", "goblet", "marble", "bowl"),
    "iron": ("nail", "pan", "anvil", "key", "chain", "gate", "horseshoe", "hammer", "bolt"),
    "wood": ("chair", "table", "fence", "crate", "stool", "ladder", "spoon", "plank", "canoe"),
    "paper": ("letter", "map", "ticket", "napkin", "envelope", "poster", "bag", "kite", "book"),
    "wax": ("candle", "crayon", "figurine", "seal", "apple", "tablet", "cone", "bead"),
    "ice": ("icicle", "snowball", "igloo", "popsicle", "cube", "sculpture", "block", "slab"),
    "rubber": ("ball", "tire", "eraser", "boot", "hose", "duck", "glove", "band", "mat"),
    "clay": ("flowerpot", "brick", "tile", "jug", "pot", "mug", "urn", "vessel", "plate"),
    "wool": ("sweater", "scarf", "sock", "blanket", "mitten", "hat", "rug", "shawl", "cushion"),
    "stone": (
        "statue",
        "pebble",
        "boulder",
        "millstone",
        "step",
        "pillar",
        "slate",
        "bench",
        "cobble",
    ),
    "copper": ("coin", "wire", "pipe", "bell", "kettle", "pot lid", "ring", "tray", "lamp"),
}
MATERIAL_OF = {obj: material for material, objs in OBJECTS.items() for obj in objs}

# action clause (past tense, "{o}" is the object phrase) -> effect for each material
_HOT = "grew hot but kept its shape"
_SANK = "sank to the bottom"
_FLOAT = "floated on the water"
_SAME = "stayed just as it was"
_STILL = "did not move at all"
_WARM = "got warm"
_UNCUT = "was too hard to cut"
_CUT = "was cut in two"
_SNAP = "snapped in two"
ACTIONS: dict[str, dict[str, str]] = {
    "dropped the {o} on a stone floor": {
        "glass": "shattered into pieces",
        "iron": "hit the floor with a clang",
        "wood": "landed with a knock",
        "paper": "drifted slowly to the floor",
        "wax": "got a small dent",
        "ice": "shattered into pieces",
        "rubber": "bounced back up",
        "clay": "cracked into pieces",
        "wool": "landed without a sound",
        "stone": "hit the floor with a thud",
        "copper": "hit the floor with a clang",
    },
    "held the {o} over a hot fire": {
        "glass": _HOT,
        "iron": "glowed red",
        "wood": "caught fire and burned",
        "paper": "caught fire and burned",
        "wax": "melted into a puddle",
        "ice": "melted into water",
        "rubber": "gave off black smoke",
        "clay": "became hard",
        "wool": "shrank and smelled bad",
        "stone": _HOT,
        "copper": "glowed red",
    },
    "put the {o} into a bucket of water": {
        "glass": _SANK,
        "iron": _SANK,
        "wood": _FLOAT,
        "paper": "got soggy and fell apart",
        "wax": _FLOAT,
        "ice": _FLOAT,
        "rubber": _FLOAT,
        "clay": "turned soft and muddy",
        "wool": "soaked up the water",
        "stone": _SANK,
        "copper": _SANK,
    },
    "left the {o} out in the rain for a month": {
        "glass": _SAME,
        "iron": "became covered in rust",
        "wood": "swelled and began to rot",
        "paper": "turned into mush",
        "wax": _SAME,
        "ice": "slowly melted away",
        "rubber": _SAME,
        "clay": "turned soft and muddy",
        "wool": "became heavy and wet",
        "stone": _SAME,
        "copper": "turned green",
    },
    "held a strong magnet next to the {o}": {
        "glass": _STILL,
        "iron": "jumped onto the magnet",
        "wood": _STILL,
        "paper": _STILL,
        "wax": _STILL,
        "ice": _STILL,
        "rubber": _STILL,
        "clay": _STILL,
        "wool": _STILL,
        "stone": _STILL,
        "copper": _STILL,
    },
    "tried to bend the {o}": {
        "glass": _SNAP,
        "iron": "bent only a little",
        "wood": _SNAP,
        "paper": "folded easily",
        "wax": "bent slowly",
        "ice": _SNAP,
        "rubber": "bent and sprang back",
        "clay": "crumbled apart",
        "wool": "folded easily",
        "stone": "did not bend at all",
        "copper": "bent easily and stayed bent",
    },
    "left the {o} in the hot sun": {
        "glass": _WARM,
        "iron": _WARM,
        "wood": _WARM,
        "paper": "faded in color",
        "wax": "became soft",
        "ice": "melted into water",
        "rubber": _WARM,
        "clay": "dried and cracked",
        "wool": _WARM,
        "stone": _WARM,
        "copper": _WARM,
    },
    "cut the {o} with scissors": {
        "glass": _UNCUT,
        "iron": _UNCUT,
        "wood": _UNCUT,
        "paper": _CUT,
        "wax": _CUT,
        "ice": _UNCUT,
        "rubber": _CUT,
        "clay": _CUT,
        "wool": _CUT,
        "stone": _UNCUT,
        "copper": _UNCUT,
    },
}

_CAUSES = (
    ("It rained all night", "the streets were wet in the morning"),
    ("The wind blew hard", "leaves fell from the trees"),
    ("She forgot to water the plant", "its leaves turned brown"),
    ("He stayed up very late", "he felt tired the next day"),
    ("The milk was left out", "it turned sour"),
    ("The sun went down", "the air grew cooler"),
    ("The baby was hungry", "she started to cry"),
    ("The road was icy", "the cars drove slowly"),
    ("They ran a long race", "they were thirsty"),
    ("The bread was in the oven too long", "it burned"),
    ("The lamp was switched off", "the room became dark"),
    ("Snow fell all day", "the children built a snowman"),
    ("The tap was left running", "the sink overflowed"),
    ("The dog heard a noise", "it started to bark"),
    ("The store had a sale", "many people came to shop"),
    ("He did not study", "he failed the test"),
)
_MATERIAL_SENTENCES = (
    "The {o} is made of {m}.",
    "A {o} is usually made of {m}.",
    "Most {o}s are made of {m}.",
    "Her {o} was made of {m}.",
)
_EVENT_TEMPLATES = ("{n} {a}, and it {e}.", "When {n} {a}, it {e}.", "{n} {a}. The {o} {e}.")


def _pair_key(obj: str, action: str) -> str:
    return f"commonsense:{obj}:{action}"


def told_in_training(obj: str, action: str) -> bool:
    return not is_held_out(_pair_key(obj, action))


def _training_event(rng: random.Random) -> tuple[str, str, str]:
    while True:
        obj, action = rng.choice(sorted(MATERIAL_OF)), rng.choice(list(ACTIONS))
        if told_in_training(obj, action):
            return obj, action, ACTIONS[action][MATERIAL_OF[obj]]


def _object_phrase(rng: random.Random, obj: str) -> str:
    # Half of the time the material is named, half of the time it must be known.
    return f"{MATERIAL_OF[obj]} {obj}" if rng.random() < 0.5 else obj


def _event_sentence(rng: random.Random) -> str:
    obj, action, effect = _training_event(rng)
    phrase = action.format(o=_object_phrase(rng, obj))
    return rng.choice(_EVENT_TEMPLATES).format(n=rng.choice(FIRST_NAMES), a=phrase, e=effect, o=obj)


def prose(seed: int) -> Iterator[str]:
    """Short everyday stories: what objects are made of, what happened to them, causes and effects."""
    rng = rng_for(seed, "commonsense-prose")
    while True:
        sentences = []
        for _ in range(rng.randint(4, 7)):
            r = rng.random()
            if r < 0.55:
                sentences.append(_event_sentence(rng))
            elif r < 0.8:
                obj = rng.choice(sorted(MATERIAL_OF))
                sentences.append(rng.choice(_MATERIAL_SENTENCES).format(o=obj, m=MATERIAL_OF[obj]))
            else:
                cause, effect = rng.choice(_CAUSES)
                sentences.append(f"{cause}, so {effect}.")
        yield " ".join(sentences)


def qa(seed: int) -> Iterator[str]:
    """Question/answer pairs about what happened to an object."""
    rng = rng_for(seed, "commonsense-qa")
    while True:
        parts = []
        for _ in range(rng.randint(3, 5)):
            obj, action, effect = _training_event(rng)
            clause = action.format(o=_object_phrase(rng, obj))
            parts.append(
                f"Question: {rng.choice(FIRST_NAMES)} {clause}. What happened to the {obj}?\nAnswer: It {effect}."
            )
        yield "\n\n".join(parts)


def instruct(seed: int) -> Iterator[str]:
    """Instruction/response pairs asking to predict or explain an everyday outcome."""
    rng = rng_for(seed, "commonsense-instruct")
    while True:
        obj, action, effect = _training_event(rng)
        material = MATERIAL_OF[obj]
        clause = action.format(o=obj)
        yield (
            f"### Instruction:\nPredict what happens next: someone {clause}.\n\n### Response:\n"
            f"The {obj} is made of {material}, so it {effect}."
        )


def task_items(seed: int, count: int) -> list[McItem]:
    """Held-out (object, action) pairs as cloze items; distractors are other effects of the action."""
    rng = rng_for(seed, "commonsense-task")
    # Every held-out pair twice: once naming the material, once leaving it to be recalled.
    pairs = [
        (o, a, named)
        for o in sorted(MATERIAL_OF)
        for a in ACTIONS
        if not told_in_training(o, a)
        for named in (True, False)
    ]
    rng.shuffle(pairs)
    all_effects = sorted({e for effects in ACTIONS.values() for e in effects.values()})
    items = []
    for obj, action, named in pairs[:count]:
        effect = ACTIONS[action][MATERIAL_OF[obj]]
        same_action = sorted(set(ACTIONS[action].values()) - {effect})
        others = rng.sample(same_action, min(3, len(same_action)))
        while len(others) < 3:
            extra = rng.choice(all_effects)
            if extra != effect and extra not in others:
                others.append(extra)
        choices = [effect, *others]
        rng.shuffle(choices)
        phrase = f"{MATERIAL_OF[obj]} {obj}" if named else obj
        context = f"{rng.choice(FIRST_NAMES)} {action.format(o=phrase)}, and it"
        items.append(McItem(context, tuple(choices), choices.index(effect)))
    return items
