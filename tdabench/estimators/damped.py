"""The base of every influence-function estimator: a curvature choice and a damping.

    score[j, i] = ∇f(z_j)ᵀ (C + λI)⁻¹ ∇ℓ(z_i),   C = Hessian or Gauss–Newton matrix of the risk

What `damping` is relative to is `damping_relative` (docs/method.md, the unified view):
- "lambda-max" (LAMBDA_MAX, the default): λ = damping × λ_max(G), the top eigenvalue of the Gauss–Newton
  matrix G of the risk at θᶠ (l2 included; power iteration, `curvature.top_eigenvalue`);
- true: λ = damping × λ_G, λ_G the mean squared entry of the per-sample training gradients at θᶠ (the
  mean eigenvalue of the empirical Fisher matrix; the tuned track's grid RELATIVE_DAMPING_GRID);
- false: λ = damping, absolute.
The default, damping = 1 × λ_max(G) (DEFAULT_DAMPING, DEFAULT_DAMPING_RELATIVE), shared by every damped
estimator (if-explicit, if-cg, if-lissa, if-arnoldi, kfac, ekfac) so that they differ only in how they
apply the inverse, was chosen on validation test points (those compare does not score) of
breast-cancer-logreg, diabetes-mlp, digits-mlp and breast-cancer-mlp (benchmarks/validation_sweep.py →
benchmarks/results/validation_sweep.json, rules compared by benchmarks/default_damping.py →
benchmarks/results/default_damping.json; mean over horizons of the validation Pearson). For if-explicit
it is within 0.003 of the best setting of the whole grid on each task (0.974, 0.979, 0.960; mean 0.971
against 0.955 for the old default 1e4·λ_G), where no constant relative to λ_G fits every task
(λ_max/λ_G is 53 on breast-cancer-logreg, 2,970 on diabetes-mlp, 17,500 on breast-cancer-mlp). Read as
a horizon (DESIGN.md §4: damping λ ≈ 1/(ηT)), it is the horizon at which ηT·λ_max = 1, where further
training starts to move along the top curvature direction. The old default (56.6 = 190·λ_max on
breast-cancer-logreg) swamped the curvature there, so every influence function scored like Grad-Dot.
The rule was chosen on tasks further-trained by SGD and does not carry over to AdamW: on rt-minilm the
tuned track picks 100–1e4·λ_G (LiSSA 0.95 at epoch 4 against 0.53 with this default; leaderboard/README.md).
"""

from __future__ import annotations

import math
from typing import Any

from tdabench.estimators.base import is_positive_int
from tdabench.estimators.curvature import CURVATURES, CurvatureOperator, top_eigenvalue
from tdabench.estimators.gradients import training_lambda_g
from tdabench.estimators.inner_product import InnerProductEstimator
from tdabench.task.context import TaskContext

LAMBDA_MAX = "lambda-max"  # damping_relative: λ = damping × λ_max(G)
DEFAULT_DAMPING = 1.0
DEFAULT_DAMPING_RELATIVE = LAMBDA_MAX
# The tuned track's damping candidates, relative to λ_G (damping_relative true): the literature's
# 0.1–100 × λ_G and two decades either side, then 1e5 (tdabench.tuning).
RELATIVE_DAMPING_GRID = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
DAMPING_SEARCH_SPACE = {"damping": RELATIVE_DAMPING_GRID, "damping_relative": (True,)}
POWER_ITERATIONS = 30  # power-iteration steps of λ_max(G)


def is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class DampedInfluence(InnerProductEstimator):
    """Parameters `curvature`, `damping`, `damping_relative` (see the module docstring), `batch_size`;
    subclasses add theirs (and repeat these in their own `__init__`, which `get_params` reads). The
    tuned track sweeps `damping` over RELATIVE_DAMPING_GRID × λ_G."""

    search_space = DAMPING_SEARCH_SPACE

    def __init__(self, *, curvature: str = "hessian", damping: float = DEFAULT_DAMPING,
                 damping_relative: bool | str = DEFAULT_DAMPING_RELATIVE, batch_size: int = 256) -> None:
        self.curvature = curvature
        self.damping = damping
        self.damping_relative = damping_relative
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        super()._validate_params()
        self._check_param(self.curvature in CURVATURES, "curvature", "'hessian' or 'gauss-newton'")
        check_damping(self, lambda_max=True)

    def _fit_damping(self, context: TaskContext) -> None:
        """Set `lambda_g_`, `lambda_max_` (each None unless it is the scale) and the absolute damping
        `damping_`."""
        self.lambda_g_, self.lambda_max_, self.damping_ = fit_damping(self, context)

    def _operator(self, context: TaskContext, damping: float | None = None) -> CurvatureOperator:
        """(C + λI) as a matrix-free operator; λ = `damping_` unless given."""
        return CurvatureOperator(context, self.curvature, self.damping_ if damping is None else damping,
                                 self.batch_size)

    def describe(self) -> dict[str, Any]:
        self._fitted_context()
        return {"curvature": self.curvature, "damping": self.damping_, "lambda_g": self.lambda_g_,
                "lambda_max": self.lambda_max_}


def check_positive_int(estimator: InnerProductEstimator, *names: str) -> None:
    for name in names:
        estimator._check_param(is_positive_int(getattr(estimator, name)), name, "a positive integer")


def check_damping(estimator: InnerProductEstimator, lambda_max: bool = False) -> None:
    """damping: a finite number >= 0; damping_relative: true or false, or LAMBDA_MAX where the
    estimator computes it (`lambda_max`; every damped estimator)."""
    estimator._check_param(is_real(estimator.damping) and estimator.damping >= 0, "damping", "a finite number >= 0")
    relative = estimator.damping_relative
    ok = isinstance(relative, bool) or (lambda_max and relative == LAMBDA_MAX)
    estimator._check_param(ok, "damping_relative", f"true, false or '{LAMBDA_MAX}'" if lambda_max else "true or false")


def fit_damping(estimator: Any, context: TaskContext) -> tuple[float | None, float | None, float]:
    """(λ_G or None, λ_max(G) or None, absolute damping) of an estimator with `damping`,
    `damping_relative` and `batch_size` (see the module docstring)."""
    relative = estimator.damping_relative
    if relative == LAMBDA_MAX:
        top = lambda_max(context, estimator.batch_size)
        return None, top, float(estimator.damping) * top
    lambda_g = training_lambda_g(context, estimator.batch_size) if relative else None
    return lambda_g, None, float(estimator.damping) * (lambda_g if relative else 1.0)


def lambda_max(context: TaskContext, batch_size: int = 256) -> float:
    """λ_max(G) of the training risk at θᶠ (l2 included), by POWER_ITERATIONS steps of power iteration
    from a fixed seed; memoised on the context per parameter values and batch size, so the damped
    estimators of one comparison (and the candidates of a sweep) pay for it once."""
    key = ("lambda_max", batch_size, POWER_ITERATIONS, context.params_state())
    if key not in context.memo:
        operator = CurvatureOperator(context, "gauss-newton", 0.0, batch_size)
        context.memo[key] = top_eigenvalue(operator, POWER_ITERATIONS)
    return context.memo[key]
