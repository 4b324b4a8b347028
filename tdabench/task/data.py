"""Loading a spec's data into train/test tensors with a fixed split.

Tabular and image sources give float features (standardised with training statistics if asked;
images scaled by `pixel_scale` and reshaped to `image_shape`); text sources give token ids
(n, max_length) and keep their texts (concept labels are read from them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from tdabench.errors import TdabenchError
from tdabench.task.noise import flip_labels
from tdabench.task.shortcut import corner_mask, plant_shortcut, shortcut_indices
from tdabench.task.sources import RawData, load_builtin_source
from tdabench.task.spec import DataSpec
from tdabench.task.user_data import USER_SOURCES


@dataclass(frozen=True)
class Split:
    """One split: inputs `x` of shape (n, ...) and targets `y` of shape (n,); `texts` for text data."""

    x: torch.Tensor
    y: torch.Tensor
    texts: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class Dataset:
    train: Split
    test: Split
    n_outputs: int  # classes for classification, 1 for regression
    is_classification: bool
    vocab_size: int | None = None  # token ids lie in [0, vocab_size) for text data
    flipped: tuple[int, ...] = ()  # training indices whose label `data.label_noise` flipped (task/noise.py)
    shortcut: tuple[int, ...] = ()  # training indices with the planted corner patch (task/shortcut.py)


def _split_indices(raw: RawData, spec: DataSpec, is_classification: bool) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (and, for classification, stratified) train/test indices, cut to max_train/max_test;
    a source's own split (`raw.n_train`) is kept in its order."""
    from sklearn.model_selection import train_test_split

    if raw.n_train is not None:
        return np.arange(raw.n_train)[: spec.max_train], np.arange(raw.n_train, len(raw.y))[: spec.max_test]
    idx = np.arange(len(raw.y))
    tr, te = train_test_split(idx, test_size=spec.test_fraction, random_state=spec.split_seed,
                              stratify=raw.y if is_classification else None)
    return tr[: spec.max_train], te[: spec.max_test]


def _features(raw: RawData, spec: DataSpec, tr: np.ndarray, te: np.ndarray,
              planted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x_tr, x_te = raw.x[tr] / spec.pixel_scale, raw.x[te] / spec.pixel_scale
    if len(planted):  # before standardisation: the patch is the brightest training pixel value
        x_tr = plant_shortcut(x_tr, planted, corner_mask(int(np.prod(x_tr.shape[1:])), spec.image_shape, spec.shortcut_size),
                              float(x_tr.max()))
    if spec.standardize:
        mean, std = x_tr.mean(0), x_tr.std(0)
        std[std == 0] = 1.0
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    if spec.image_shape is not None:
        x_tr, x_te = (a.reshape(len(a), *spec.image_shape) for a in (x_tr, x_te))
    return x_tr, x_te


def _targets(raw: RawData, spec: DataSpec, tr: np.ndarray, te: np.ndarray,
             is_classification: bool) -> tuple[np.ndarray, np.ndarray]:
    y_tr, y_te = raw.y[tr], raw.y[te]
    if not is_classification and spec.standardize_target:
        mean, std = y_tr.mean(), y_tr.std()
        y_tr, y_te = (y_tr - mean) / std, (y_te - mean) / std
    return y_tr, y_te


def _token_ids(raw: RawData, spec: DataSpec, tr: np.ndarray, te: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, int]:
    from tdabench.task.text import hf_dataset, make_tokenizer, tokenize

    full = hf_dataset(raw.texts, raw.y)
    train_ds, test_ds = full.select(tr), full.select(te)
    tokenizer = make_tokenizer(spec, train_ds["text"])
    return tokenize(train_ds, tokenizer), tokenize(test_ds, tokenizer), tokenizer.get_vocab_size()


def load_raw(spec: DataSpec) -> RawData:
    """The unsplit (or source-split) data of a built-in or user source."""
    if spec.provider in USER_SOURCES:
        return USER_SOURCES[spec.provider](spec)
    return load_builtin_source(spec.source)


def _given_ids(raw: RawData, tr: np.ndarray, te: np.ndarray, ys: list[torch.Tensor], n_outputs: int,
               is_classification: bool) -> Dataset:
    """Token ids the source gave (int64 (n, L)); the vocabulary is taken to be 0..max id."""
    x = torch.as_tensor(raw.x, dtype=torch.long)
    return Dataset(Split(x[tr], ys[0]), Split(x[te], ys[1]), n_outputs, is_classification, int(x.max()) + 1)


def load_dataset(spec: DataSpec, is_regression_loss: bool, dtype: torch.dtype) -> Dataset:
    """Split with `spec.split_seed` (unless the source is split), flip `spec.label_noise` of the
    training labels (classification; recorded in `Dataset.flipped`), then featurise (tabular/image),
    tokenise (text) or keep the given token ids."""
    raw = load_raw(spec)
    if not is_regression_loss and not raw.is_classification:
        raise TdabenchError(f"data.source '{spec.source}': the cross-entropy loss needs class labels (integers "
                            f"or names), but the labels are real numbers; use the squared loss for regression")
    is_classification = raw.is_classification and not is_regression_loss
    tr, te = _split_indices(raw, spec, is_classification)
    y_tr, y_te = _targets(raw, spec, tr, te, is_classification)
    n_outputs = int(raw.y.max()) + 1 if is_classification else 1
    flipped: tuple[int, ...] = ()
    if spec.label_noise > 0:
        if not is_classification:
            raise TdabenchError(f"data.label_noise: flipping labels needs classification data; "
                                f"'{spec.source}' is a regression task")
        y_tr, flips = flip_labels(y_tr, n_outputs, spec.label_noise, spec.label_noise_seed)
        flipped = tuple(int(i) for i in flips)
    planted = _shortcut(raw, spec, y_tr, is_classification)
    y_dtype = torch.long if is_classification else dtype
    ys = [torch.as_tensor(a, dtype=y_dtype) for a in (y_tr, y_te)]
    if raw.token_ids:
        return dataclasses.replace(_given_ids(raw, tr, te, ys, n_outputs, is_classification), flipped=flipped)
    if raw.texts is not None:
        x_tr, x_te, vocab = _token_ids(raw, spec, tr, te)
        texts = [tuple(raw.texts[i] for i in ix) for ix in (tr, te)]
        return Dataset(Split(x_tr, ys[0], texts[0]), Split(x_te, ys[1], texts[1]), n_outputs,
                       is_classification, vocab, flipped)
    x_tr, x_te = _features(raw, spec, tr, te, planted)
    xs = [torch.as_tensor(a, dtype=dtype) for a in (x_tr, x_te)]
    return Dataset(Split(xs[0], ys[0]), Split(xs[1], ys[1]), n_outputs, is_classification, flipped=flipped,
                   shortcut=tuple(int(i) for i in planted))


def _shortcut(raw: RawData, spec: DataSpec, y_tr: np.ndarray, is_classification: bool) -> np.ndarray:
    """The training indices that get the corner patch (none without `shortcut_fraction`); image
    classification data only."""
    if spec.shortcut_fraction == 0:
        return np.zeros(0, dtype=np.int64)
    if not is_classification or raw.texts is not None or raw.token_ids:
        raise TdabenchError(f"data.shortcut_fraction: a planted shortcut needs image classification data; "
                            f"'{spec.source}' is not")
    try:
        corner_mask(int(np.prod(raw.x.shape[1:])), spec.image_shape, spec.shortcut_size)
        return shortcut_indices(y_tr, spec.shortcut_class, spec.shortcut_fraction, spec.shortcut_seed)
    except ValueError as err:
        raise TdabenchError(f"data.shortcut_fraction: {err}") from None
