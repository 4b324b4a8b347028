"""The base of every influence-function estimator: a curvature choice and a damping.

    score[j, i] = ∇f(z_j)ᵀ (C + λI)⁻¹ ∇ℓ(z_i),   C = Hessian or Gauss–Newton matrix of the risk

With `damping_relative`, λ = damping × λ_G, where λ_G is the mean squared entry of the per-sample
training gradients at θᶠ (docs/method.md, the unified view); otherwise λ = damping. All influence estimators share the
default 1e4·λ_G, chosen on the validation split of breast-cancer-mlp for `if-explicit`
(benchmarks/validation_sweep.py), so that they differ only in how they apply the inverse.
"""

from __future__ import annotations

import math
from typing import Any

from tdabench.estimators.base import is_positive_int
from tdabench.estimators.curvature import CURVATURES, CurvatureOperator
from tdabench.estimators.gradients import training_lambda_g
from tdabench.estimators.inner_product import InnerProductEstimator
from tdabench.task.context import TaskContext

DEFAULT_DAMPING = 1e4
# The tuned track's damping candidates, relative to λ_G (× λ_G with `damping_relative`, the default):
# the literature's 0.1–100 × λ_G and two decades either side (tdabench.tuning).
RELATIVE_DAMPING_GRID = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)


def is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class DampedInfluence(InnerProductEstimator):
    """Parameters `curvature`, `damping`, `damping_relative`, `batch_size`; subclasses add theirs
    (and repeat these in their own `__init__`, which `get_params` reads). The tuned track sweeps
    `damping` over RELATIVE_DAMPING_GRID."""

    search_space = {"damping": RELATIVE_DAMPING_GRID}

    def __init__(self, *, curvature: str = "hessian", damping: float = DEFAULT_DAMPING,
                 damping_relative: bool = True, batch_size: int = 256) -> None:
        self.curvature = curvature
        self.damping = damping
        self.damping_relative = damping_relative
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        super()._validate_params()
        self._check_param(self.curvature in CURVATURES, "curvature", "'hessian' or 'gauss-newton'")
        check_damping(self)

    def _fit_damping(self, context: TaskContext) -> None:
        """Set `lambda_g_` (None unless relative) and the absolute damping `damping_`."""
        self.lambda_g_ = None
        if self.damping_relative:
            self.lambda_g_ = training_lambda_g(context, self.batch_size)
        self.damping_ = float(self.damping) * (self.lambda_g_ if self.damping_relative else 1.0)

    def _operator(self, context: TaskContext, damping: float | None = None) -> CurvatureOperator:
        """(C + λI) as a matrix-free operator; λ = `damping_` unless given."""
        return CurvatureOperator(context, self.curvature, self.damping_ if damping is None else damping,
                                 self.batch_size)

    def describe(self) -> dict[str, Any]:
        self._fitted_context()
        return {"curvature": self.curvature, "damping": self.damping_, "lambda_g": self.lambda_g_}


def check_positive_int(estimator: InnerProductEstimator, *names: str) -> None:
    for name in names:
        estimator._check_param(is_positive_int(getattr(estimator, name)), name, "a positive integer")


def check_damping(estimator: InnerProductEstimator) -> None:
    """damping: a finite number >= 0; damping_relative: true or false (every damped estimator)."""
    estimator._check_param(is_real(estimator.damping) and estimator.damping >= 0, "damping", "a finite number >= 0")
    estimator._check_param(isinstance(estimator.damping_relative, bool), "damping_relative", "true or false")
