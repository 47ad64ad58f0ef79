# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The text of the demo world: alt-text style captions of a scene, and the object phrases ("a small red circle") that
captions, Visual Genome region descriptions and ConceptNet surface texts are made of.
"""

import random
from collections.abc import Sequence

_SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
_NUMBER_WORDS = {2: "two", 3: "three"}


def article(phrase: str) -> str:
    """`phrase` with its indefinite article: "a circle", "an orange square"."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def object_phrase(rng: random.Random, item: dict) -> str:
    """The colour and shape of an object (`shape`, `colour`, `size`), sometimes preceded by a word for its size."""
    phrase = f"{item['colour']} {item['shape']}"
    if rng.random() < 0.4:
        phrase = f"{rng.choice(_SIZE_WORDS[item['size']])} {phrase}"
    return phrase


def _join(phrases: Sequence[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def alt_text_caption(rng: random.Random, objects: Sequence[dict]) -> str:
    """One alt-text style caption naming every object's colour and shape (sometimes its size), never a relation."""
    order = list(objects)
    rng.shuffle(order)
    phrases = [object_phrase(rng, item) for item in order]
    listed = _join([article(phrase) for phrase in phrases])
    templates = ["{list}", "a picture of {list}", "{list} on a plain background", "clip art of {list}"]
    if len(objects) == 1:
        templates.append("a single " + phrases[0])
    else:
        templates += [_NUMBER_WORDS[len(objects)] + " shapes: {list}", "{bare}"]
    caption = rng.choice(templates).format(list=listed, bare=", ".join(phrases))
    if rng.random() < 0.5:
        caption = caption[0].upper() + caption[1:]
    if rng.random() < 0.4:
        caption += "."
    if rng.random() < 0.08:
        # The real file has trailing spaces and newlines on some captions; loaders must strip them.
        caption += rng.choice([" ", "\n"])
    return caption
