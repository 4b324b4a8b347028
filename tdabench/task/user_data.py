"""The user's data: 'csv:PATH', 'hf-disk:PATH' and 'python:package.module:function' sources.

Each gives `RawData`. A source that comes already split (a loader's `(train, test)`, a saved
`DatasetDict`) is kept as it is: its rows are concatenated, train first, and `RawData.n_train` says
where the test split starts. Labels: integers are kept, other values (strings) become class ids in
sorted order; whether the task is classification follows the spec's loss (data.py).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tdabench.errors import TdabenchError
from tdabench.task.packages import require
from tdabench.task.sources import RawData
from tdabench.task.spec import DataSpec
from tdabench.task.user_code import call_user, load_object


def _labels(values: Sequence[Any], where: str) -> tuple[np.ndarray, bool]:
    """(labels, is_classification): integers as they are, floats as numbers, strings as class ids."""
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        return array.astype(np.int64), True
    if array.dtype.kind == "f":
        integral = bool(np.all(np.isfinite(array)) and np.all(array == np.round(array)))
        return (array.astype(np.int64), True) if integral else (array.astype(np.float64), False)
    try:
        return _labels([float(v) for v in array], where)
    except ValueError:
        classes, ids = np.unique(array.astype(str), return_inverse=True)
        if len(classes) < 2:
            raise TdabenchError(f"{where}: the labels hold one class only ({classes[0]!r})") from None
        return ids.astype(np.int64), True


def _numeric(rows: np.ndarray, where: str) -> np.ndarray:
    try:
        x = rows.astype(np.float64)
    except ValueError as err:
        raise TdabenchError(f"{where}: the feature columns must be numbers ({err})") from None
    if not np.all(np.isfinite(x)):
        raise TdabenchError(f"{where}: the features hold {int((~np.isfinite(x)).sum())} missing or non-finite values")
    return x


def _columns(available: Sequence[str], spec: DataSpec, where: str) -> list[str]:
    """The feature columns: `spec.features`, or every column but the label; all must exist."""
    missing = [c for c in (*spec.features, spec.label) if c not in available]
    if missing:
        raise TdabenchError(f"{where}: no column {missing[0]!r}; the columns are: {', '.join(available)}")
    return list(spec.features) or [c for c in available if c != spec.label]


def load_csv(spec: DataSpec) -> RawData:
    """One row per example, a header row; split by the spec's `test_fraction` and `split_seed`."""
    path, where = Path(spec.location), f"data.source '{spec.source}'"
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as err:
        raise TdabenchError(f"{where}: cannot read {path} ({err.strerror or err})") from None
    if len(rows) < 3:
        raise TdabenchError(f"{where}: expected a header row and at least two data rows, found {len(rows)} rows")
    header, body = rows[0], np.array(rows[1:], dtype=object)
    if any(len(r) != len(header) for r in rows[1:]):
        raise TdabenchError(f"{where}: every row must have the header's {len(header)} columns")
    features = _columns(header, spec, where)
    y, is_classification = _labels(body[:, header.index(spec.label)].astype(str), where)
    x = _numeric(body[:, [header.index(c) for c in features]].astype(str), where)
    return RawData(y, is_classification, x=x)  # tokenizer 'given' is refused for CSV by DataSpec


def _token_ids(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim != 2 or x.dtype.kind not in "iu" or (x.size and x.min() < 0):
        raise TdabenchError(f"{where}: with tokenizer 'given' the inputs must be token ids, non-negative "
                            f"integers of shape (n, length); got {x.dtype} of shape {x.shape}")
    return x.astype(np.int64)


def _inputs(x: np.ndarray, spec: DataSpec, where: str) -> np.ndarray:
    """Token ids when the spec says the data holds them (tokenizer 'given'), else float features."""
    return _token_ids(x, where) if spec.tokenizer == "given" else _numeric(x, where)


def _from_hf(dataset: Any, spec: DataSpec, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a `datasets.Dataset`: the feature columns stacked, or one list-valued column as is."""
    features = _columns(list(dataset.column_names), spec, where)
    if len(features) == 1:
        x = np.asarray(dataset[features[0]])
        x = x if x.ndim >= 2 else x[:, None]
    else:
        x = np.stack([np.asarray(dataset[c]) for c in features], axis=1)
    return _inputs(x, spec, where), np.asarray(dataset[spec.label])


def _as_numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _joined(parts: list[tuple[np.ndarray, np.ndarray]], spec: DataSpec, where: str) -> RawData:
    """(train, test) parts concatenated, train first, `n_train` marking the split."""
    (x_tr, y_tr), (x_te, y_te) = parts
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise TdabenchError(f"{where}: train inputs have shape {x_tr.shape[1:]} per example, test {x_te.shape[1:]}")
    for x, y, split in ((x_tr, y_tr, "train"), (x_te, y_te, "test")):
        if len(x) != len(y) or len(x) == 0:
            raise TdabenchError(f"{where}: the {split} split has {len(x)} inputs and {len(y)} labels")
    y, is_classification = _labels(np.concatenate([y_tr, y_te]), where)
    x = np.concatenate([x_tr, x_te])
    return RawData(y, is_classification, x=_inputs(x, spec, where), token_ids=spec.tokenizer == "given",
                   n_train=len(x_tr))


def _from_dataset_dict(dd: Any, spec: DataSpec, where: str) -> RawData:
    if not {"train", "test"} <= set(dd):
        raise TdabenchError(f"{where}: a DatasetDict needs splits 'train' and 'test'; it has: {', '.join(dd)}")
    parts = [_from_hf(dd[s], spec, f"{where} (split {s})") for s in ("train", "test")]
    return _joined(parts, spec, where)


def load_hf_disk(spec: DataSpec) -> RawData:
    """`datasets.load_from_disk(PATH)`: a Dataset (split here) or a DatasetDict (its own split)."""
    datasets, where = require("datasets", f"data.source '{spec.source}'"), f"data.source '{spec.source}'"
    datasets.disable_progress_bars()
    try:
        loaded = datasets.load_from_disk(spec.location)
    except (FileNotFoundError, ValueError) as err:
        raise TdabenchError(f"{where}: not a dataset saved with save_to_disk ({err})") from None
    if isinstance(loaded, datasets.DatasetDict):
        return _from_dataset_dict(loaded, spec, where)
    x, y = _from_hf(loaded, spec, where)
    labels, is_classification = _labels(y, where)
    return RawData(labels, is_classification, x=x, token_ids=spec.tokenizer == "given")


def load_python(spec: DataSpec) -> RawData:
    """Call the loader; it returns `(train, test)` of `(x, y)` pairs, or a `datasets.DatasetDict`."""
    where = f"data.source '{spec.source}'"
    out = call_user(load_object(spec.location, "data.source"), where)
    if hasattr(out, "keys") and hasattr(out, "column_names"):
        return _from_dataset_dict(out, spec, where)
    try:
        (x_tr, y_tr), (x_te, y_te) = out
    except (TypeError, ValueError):
        raise TdabenchError(f"{where} must return (train, test), each an (x, y) pair of tensors or arrays, "
                            f"or a datasets.DatasetDict; it returned {type(out).__name__}") from None
    parts = [(_as_numpy(x), _as_numpy(y)) for x, y in ((x_tr, y_tr), (x_te, y_te))]
    return _joined(parts, spec, where)


USER_SOURCES = {"csv": load_csv, "hf-disk": load_hf_disk, "python": load_python}
