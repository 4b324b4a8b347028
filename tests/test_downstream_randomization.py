"""The model-randomisation check (tdabench/downstream/randomization.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tdabench.downstream.randomization import model_randomization, randomized_params
from tdabench.estimators.base import Estimator
from tdabench.registry import make_estimator

from gold_helpers import small_context


class InputSimilarity(Estimator):
    """A stub that ignores the parameters: minus the squared input distance (plus `offset`)."""
    uses = "final-model"

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def _score(self, test_idx: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
        ctx = self._fitted_context()
        a, b = ctx.test.x[test_idx], ctx.train.x[train_idx]
        return (self.offset - torch.cdist(a, b) ** 2).numpy()


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return small_context(tmp_path_factory.mktemp("rand"))


def test_randomized_parameters_are_fresh_seeded_and_leave_the_global_rng_alone(ctx):
    state = torch.random.get_rng_state()
    first, again, other = randomized_params(ctx, 1), randomized_params(ctx, 1), randomized_params(ctx, 2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert set(first) == set(ctx.params)
    for k in ctx.params:
        assert torch.equal(first[k], again[k]) and not torch.equal(first[k], other[k])
        assert not torch.equal(first[k], ctx.params[k]) and first[k].dtype == ctx.params[k].dtype


def test_an_estimator_that_ignores_the_parameters_fails_the_check(ctx):
    summary, per_row = model_randomization(InputSimilarity(offset=1.0), ctx, np.arange(12), np.arange(40))
    assert summary.mean == pytest.approx(1.0, abs=1e-12) and summary.n == 12
    np.testing.assert_allclose(per_row, 1.0, atol=1e-12)


def test_grad_dot_depends_on_the_trained_parameters(ctx):
    summary, per_row = model_randomization(make_estimator("grad-dot"), ctx, np.arange(12), np.arange(40))
    assert summary.mean < 0.9 and summary.ci_high < 0.95, summary
    assert per_row.shape == (12,) and np.all(per_row < 1.0)
