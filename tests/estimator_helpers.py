"""Helpers shared by the estimator tests: a ridge-regression spec, full score matrices, a tolerance check."""

from __future__ import annotations

from typing import Any

import numpy as np

from tdabench.estimators.base import Estimator
from tdabench.task import TaskContext


def least_squares_spec(name: str = "tiny-least-squares", **training: Any) -> dict[str, Any]:
    """Ridge regression (l2 = 0.01), squared loss, one output, on 50 standardised diabetes points."""
    return {"name": name, "version": 1, "modality": "tabular",
            "data": {"source": "sklearn:load_diabetes", "max_train": 50, "max_test": 15, "standardize_target": True},
            "model": {"hidden": []}, "objective": {"loss": "squared", "l2": 0.01},
            "training": {"lr": 0.05, "batch_size": 16, "epochs": 5, **training}, "gold_standard": {},
            "dtype": "float64"}


def all_scores(estimator, context: TaskContext) -> np.ndarray:
    """The fitted estimator's scores for every test point against every training instance."""
    return estimator.fit(context).score(np.arange(len(context.test)), np.arange(len(context.train)))


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float) -> None:
    """Equal to `rtol` relative to the largest reference entry; an all-zero reference is refused."""
    assert np.abs(expected).max() > 0, "the reference is all zeros: the comparison would be vacuous"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


class Raises(Estimator):
    """An estimator whose scoring fails (RuntimeError "boom"): a run must record it and go on."""

    uses = "final-model"

    def _score(self, test_idx, train_idx):
        raise RuntimeError("boom")
