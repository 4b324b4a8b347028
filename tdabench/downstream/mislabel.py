"""Mislabel detection: flip a seeded fraction of a classification task's training labels, train its
own final model, and ask how well each estimator's self-influence finds the flipped instances.

The noisy task is the spec with `data.label_noise` set (task/noise.py): its spec hash differs, so it
has its own cached final model, and it is named `<task>@noisy`. Detection score = self-influence
(selfinfluence.py; larger = more suspicious). Reported: the AUC of the flipped against the clean
instances with its interval, and the precision among the m highest scores, m = number flipped
(the precision at the flipped fraction). The gold standard's own self-influence at each horizon
is the reference.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from tdabench.downstream.metrics import Auc, auc, precision_at_k
from tdabench.errors import TdabenchError
from tdabench.task.spec import TaskSpec

DEFAULT_NOISE = 0.1
NOISY_SUFFIX = "@noisy"


def noisy_spec(spec: TaskSpec, fraction: float = DEFAULT_NOISE, seed: int = 0) -> TaskSpec:
    """The spec with `fraction` of its training labels flipped (seeded), named `<name>@noisy`; a
    spec that already sets `data.label_noise` is returned as it is."""
    if spec.objective.loss != "cross-entropy":
        raise TdabenchError(f"mislabel detection needs a classification task; '{spec.name}' uses the "
                            f"{spec.objective.loss} loss")
    if spec.data.label_noise > 0:
        return spec
    if not 0 < fraction < 1:
        raise TdabenchError(f"the label-noise fraction must lie in (0, 1), got {fraction!r}")
    data = dataclasses.replace(spec.data, label_noise=float(fraction), label_noise_seed=int(seed))
    return dataclasses.replace(spec, name=spec.name + NOISY_SUFFIX, data=data)


@dataclass(frozen=True)
class Detection:
    """How well one detection score finds the flipped instances among the `n` scored."""

    auc: Auc
    precision: float  # at m = number of flipped instances among those scored
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"auc": self.auc.value, "auc_low": self.auc.low, "auc_high": self.auc.high,
                "precision_at_flipped": self.precision, "n_flipped": self.auc.n_pos, "n_scored": self.n}


def detection(scores: np.ndarray, flipped: np.ndarray) -> Detection:
    """AUC (with interval) and precision at m = flipped.sum() of `scores` (larger = flipped)."""
    flipped = np.asarray(flipped, dtype=bool)
    return Detection(auc(scores, flipped), precision_at_k(scores, flipped, int(flipped.sum())), len(flipped))


CONSTANT_RTOL = 1e-9  # self-influences closer than this (relative to the largest |value|) are one value


def constant_reason(scores: np.ndarray) -> str | None:
    """Why `scores` cannot rank instances, or None: they are all equal up to rounding, max − min <=
    CONSTANT_RTOL · max |s| (grad-cos self-influence is cos(g_i, g_i) = 1 for every instance, so an
    AUC of it would only order rounding errors)."""
    s = np.asarray(scores, dtype=np.float64)
    scale = float(np.abs(s).max()) if s.size else 0.0
    if s.size and float(s.max() - s.min()) <= CONSTANT_RTOL * scale:
        return (f"self-influence is the same for every instance ({float(s.mean()):.6g} up to rounding; grad-cos is "
                "the cosine of a gradient with itself), so it cannot rank them: no AUC")
    return None


def flipped_mask(n_train: int, flipped: tuple[int, ...] | np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Boolean (len(idx),): which of the training instances `idx` had their label flipped."""
    mask = np.zeros(n_train, dtype=bool)
    mask[np.asarray(flipped, dtype=np.int64)] = True
    return mask[np.asarray(idx, dtype=np.int64)]
