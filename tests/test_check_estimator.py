"""check_estimator passes for the built-ins and catches deliberately broken estimators."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tdabench.estimators import GradDot
from tdabench.estimators.base import Estimator
from tdabench.registry import estimator_names, make_estimator
from tdabench.testing import check_estimator, planted_duplicate_context


@pytest.mark.parametrize("name", ["grad-dot", "grad-cos", "if-explicit"])
def test_builtins_pass(name):
    assert name in estimator_names()
    check_estimator(make_estimator(name))


def test_passes_on_a_given_context(tiny_mlp_context):
    check_estimator(make_estimator("if-explicit", curvature="gauss-newton", damping=0.1), tiny_mlp_context)


def test_planted_duplicate_context():
    ctx = planted_duplicate_context()
    assert torch.equal(ctx.train.x[0], ctx.test.x[0]) and ctx.train.y[0] == ctx.test.y[0]
    assert not any(torch.equal(ctx.train.x[0], x) for x in ctx.train.x[1:])
    assert ctx.dtype == torch.float64 and ctx.final_metrics["train"]["accuracy"] > 0.9


class WrongShape(GradDot):
    def _score(self, test_idx, train_idx):
        return super()._score(test_idx, train_idx).T


class NaNScores(GradDot):
    def _score(self, test_idx, train_idx):
        scores = super()._score(test_idx, train_idx)
        scores[0, 0] = np.nan
        return scores


class NonDeterministic(GradDot):
    def _fit(self, context):
        self.offset_ = np.random.default_rng().normal()

    def _score(self, test_idx, train_idx):
        return super()._score(test_idx, train_idx) + self.offset_


class FlippedSign(GradDot):
    def _score(self, test_idx, train_idx):
        return -super()._score(test_idx, train_idx)


class RanksDuplicateLast(GradDot):
    def _score(self, test_idx, train_idx):
        return 10.0 - super()._score(test_idx, train_idx)


class IgnoresOrder(GradDot):
    def _score(self, test_idx, train_idx):
        return super()._score(np.sort(test_idx), np.sort(train_idx))


class MangledParams(Estimator):
    def __init__(self, *, scale: float = 1.0) -> None:
        self.scale = float(scale) * 2

    def _score(self, test_idx, train_idx):
        return np.zeros((len(test_idx), len(train_idx)))


class FitsSilently(GradDot):
    def score(self, test_idx, train_idx):
        return np.zeros((len(test_idx), len(train_idx)))


class Float32Scores(GradDot):
    def score(self, test_idx, train_idx):
        return super().score(test_idx, train_idx).astype(np.float32)


@pytest.mark.parametrize("estimator, message", [
    (WrongShape(), r"has shape \(40, 8\), expected \(8, 40\)"),
    (NaNScores(), "1 non-finite values"),
    (NonDeterministic(), "not deterministic"),
    (FlippedSign(), "sign: the exact duplicate of the test point scores .* <= 0"),
    (RanksDuplicateLast(), "sign: the exact duplicate of the test point ranks 40 of 40"),
    (IgnoresOrder(), "rows must follow test_idx, columns train_idx"),
    (MangledParams(), "__init__ must store its arguments unchanged"),
    (FitsSilently(), "score before fit must raise TdabenchError"),
    (Float32Scores(), "dtype float32, expected float64"),
])
def test_broken_estimators_fail(estimator, message):
    with pytest.raises(AssertionError, match=message):
        check_estimator(estimator)
