"""Each native estimator against the adapter to the library that made it known, on breast-cancer-mlp.

The final model is the real default task's (20,738 parameters, trained once and cached for the test
session); 20 test points × 100 training instances. Exact quantities must agree to 1e-5 relative;
EK-FAC (kronfluence samples labels for its Fisher) and TRAK (each with its own random projection)
must agree with a Pearson correlation of at least 0.95 per test point, averaged.
"""

from __future__ import annotations

import numpy as np
import pytest

from tdabench.scoring.metrics import agreement
from tdabench.registry import make_estimator
from tdabench.task import TaskContext, build_context, find_spec

TEST_IDX, TRAIN_IDX = np.arange(0, 100, 5), np.arange(0, 398, 4)


@pytest.fixture(scope="module")
def default_task() -> TaskContext:
    return build_context(find_spec("breast-cancer-mlp"))


def scores(context: TaskContext, name: str, **params) -> tuple[np.ndarray, object]:
    estimator = make_estimator(name, **params).fit(context)
    return estimator.score(TEST_IDX, TRAIN_IDX), estimator


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    assert np.abs(b).max() > 0
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_tracin_equals_captum(default_task):
    assert len(default_task.checkpoints) == 3  # TracIn-CP over epochs 10, 20, 30
    native, _ = scores(default_task, "tracin")
    assert relative_difference(scores(default_task, "tracin-captum")[0], native) < 1e-5


def test_if_cg_equals_dattri(default_task):
    native, estimator = scores(default_task, "if-cg")
    reference, _ = scores(default_task, "if-dattri", damping=estimator.describe()["damping"])
    assert relative_difference(reference, native) < 1e-5


def test_ekfac_agrees_with_kronfluence(default_task):
    native, estimator = scores(default_task, "ekfac")
    reference, _ = scores(default_task, "ekfac-kronfluence", damping=estimator.describe()["damping"])
    assert agreement(reference, native, "pearson").mean >= 0.95


def test_trak_agrees_with_traker(default_task):
    native, estimator = scores(default_task, "trak")
    reference, _ = scores(default_task, "trak-traker", proj_dim=estimator.proj_dim, damping=estimator.damping)
    assert agreement(reference, native, "pearson").mean >= 0.95
