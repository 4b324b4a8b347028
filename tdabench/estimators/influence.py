"""Influence functions with an explicit curvature matrix (small models only).

Removing instance i from R(θ) = mean_j ℓ(z_j; θ) + (l2/2)||θ||² moves the optimum by
Δθ ≈ +(1/n) H⁻¹∇ℓ(z_i), so Δf(z) ≈ (1/n) ∇f(z)ᵀ H⁻¹ ∇ℓ(z_i): positive = removal increases the
target (tdabench sign). The score drops the positive factor 1/n and damps the curvature:

    score[j, i] = ∇f(z_j)ᵀ (C + λI)⁻¹ ∇ℓ(z_i),   C = H (Hessian of R) or G (Gauss–Newton matrix)

G = mean_i J_iᵀ ∇²_out ℓ_i J_i + l2·I (J_i: Jacobian of the outputs of example i). C is built in
float64 over the whole training set and factorised once in `fit`, in place, with torch's LAPACK
(`factorization`: Cholesky for G + λI; for H + λI, which may be indefinite off the optimum,
Cholesky and, when that fails, LU of a rebuilt matrix), so `score` costs two gradient passes and a
solve. breast-cancer-mlp (P = 20,738) on 2 cores shared with other runs (load ~4, 2048² matmul at
75 GFLOP/s): `fit` 68 s, of which H 13 s (structured, `mlp_hessian`) and its Cholesky
factorisation 55 s (P³/3 = 3.0e12 flop, about the matmul rate: the factorisation dominates).
"""

from __future__ import annotations

import torch

from tdabench.errors import TdabenchError
from tdabench.estimators.base import is_positive_int
from tdabench.estimators.damped import DEFAULT_DAMPING, DEFAULT_DAMPING_RELATIVE, DampedInfluence
from tdabench.estimators.dense_curvature import curvature_matrix, gauss_newton_matrix, hessian_matrix
from tdabench.estimators.factorization import factorize
from tdabench.registry import register_estimator
from tdabench.task.context import TaskContext

__all__ = ["ExplicitInfluence", "gauss_newton_matrix", "hessian_matrix"]


@register_estimator("if-explicit")
class ExplicitInfluence(DampedInfluence):
    """score = ∇f(z)ᵀ (C + λI)⁻¹ ∇ℓ(z_i) with C explicit; see the module docstring.

    curvature: "hessian" or "gauss-newton". damping: λ, relative to what `damping_relative` says
    (tdabench.estimators.damped: "lambda-max", the default: × λ_max(G), the top eigenvalue of the
    Gauss–Newton matrix; true: × λ_G, the mean squared entry of the per-sample training gradients;
    false: absolute). max_params: larger models are refused.

    Default damping 1·λ_max(G), chosen on validation test points of several tasks (see `damped`).
    λ_G is small on a well-fit model (3.7e-5 on breast-cancer-mlp, where λ_max = 0.62), so the
    literature's 0.1–100·λ_G leaves the negative curvature of an SGD final model undamped; a
    constant relative to λ_G fits no two tasks (the best is 100·λ_G on breast-cancer-logreg,
    1e4·λ_G on diabetes-mlp).
    """
    family = "influence function"
    uses = "final-model"
    summary = "Influence function with the damped Hessian (or Gauss-Newton matrix) built and factorised."
    citation = "Koh & Liang, Understanding Black-box Predictions via Influence Functions, ICML 2017"

    def __init__(self, *, curvature: str = "hessian", damping: float = DEFAULT_DAMPING,
                 damping_relative: bool | str = DEFAULT_DAMPING_RELATIVE, max_params: int = 30000, batch_size: int = 256) -> None:
        self.curvature = curvature
        self.damping = damping
        self.damping_relative = damping_relative
        self.max_params = max_params
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        super()._validate_params()
        self._check_param(is_positive_int(self.max_params), "max_params", "a positive integer")

    def _fit_representations(self, context: TaskContext) -> None:
        n_params = context.n_params
        if n_params > self.max_params:
            raise TdabenchError(
                f"if-explicit: the model has {n_params} parameters, too many for the explicit "
                f"{n_params}×{n_params} curvature matrix ({n_params ** 2 * 8 / 1e9:.1f} GB; "
                f"max_params={self.max_params}); use an iterative estimator or raise max_params")
        self._fit_damping(context)
        self.factor_ = factorize(self._damped_matrix(context), rebuild=lambda: self._damped_matrix(context),
                                 positive_definite=True if self.curvature == "gauss-newton" else None)

    def _damped_matrix(self, context: TaskContext) -> torch.Tensor:
        """C + λI, a new (P, P) float64 tensor."""
        matrix = curvature_matrix(context, self.curvature, self.batch_size)
        matrix.diagonal().add_(self.damping_)
        return matrix

    def _transform(self, reps: torch.Tensor) -> torch.Tensor:
        """Rows r ↦ (C + λI)⁻¹ r (C symmetric), in float64."""
        return self.factor_.solve(reps.double().T).T.contiguous()
