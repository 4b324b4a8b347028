"""`check_estimator`: the estimator contract as assertions (like scikit-learn's check_estimator).

Use it in a plugin's test suite::

    from tdabench.testing import check_estimator
    def test_contract():
        check_estimator(MyEstimator())

`check_estimator` runs every check of `CHECKS` and raises one AssertionError that names each failed
check with its message. `estimator_checks(estimator)` gives the checks as (name, callable) pairs, to
run (and report) one by one, e.g. in a parametrised test; each check is also a function of this
module, `check_finite(estimator)`. The checks of one estimator share its fits (`Fits`): one on the
given context and one on the planted-duplicate context (`check_deterministic` fits two more).
Nothing is written to disk: the small contexts built here are trained in memory.
"""

from __future__ import annotations

import functools
import json
import textwrap
from typing import Callable, Iterator

import numpy as np
import torch

from tdabench.errors import TdabenchError
from tdabench.estimators.base import Estimator, clone
from tdabench.estimators.inputs import INPUTS, input_error
from tdabench.task.context import TaskContext
from tdabench.task.data import Dataset, Split
from tdabench.task.models import build_model
from tdabench.task.objective import per_example_loss
from tdabench.task.targets import make_target
from tdabench.task.spec import TaskSpec
from tdabench.task.spec_yaml import parse_spec
from tdabench.task.training import evaluate, train_module

PLANTED_SPEC = {
    "name": "check-estimator-planted", "version": 1, "modality": "tabular",
    "description": "Synthetic two-class blobs; training instance 0 is an exact copy of test point 0.",
    "data": {"source": "synthetic:planted-duplicate", "standardize": False},
    "model": {"kind": "mlp", "hidden": []},
    "objective": {"loss": "cross-entropy", "l2": 0.01},
    "training": {"optimizer": "sgd", "lr": 0.1, "batch_size": 8, "epochs": 10, "seed": 0},
    "gold_standard": {}, "target": "loss", "dtype": "float64",
}


def context_from_splits(spec: TaskSpec, train: Split, test: Split, n_outputs: int) -> TaskContext:
    """Train `spec`'s model on the given splits (in memory, no cache) and assemble a TaskContext."""
    model = build_model(spec.model, int(train.x.shape[1]), n_outputs, getattr(torch, spec.dtype))
    train_module(model, train, spec.objective, spec.training)
    data = Dataset(train, test, n_outputs, spec.objective.loss == "cross-entropy")
    metrics = {"train": evaluate(model, train, spec.objective), "test": evaluate(model, test, spec.objective)}
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    return TaskContext(spec, model, params, buffers, data, metrics, spec.target,
                       make_target(spec.target, spec.objective), per_example_loss(spec.objective))


@functools.lru_cache(maxsize=1)
def planted_duplicate_context(n_train: int = 40, n_test: int = 8, seed: int = 0) -> TaskContext:
    """Logistic regression on 2 blobs in 4 features plus a 5th feature that is 0 everywhere except
    at the planted point x = (0, 0, 0, 0, 3), y = 1: test point 0, copied as training instance 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n_train + n_test - 2)  # the planted point completes both splits
    x = np.zeros((len(y), 5))
    x[:, :4] = rng.normal(size=(len(y), 4)) * 0.5
    x[:, 0] += np.where(y == 1, 1.5, -1.5)
    planted_x, planted_y = np.array([[0.0, 0.0, 0.0, 0.0, 3.0]]), np.array([1])
    train_x, train_y = np.vstack([planted_x, x[: n_train - 1]]), np.concatenate([planted_y, y[: n_train - 1]])
    test_x, test_y = np.vstack([planted_x, x[n_train - 1:]]), np.concatenate([planted_y, y[n_train - 1:]])
    to_split = lambda a, b: Split(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.long))
    return context_from_splits(parse_spec(PLANTED_SPEC, "<planted duplicate>"), to_split(train_x, train_y),
                               to_split(test_x, test_y), 2)


class Fits:
    """The fits that the checks of one estimator share: `fitted()` on `context` (default: the
    planted-duplicate context) and `planted()` on the planted-duplicate context (the same fit when
    `context` is that one). Each is fitted on first use, from a clone; a failed fit is remembered and
    raised again by every check that needs it."""

    def __init__(self, estimator: Estimator, context: TaskContext | None = None) -> None:
        self.estimator = estimator
        self.context = planted_duplicate_context() if context is None else context
        self._fits: dict[str, tuple[Estimator | None, BaseException | None]] = {}

    def fitted(self) -> Estimator:
        return self._fit("context", self.context)

    def planted(self) -> Estimator:
        planted = planted_duplicate_context()
        return self._fit("context" if planted is self.context else "planted", planted)

    def _fit(self, key: str, context: TaskContext) -> Estimator:
        if key not in self._fits:
            try:
                self._fits[key] = (clone(self.estimator).fit(context), None)
            except Exception as err:
                self._fits[key] = (None, err)
        fitted, err = self._fits[key]
        if err is not None:
            raise err
        return fitted  # type: ignore[return-value]


def _fits(estimator: Estimator, context: TaskContext | None, fits: Fits | None) -> Fits:
    return Fits(estimator, context) if fits is None else fits


def check_params_round_trip(estimator: Estimator, context: TaskContext | None = None, *,
                            fits: Fits | None = None) -> None:
    """get_params round trip: rebuilding from the params, and set_params(**get_params()), change nothing."""
    params = estimator.get_params()
    rebuilt = type(estimator)(**estimator.get_params(deep=False)).get_params()
    assert repr(rebuilt) == repr(params), (
        f"{type(estimator).__name__}(**get_params()) has other params: {rebuilt} != {params}; "
        "__init__ must store its arguments unchanged")
    assert estimator.set_params(**params) is estimator, "set_params must return self"
    assert repr(estimator.get_params()) == repr(params), "set_params(**get_params()) changed the params"


def check_score_before_fit(estimator: Estimator, context: TaskContext | None = None, *,
                           fits: Fits | None = None) -> None:
    """score on an unfitted clone raises TdabenchError."""
    try:
        clone(estimator).score(np.array([0]), np.array([0]))
    except TdabenchError:
        return
    except Exception as err:
        raise AssertionError(f"score before fit must raise TdabenchError, raised {err!r}") from err
    raise AssertionError("score before fit must raise TdabenchError, it returned scores")


def _index_sets(n_test: int, n_train: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    unsorted = lambda n: rng.permutation(n)[: min(n, 5)][::-1].copy()
    return [(np.arange(n_test), np.arange(n_train)), (unsorted(n_test), unsorted(n_train)),
            (np.array([n_test - 1]), np.array([n_train // 2]))]


def _where(test_idx: np.ndarray, train_idx: np.ndarray) -> str:
    return f"score(test_idx={test_idx.tolist()}, train_idx={train_idx.tolist()})"


def check_shape_and_dtype(estimator: Estimator, context: TaskContext | None = None, *,
                          fits: Fits | None = None) -> None:
    """A numpy array of shape (n_test, n_train) and dtype float64, for sorted, unsorted and single indices."""
    fits = _fits(estimator, context, fits)
    fitted = fits.fitted()
    for test_idx, train_idx in _index_sets(len(fits.context.test), len(fits.context.train)):
        scores, where = fitted.score(test_idx, train_idx), _where(test_idx, train_idx)
        assert isinstance(scores, np.ndarray), f"{where} returned {type(scores).__name__}, not a numpy array"
        expected = (len(test_idx), len(train_idx))
        assert scores.shape == expected, f"{where} has shape {scores.shape}, expected {expected}"
        assert scores.dtype == np.float64, f"{where} has dtype {scores.dtype}, expected float64"


def check_finite(estimator: Estimator, context: TaskContext | None = None, *, fits: Fits | None = None) -> None:
    """No NaN or infinite score, for sorted, unsorted and single indices."""
    fits = _fits(estimator, context, fits)
    fitted = fits.fitted()
    for test_idx, train_idx in _index_sets(len(fits.context.test), len(fits.context.train)):
        scores = np.asarray(fitted.score(test_idx, train_idx), dtype=np.float64)
        assert np.isfinite(scores).all(), (f"{_where(test_idx, train_idx)} has "
                                           f"{np.size(scores) - np.isfinite(scores).sum()} non-finite values")


def _tolerance(context: TaskContext) -> float:
    return 1e-7 if context.dtype == torch.float64 else 1e-3


def check_row_column_order(estimator: Estimator, context: TaskContext | None = None, *,
                           fits: Fits | None = None) -> None:
    """Rows follow test_idx and columns follow train_idx: a permuted call gives the permuted matrix."""
    fits = _fits(estimator, context, fits)
    fitted, context = fits.fitted(), fits.context
    n_test, n_train = len(context.test), len(context.train)
    full = fitted.score(np.arange(n_test), np.arange(n_train))
    rng = np.random.default_rng(1)
    test_idx, train_idx = rng.permutation(n_test), rng.permutation(n_train)
    permuted = fitted.score(test_idx, train_idx)
    tol = _tolerance(context)
    ok = permuted.shape == (n_test, n_train) and np.allclose(
        permuted, full[np.ix_(test_idx, train_idx)], rtol=tol, atol=tol * max(np.abs(full).max(), 1e-300))
    assert ok, "scores on permuted indices are not the permuted scores: rows must follow test_idx, columns train_idx"


def check_deterministic(estimator: Estimator, context: TaskContext | None = None, *,
                        fits: Fits | None = None) -> None:
    """Two fits on the same context give identical scores (two fresh fits, not the shared one: what
    the other checks scored before does not enter)."""
    fits = _fits(estimator, context, fits)
    idx_test, idx_train = _index_sets(len(fits.context.test), len(fits.context.train))[1]
    first = clone(estimator).fit(fits.context).score(idx_test, idx_train)
    second = clone(estimator).fit(fits.context).score(idx_test, idx_train)
    assert np.array_equal(first, second), (
        f"not deterministic: two fits on the same context differ by up to {np.nanmax(np.abs(first - second)):.3g}; "
        "seed every random choice from the estimator's parameters")


def check_score_horizons(estimator: Estimator, context: TaskContext | None = None, *,
                         fits: Fits | None = None) -> None:
    """score_horizons has shape (n_steps, n_test, n_train) and finite values; equals score when not
    horizon_dependent."""
    fits = _fits(estimator, context, fits)
    fitted, context = fits.fitted(), fits.context
    test_idx, train_idx = _index_sets(len(context.test), len(context.train))[1]
    steps = [1, 3, 10]
    scores = fitted.score_horizons(test_idx, train_idx, steps)
    expected = (len(steps), len(test_idx), len(train_idx))
    assert scores.shape == expected, f"score_horizons has shape {scores.shape}, expected {expected}"
    assert np.isfinite(scores).all(), "score_horizons has non-finite values"
    if not fitted.horizon_dependent:
        tol = _tolerance(context)
        single = fitted.score(test_idx, train_idx)
        assert np.allclose(scores, single[None], rtol=tol, atol=tol * max(np.abs(single).max(), 1e-300)), (
            "score_horizons differs from score although horizon_dependent is False")


def check_describe_json(estimator: Estimator, context: TaskContext | None = None, *,
                        fits: Fits | None = None) -> None:
    """describe() of a fitted estimator is a JSON-serialisable dict."""
    described = _fits(estimator, context, fits).fitted().describe()
    assert isinstance(described, dict), f"describe() must return a dict, got {type(described).__name__}"
    try:
        json.dumps(described)
    except (TypeError, ValueError) as err:
        raise AssertionError(f"describe() is not JSON-serialisable: {err}") from err


def check_planted_duplicate_sign(estimator: Estimator, context: TaskContext | None = None, *,
                                 fits: Fits | None = None, top: int = 3) -> None:
    """On the planted-duplicate context (whatever `context` is), training instance 0 is a copy of test
    point 0: score[0, 0] > 0 and among the `top` largest of row 0."""
    fitted = _fits(estimator, context, fits).planted()
    row = fitted.score(np.array([0]), np.arange(len(fitted.context_.train)))[0]
    assert row[0] > 0, (
        f"sign: the exact duplicate of the test point scores {row[0]:.3g} <= 0; a positive score must mean "
        "that removing the training instance increases the target (test loss)")
    rank = int((row > row[0]).sum())
    assert rank < top, (f"sign: the exact duplicate of the test point ranks {rank + 1} of {len(row)} "
                        f"(score {row[0]:.3g}, largest {row.max():.3g}); expected it among the top {top}")


def check_declares_input(estimator: Estimator, context: TaskContext | None = None, *,
                         fits: Fits | None = None) -> None:
    """The class declares `uses` (one of `inputs.INPUTS`), and a fit's `fitted_input()` is one of them."""
    message = input_error(getattr(type(estimator), "uses", None), type(estimator).__name__)
    assert message is None, message
    used = _fits(estimator, context, fits).fitted().fitted_input()
    assert input_error(used, "") is None, f"fitted_input() must return one of {', '.join(INPUTS)}, got {used!r}"


Check = Callable[..., None]

# Every check, in the order check_estimator runs them; each takes (estimator, context=None, *, fits=None).
CHECKS: tuple[Check, ...] = (check_params_round_trip, check_score_before_fit, check_shape_and_dtype, check_finite,
                             check_row_column_order, check_deterministic, check_score_horizons,
                             check_describe_json, check_declares_input, check_planted_duplicate_sign)


def estimator_checks(estimator: Estimator,
                     context: TaskContext | None = None) -> Iterator[tuple[str, Callable[[], None]]]:
    """(check name, check) for every check of `CHECKS`, each a callable without arguments that raises
    AssertionError when `estimator` fails it (like scikit-learn's `check_estimator(generate_only=True)`).
    The checks share one `Fits`, so the estimator is fitted once however many of them run."""
    fits = Fits(estimator, context)
    for check in CHECKS:
        yield check.__name__, functools.partial(check, estimator, fits=fits)


def check_estimator(estimator: Estimator, context: TaskContext | None = None) -> None:
    """Run every check (params, score before fit, shape and dtype, finite values, row and column
    order, determinism, horizons, describe, the declared input, the sign on a planted duplicate) and raise one
    AssertionError naming each failed check with its message.

    `context` is used for all checks but the sign check (default: the planted-duplicate context);
    the sign check always uses `planted_duplicate_context()`. A check that raises something other
    than AssertionError (a fit that fails, say) fails with that exception's type and message.
    """
    failures = []
    for name, check in estimator_checks(estimator, context):
        try:
            check()
        except AssertionError as err:
            failures.append((name, str(err) or "assertion failed"))
        except Exception as err:
            failures.append((name, f"raised {type(err).__name__}: {err}"))
    if failures:
        lines = [f"{name}: {textwrap.indent(message, '    ').lstrip()}" for name, message in failures]
        raise AssertionError(f"{estimator!r} fails {len(failures)} of {len(CHECKS)} checks:\n  "
                             + "\n  ".join(lines))
