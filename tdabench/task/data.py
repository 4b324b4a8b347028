"""Loading the bundled data sets into standardised train/test tensors with a fixed split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tdabench.errors import TdabenchError
from tdabench.task.spec import DataSpec


@dataclass(frozen=True)
class Split:
    """One split: inputs `x` of shape (n, ...) and targets `y` of shape (n,)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class Dataset:
    train: Split
    test: Split
    n_outputs: int  # classes for classification, 1 for regression
    is_classification: bool


_SKLEARN_LOADERS = ("load_breast_cancer", "load_diabetes", "load_digits", "load_iris", "load_wine")


def _load_raw(source: str) -> tuple[np.ndarray, np.ndarray, bool]:
    provider, _, name = source.partition(":")
    if provider != "sklearn" or name not in _SKLEARN_LOADERS:
        valid = ", ".join(f"sklearn:{n}" for n in _SKLEARN_LOADERS)
        raise TdabenchError(f"unknown data source '{source}'; valid sources: {valid}")
    import sklearn.datasets

    x, y = getattr(sklearn.datasets, name)(return_X_y=True)
    return np.asarray(x, dtype=np.float64), np.asarray(y), name != "load_diabetes"


def load_dataset(spec: DataSpec, is_regression_loss: bool, dtype: torch.dtype) -> Dataset:
    """Split with `spec.split_seed` (stratified for classification), standardise with train statistics."""
    from sklearn.model_selection import train_test_split

    x, y, is_classification = _load_raw(spec.source)
    is_classification = is_classification and not is_regression_loss
    stratify = y if is_classification else None
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=spec.test_fraction, random_state=spec.split_seed, stratify=stratify)
    x_tr, y_tr = x_tr[: spec.max_train], y_tr[: spec.max_train]
    x_te, y_te = x_te[: spec.max_test], y_te[: spec.max_test]
    if spec.standardize:
        mean, std = x_tr.mean(0), x_tr.std(0)
        std[std == 0] = 1.0
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    if not is_classification and spec.standardize_target:
        mean, std = y_tr.mean(), y_tr.std()
        y_tr, y_te = (y_tr - mean) / std, (y_te - mean) / std
    y_dtype = torch.long if is_classification else dtype
    to_split = lambda a, b: Split(torch.as_tensor(a, dtype=dtype), torch.as_tensor(b, dtype=y_dtype))
    n_outputs = int(y.max()) + 1 if is_classification else 1
    return Dataset(to_split(x_tr, y_tr), to_split(x_te, y_te), n_outputs, is_classification)
