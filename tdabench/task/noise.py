"""Label noise: a seeded flip of a fraction of the training labels (`data.label_noise`).

The mislabel-detection check (tdabench/downstream/mislabel.py) trains a final model on a training
split in which round(fraction · n) labels were changed, and asks each estimator to find them.
Only the training split is flipped; the test split keeps its true labels.
"""

from __future__ import annotations

import numpy as np

NOISE_STREAM = 2  # separates this generator from the data orders of task/schedule.py


def flip_labels(y: np.ndarray, n_classes: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, flipped indices (sorted, int64)).

    m = round(fraction · n) distinct indices are drawn with `numpy.random.default_rng([2, seed])`;
    each drawn label y is replaced by (y + u) mod C with u uniform in {1, …, C − 1}, so every flipped
    label differs from the original and is uniform over the other classes. fraction = 0 flips nothing.
    """
    y = np.asarray(y)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must lie in [0, 1), got {fraction!r}")
    if n_classes < 2:
        raise ValueError(f"flipping labels needs at least 2 classes, got {n_classes}")
    rng = np.random.default_rng([NOISE_STREAM, seed])
    m = int(round(fraction * len(y)))
    flipped = np.sort(rng.choice(len(y), size=m, replace=False)).astype(np.int64)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, n_classes, size=m)) % n_classes
    return noisy, flipped
