"""Concepts that a probe target detects: binary labels of the examples of a split.

- 'closed-loop' (digit images): the digit has a closed loop, y ∈ {0, 6, 8, 9}.
- 'negation' (text): the text contains a negation word of `NEGATION_WORDS` (or a word ending "n't").
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

from tdabench.errors import TdabenchError, UnknownNameError
from tdabench.task.data import Split

CLOSED_LOOP_DIGITS = (0, 6, 8, 9)
NEGATION_WORDS = frozenset({"not", "no", "never", "nothing", "none", "nobody", "nowhere", "neither",
                            "nor", "cannot", "without", "hardly", "barely"})
_WORD = re.compile(r"[a-z']+")


def closed_loop(split: Split) -> np.ndarray:
    return np.isin(split.y.numpy(), CLOSED_LOOP_DIGITS)


def has_negation(text: str) -> bool:
    words = _WORD.findall(text.lower())
    return any(w in NEGATION_WORDS or w.endswith("n't") for w in words)


def negation(split: Split) -> np.ndarray:
    if split.texts is None:
        raise TdabenchError("concept 'negation' needs text data")
    return np.array([has_negation(t) for t in split.texts])


CONCEPTS: dict[str, Callable[[Split], np.ndarray]] = {"closed-loop": closed_loop, "negation": negation}


def concept_labels(name: str, split: Split) -> np.ndarray:
    """Boolean labels (n,) of concept `name` for the examples of `split`."""
    if name not in CONCEPTS:
        raise UnknownNameError("concept", name, list(CONCEPTS))
    return CONCEPTS[name](split)
