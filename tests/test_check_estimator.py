"""The estimator contract on every registered estimator, one test per (estimator, check), and
check_estimator catching deliberately broken estimators."""

from __future__ import annotations

import functools
import importlib.metadata
import re
from typing import Any, Callable

import numpy as np
import pytest
import torch

from tdabench import testing
from tdabench.estimators import ADAPTERS, GradDot
from tdabench.estimators.base import Estimator
from tdabench.registry import estimator_names, get_estimator, make_estimator
from tdabench.testing import CHECKS, check_estimator, estimator_checks, planted_duplicate_context

NAMES = estimator_names()  # built-ins, adapters and any installed plugin
CHECK_NAMES = [check.__name__ for check in CHECKS]

# Parameters for the contract test where a default would be slow on the planted-duplicate context
# (40 training points, 8 test points, 12 parameters); every other estimator runs with its defaults.
# None is needed today: every registered estimator checks in well under 2 s with its defaults.
FAST_PARAMS: dict[str, dict[str, Any]] = {}


def _missing_library(name: str) -> str | None:
    library = get_estimator(name).adapter_of
    if library is None:
        return None
    try:
        importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return f"{name} needs the package {library}, which is not installed"
    return None


@functools.cache
def _checks(name: str) -> dict[str, Callable[[], None]]:
    """The checks of estimator `name`, sharing one set of fits across this module's tests."""
    return dict(estimator_checks(make_estimator(name, **FAST_PARAMS.get(name, {}))))


@pytest.mark.parametrize("name, check", [(n, c) for n in NAMES for c in CHECK_NAMES],
                         ids=[f"{n}-{c}" for n in NAMES for c in CHECK_NAMES])
def test_contract(name, check):
    missing = _missing_library(name)
    if missing:
        pytest.skip(missing)
    _checks(name)[check]()


def test_every_registered_estimator_is_checked():
    native = {"grad-dot", "grad-cos", "tracin", "if-explicit", "if-cg", "if-lissa", "if-lissa-horizon",
              "if-arnoldi", "kfac", "ekfac", "datainf", "trak"}
    assert native | set(ADAPTERS) <= set(NAMES)
    assert set(FAST_PARAMS) <= set(NAMES), "fast parameters for an estimator that is not registered"


def test_checks_are_named_functions_of_the_module():
    assert CHECK_NAMES == ["check_params_round_trip", "check_score_before_fit", "check_shape_and_dtype",
                           "check_finite", "check_row_column_order", "check_deterministic",
                           "check_score_horizons", "check_describe_json", "check_declares_input",
                           "check_planted_duplicate_sign"]
    assert all(getattr(testing, name) is check for name, check in zip(CHECK_NAMES, CHECKS))
    assert [name for name, _ in estimator_checks(GradDot())] == CHECK_NAMES
    testing.check_finite(GradDot())  # each check also runs on its own


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
    uses = "final-model"
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


class SortsAndFlips(GradDot):
    def _score(self, test_idx, train_idx):
        return -super()._score(np.sort(test_idx), np.sort(train_idx))


class FitFails(GradDot):
    def _fit(self, context):
        raise RuntimeError("boom")


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


def test_every_failed_check_is_reported_by_name():
    with pytest.raises(AssertionError) as info:
        check_estimator(SortsAndFlips())
    message = str(info.value)
    assert message.startswith("SortsAndFlips(batch_size=256) fails 2 of 10 checks:\n")
    assert re.search(r"^  check_row_column_order: .*rows must follow test_idx, columns train_idx$", message, re.M)
    assert re.search(r"^  check_planted_duplicate_sign: sign: .* <= 0", message, re.M)


def test_an_exception_fails_every_check_that_needs_a_fit():
    with pytest.raises(AssertionError) as info:
        check_estimator(FitFails())
    failed = re.findall(r"^  (check_\w+): raised RuntimeError: boom$", str(info.value), re.M)
    assert failed == [n for n in CHECK_NAMES if n not in ("check_params_round_trip", "check_score_before_fit")]
