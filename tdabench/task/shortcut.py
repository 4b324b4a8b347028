"""A planted shortcut: a bright corner patch on a seeded share of one class's training images
(`data.shortcut_fraction`, `shortcut_class`, `shortcut_size`, `shortcut_seed`).

The shortcut-detection check (tdabench/downstream/shortcut.py) trains a final model on these images
and asks each estimator whether it traces the model's use of the patch back to the patched images.
The patch is the `size × size` bottom-right corner of every channel, set to the brightest pixel value
of the training split (after `pixel_scale`, before standardisation). Only the training split is
patched; the test split stays clean (the check adds the patch to test images itself).
"""

from __future__ import annotations

import math

import numpy as np

SHORTCUT_STREAM = 4  # separates this generator from label noise (2) and the data orders


def corner_mask(n_features: int, image_shape: tuple[int, ...] | None, size: int) -> np.ndarray:
    """Boolean (n_features,): the flattened positions of the bottom-right `size × size` corner of
    every channel of an image of `image_shape` (C, H, W) — or, when it is None, of a square
    one-channel image of side √n_features (scikit-learn's 8 × 8 digits). Raises ValueError for
    features that are not an image of at least `size` pixels a side."""
    if image_shape is None:
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ValueError(f"a corner patch needs image data; {n_features} features are not a square image "
                             f"(set data.image_shape)")
        image_shape = (1, side, side)
    channels, height, width = image_shape
    if channels * height * width != n_features or not 1 <= size <= min(height, width):
        raise ValueError(f"a {size}×{size} corner patch does not fit images of shape {tuple(image_shape)} "
                         f"({n_features} features)")
    mask = np.zeros(image_shape, dtype=bool)
    mask[:, height - size:, width - size:] = True
    return mask.reshape(-1)


def shortcut_indices(y: np.ndarray, cls: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted int64 indices of the patched images: round(fraction · n_c) distinct images of class
    `cls` (n_c of them), drawn with `numpy.random.default_rng([4, seed])`."""
    members = np.flatnonzero(np.asarray(y) == cls)
    if not 0.0 < fraction <= 1.0 or len(members) == 0:
        raise ValueError(f"need a fraction in (0, 1] and images of class {cls}; got {fraction!r} and "
                         f"{len(members)} images")
    m = int(round(fraction * len(members)))
    rng = np.random.default_rng([SHORTCUT_STREAM, seed])
    return np.sort(rng.choice(members, size=m, replace=False)).astype(np.int64)


def plant_shortcut(x: np.ndarray, planted: np.ndarray, mask: np.ndarray, value: float) -> np.ndarray:
    """A copy of the flat images `x` (n, n_features) in which the rows `planted` have `value` at the
    positions of `mask`; every other entry is unchanged."""
    out = np.array(x, dtype=np.float64, copy=True).reshape(len(x), -1)
    rows = np.asarray(planted, dtype=np.int64)
    out[np.ix_(rows, np.flatnonzero(mask))] = value
    return out.reshape(np.shape(x))
