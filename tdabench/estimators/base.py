"""The estimator contract, with scikit-learn conventions.

- ``__init__`` only stores its keyword arguments (no logic, no validation); `get_params` reads them
  back through the signature, `set_params` changes them.
- ``check_params()`` validates the parameter values (`make_estimator` calls it, so a bad value is
  refused before anything is trained; ``fit`` calls it again, since `set_params` may change them).
- ``fit(context)`` validates the parameters and stores fitted state in attributes ending in ``_``
  (at least ``context_``); it returns ``self``.
- ``score(test_idx, train_idx)`` returns a float64 array of shape ``(len(test_idx), len(train_idx))``:
  row j is ``context.test[test_idx[j]]``, column i is ``context.train[train_idx[i]]``.
  Sign: score > 0 means removing the training instance *increases* the target f(z_test; θ)
  (for target = test loss: the instance helps). The test side uses ``context.target``, the train side
  the training loss ``context.loss``.

Subclasses implement ``_validate_params()``, ``_fit(context)`` and ``_score(test_idx, train_idx)``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np

from tdabench.errors import TdabenchError
from tdabench.estimators.inputs import EstimatorInput

if TYPE_CHECKING:
    from tdabench.task.context import TaskContext


# Estimator families, in the order reports show them (`Estimator.family`): gradient similarities
# (no curvature), influence functions (a damped inverse curvature), Kronecker-factored and per-layer
# inverses, random projections of the gradients; "other" for a class that does not say.
FAMILIES = ("gradient similarity", "influence function", "per-layer curvature", "random projection", "other")


class Estimator:
    """Base class of all estimators; `name` is set by the registry.

    `adapter_of`: for an adapter, which computes its scores with another library, that library's
    distribution name (e.g. "captum"); None for an estimator computed by tdabench (or a plugin) itself.
    `family` (one of FAMILIES), `summary` (one line: what it computes) and `citation` (the paper that
    made the method known) describe the method on the leaderboard; a plugin may set them too.
    `uses` (one of `inputs.INPUTS`, required: the registry refuses a class without it) declares what
    the estimator reads besides the final model's data: the final model only, training checkpoints,
    the further-training recipe or retrained models.
    `search_space` (parameter → candidate values) is what the tuned track sweeps on validation test
    points (tdabench.tuning); {} = nothing to tune. A suite file may replace it per estimator.
    """

    name: ClassVar[str] = ""
    horizon_dependent: ClassVar[bool] = False
    adapter_of: ClassVar[str | None] = None
    family: ClassVar[str] = "other"
    summary: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    uses: ClassVar[EstimatorInput | None] = None
    search_space: ClassVar[dict[str, tuple]] = {}

    @classmethod
    def _param_names(cls) -> list[str]:
        """The keyword parameters of `__init__`, sorted."""
        if cls.__init__ is object.__init__:
            return []
        names = []
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}.__init__ must name its parameters (no *args, **kwargs)")
            names.append(p.name)
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameter name → value; with `deep`, nested estimators' parameters as 'outer__inner'."""
        out: dict[str, Any] = {}
        for key in self._param_names():
            value = getattr(self, key)
            out[key] = value
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update({f"{key}__{k}": v for k, v in value.get_params().items()})
        return out

    def set_params(self, **params: Any) -> Estimator:
        """Set parameters (nested ones as 'outer__inner'); unknown names raise TdabenchError."""
        valid = self._param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            head, _, sub = key.partition("__")
            if head not in valid:
                raise TdabenchError(f"{type(self).__name__} has no parameter '{key}'; "
                                    f"valid parameters: {', '.join(valid) or '(none)'}")
            if sub:
                nested.setdefault(head, {})[sub] = value
            else:
                setattr(self, head, value)
        for head, sub_params in nested.items():
            getattr(self, head).set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items())
        return f"{type(self).__name__}({args})"

    def check_params(self) -> Estimator:
        """Raise TdabenchError naming the first parameter whose value is invalid; return self."""
        self._validate_params()
        return self

    def fit(self, context: TaskContext) -> Estimator:
        """Validate the parameters, then compute whatever `score` needs from the context."""
        self.__dict__.pop("context_", None)  # a failed refit must not leave the old fit usable
        self.check_params()
        self._fit(context)
        self.context_ = context
        return self

    def score(self, test_idx: Sequence[int] | np.ndarray, train_idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """Scores of shape (len(test_idx), len(train_idx)), float64; sign as in the module docstring."""
        context = self._fitted_context()
        test_idx = as_index(test_idx, len(context.test), "test_idx")
        train_idx = as_index(train_idx, len(context.train), "train_idx")
        return np.asarray(self._score(test_idx, train_idx), dtype=np.float64)

    def score_horizons(self, test_idx: Sequence[int] | np.ndarray, train_idx: Sequence[int] | np.ndarray,
                       steps: Sequence[int]) -> np.ndarray:
        """Scores per horizon, shape (len(steps), n_test, n_train); `steps` counts further-training
        optimizer steps. Estimators that are not `horizon_dependent` give `score` at every horizon."""
        context = self._fitted_context()
        test_idx = as_index(test_idx, len(context.test), "test_idx")
        train_idx = as_index(train_idx, len(context.train), "train_idx")
        steps = list(steps)
        if not all(isinstance(s, (int, np.integer)) and s >= 0 for s in steps):
            raise TdabenchError(f"steps must be non-negative integers, got {steps!r}")
        return np.asarray(self._score_horizons(test_idx, train_idx, [int(s) for s in steps]), dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable settings actually used by the fit (e.g. absolute damping)."""
        return {}

    def fitted_input(self) -> EstimatorInput | None:
        """What this fit read (one of `inputs.INPUTS`): the class's `uses` unless a subclass knows
        the fit read less (TracIn without checkpoints: "final-model"). Requires a fit."""
        self._fitted_context()
        return self.uses

    def _validate_params(self) -> None:
        """Raise TdabenchError for a bad parameter value (called by `fit`)."""

    def _fit(self, context: TaskContext) -> None:
        """Compute the fitted state (attributes ending in '_'); `context_` is set after it returns."""

    def _score(self, test_idx: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement _score(test_idx, train_idx)")

    def _score_horizons(self, test_idx: np.ndarray, train_idx: np.ndarray, steps: list[int]) -> np.ndarray:
        """Scores per further-training horizon (steps), (len(steps), n_test, n_train). Override when
        `horizon_dependent`; the default repeats `_score`."""
        scores = np.asarray(self._score(test_idx, train_idx), dtype=np.float64)
        return np.broadcast_to(scores, (len(steps), *scores.shape)).copy()

    def _fitted_context(self) -> TaskContext:
        context = self.__dict__.get("context_")
        if context is None:
            raise TdabenchError(f"{type(self).__name__} is not fitted; call fit(context) first")
        return context

    def _check_param(self, ok: bool, name: str, expected: str) -> None:
        if not ok:
            label = type(self).__dict__.get("name") or type(self).__name__  # a subclass is not its parent
            raise TdabenchError(f"{label}: parameter '{name}' must be "
                                f"{expected}, got {getattr(self, name)!r}")


def clone(estimator: Estimator) -> Estimator:
    """A new, unfitted estimator with the same parameters."""
    return type(estimator)(**estimator.get_params(deep=False))


def is_positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def is_seed(value: Any) -> bool:
    """A random seed: an integer >= 0 (numpy's generators refuse negative ones)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0


def as_index(idx: Sequence[int] | np.ndarray, n: int, what: str) -> np.ndarray:
    """Validate a 1-D array of indices into a split of size n; returns int64 (order kept)."""
    arr = np.asarray(idx)
    if arr.ndim != 1:
        raise TdabenchError(f"{what} must be a 1-D array of indices, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TdabenchError(f"{what} must hold integer indices, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= n:
        raise TdabenchError(f"{what} out of range: indices must lie in [0, {n}), "
                            f"got min {arr.min()} and max {arr.max()}")
    return arr.astype(np.int64)
