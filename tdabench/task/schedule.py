"""The data order shared by paired runs: one permutation per (seed, epoch), chunked into batches.

Copy k of a paired run either removes instance r_k from the permutation ("removal": later batches
shift by one) or keeps the batches and scales r_k's loss weight by (1 − ε) ("downweight").
r_k = -1 is the reference copy. The batch loss of copy k is Σ_j w_kj loss_kj / Σ_j m_kj, where the
mask m marks real (not padded) entries: a mean over the real batch in removal mode, and over the
nominal batch in downweight mode. `subset_batches` generalises removal to a set of dropped
instances per copy (retraining on subsets, top-k removal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np


TRAINING_STREAM, FURTHER_TRAINING_STREAM = 0, 1


def epoch_permutation(n: int, seed: int, epoch: int, stream: int = TRAINING_STREAM) -> np.ndarray:
    """The order of epoch `epoch` (0-based) under `seed`; identical for every copy of a paired run.

    `stream` separates the final model's training orders from the further-training ones, so that
    further-training seed 0 does not replay the final model's first epochs.
    """
    return np.random.default_rng([stream, seed, epoch]).permutation(n)


@dataclass(frozen=True)
class Batch:
    """One step for K copies: indices (K, B), loss weights (K, B), real-entry mask (K, B)."""

    index: np.ndarray
    weight: np.ndarray
    mask: np.ndarray

    @property
    def active(self) -> np.ndarray:
        """(K,) bool: copies with at least one real entry (an empty batch is no step at all)."""
        return self.mask.sum(1) > 0


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def epoch_batches(perm: np.ndarray, removed: np.ndarray, batch_size: int,
                  mode: str = "removal", epsilon: float = 1.0) -> Iterator[Batch]:
    """Yield the batches of one epoch for copies with removed instances `removed` (K,), -1 = none."""
    n, k = len(perm), len(removed)
    n_steps = steps_per_epoch(n, batch_size)
    width = n_steps * batch_size
    order = np.full((k, width), -1, dtype=np.int64)
    weight = np.ones((k, width))
    if mode == "removal":
        for row, r in enumerate(removed):
            kept = perm if r < 0 else perm[perm != r]
            order[row, : len(kept)] = kept
    else:
        order[:, :n] = perm
        weight[:, :n] -= epsilon * (perm[None, :] == removed[:, None])
    mask = (order >= 0).astype(np.float64)
    weight *= mask
    index = np.where(order >= 0, order, 0)
    for s in range(n_steps):
        cols = slice(s * batch_size, (s + 1) * batch_size)
        yield Batch(index[:, cols], weight[:, cols], mask[:, cols])


def subset_batches(perm: np.ndarray, keep: np.ndarray, batch_size: int) -> Iterator[Batch]:
    """The batches of one epoch for copies that train on `keep` (K, n) bool.

    Copy k's order is `perm` without its dropped instances, padded with masked entries. The epoch
    has ⌈max_k |keep_k| / B⌉ steps; a copy whose data ran out gets an empty (inactive) batch.
    """
    k = keep.shape[0]
    n_steps = steps_per_epoch(max(int(keep.sum(1).max()), 1), batch_size)
    order = np.full((k, n_steps * batch_size), -1, dtype=np.int64)
    for row in range(k):
        kept = perm[keep[row, perm]]
        order[row, : len(kept)] = kept
    mask = (order >= 0).astype(np.float64)
    index = np.where(order >= 0, order, 0)
    for s in range(n_steps):
        cols = slice(s * batch_size, (s + 1) * batch_size)
        yield Batch(index[:, cols], mask[:, cols].copy(), mask[:, cols])
