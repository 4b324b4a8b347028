"""Influence functions with an explicit curvature matrix (small models only).

Removing instance i from R(θ) = mean_j ℓ(z_j; θ) + (l2/2)||θ||² moves the optimum by
Δθ ≈ +(1/n) H⁻¹∇ℓ(z_i), so Δf(z) ≈ (1/n) ∇f(z)ᵀ H⁻¹ ∇ℓ(z_i): positive = removal increases the
target (tdabench sign). The score drops the positive factor 1/n and damps the curvature:

    score[j, i] = ∇f(z_j)ᵀ (C + λI)⁻¹ ∇ℓ(z_i),   C = H (Hessian of R) or G (Gauss–Newton matrix)

G = mean_i J_iᵀ ∇²_out ℓ_i J_i + l2·I (J_i: Jacobian of the outputs of example i). C is built in
float64 over the whole training set and factorised once in `fit` (LU for H, which may be
indefinite off the optimum; Cholesky for G + λI), so `score` costs two gradient passes and a solve.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import torch

from tdabench.errors import TdabenchError
from tdabench.estimators.base import is_positive_int
from tdabench.estimators.damped import DEFAULT_DAMPING, DampedInfluence
from tdabench.estimators.dense_curvature import curvature_matrix, gauss_newton_matrix, hessian_matrix
from tdabench.registry import register_estimator
from tdabench.task.context import TaskContext

__all__ = ["ExplicitInfluence", "factorize", "solve", "gauss_newton_matrix", "hessian_matrix"]


def factorize(matrix: torch.Tensor, positive_definite: bool | None) -> tuple[str, Any]:
    """Factorise a symmetric (P, P) float64 matrix in place (its storage is reused and destroyed).

    Cholesky when `positive_definite`; LU with partial pivoting (fine for indefinite matrices) when
    False; None tries Cholesky (half the work of LU) and falls back to LU when the matrix is not
    positive definite, after restoring the triangle the attempt overwrote. Uses scipy's LAPACK: on
    the 2-core test machine its LU ran twice as fast as torch.linalg's. A numerically singular
    matrix (reciprocal condition number below machine epsilon) is refused.
    """
    norm = _norm1(matrix)
    a = matrix.numpy().T  # F-contiguous view of the symmetric matrix: LAPACK works in place
    factor = None
    if positive_definite is not False:
        diagonal = a.diagonal().copy()
        potrf = scipy.linalg.get_lapack_funcs("potrf", (a,))
        _, info = potrf(a, lower=True, overwrite_a=True, clean=False)
        if info == 0:
            factor = "cholesky", (a, True)
            rcond, _ = scipy.linalg.get_lapack_funcs("pocon", (a,))(a, norm, uplo="L")
        elif positive_definite:
            raise TdabenchError("the damped Gauss-Newton matrix is not positive definite; increase the damping")
        else:
            _restore_lower(a, diagonal)
    if factor is None:
        factor = "lu", scipy.linalg.lu_factor(a, overwrite_a=True, check_finite=False)
        rcond, _ = scipy.linalg.get_lapack_funcs("gecon", (a,))(factor[1][0], norm, norm="1")
    if not rcond >= np.finfo(np.float64).eps:
        raise TdabenchError(f"the damped curvature matrix is numerically singular (reciprocal condition "
                            f"number {rcond:.1e}); increase the damping")
    return factor


def _restore_lower(a: np.ndarray, diagonal: np.ndarray, block: int = 1024) -> None:
    """Undo a failed in-place lower Cholesky: copy the (untouched) upper triangle onto the lower one
    and put the diagonal back, block by block (no full-size temporary)."""
    for lo in range(0, len(a), block):
        hi = min(lo + block, len(a))
        a[hi:, lo:hi] = a[lo:hi, hi:].T
        square = a[lo:hi, lo:hi]
        below = np.tril_indices(hi - lo, -1)
        square[below] = square.T[below]
    np.fill_diagonal(a, diagonal)


def _norm1(matrix: torch.Tensor, rows: int = 2048) -> float:
    """max_j Σ_i |A_ij| of a symmetric matrix, computed in row blocks (no full-size temporary)."""
    return max(float(matrix[lo:lo + rows].abs().sum(1).max()) for lo in range(0, len(matrix), rows))


def solve(factor: tuple[str, Any], rhs: np.ndarray) -> np.ndarray:
    """X = C⁻¹ rhs for a factorisation from `factorize`; rhs (P, k) → (P, k)."""
    kind, data = factor
    if kind == "cholesky":
        return scipy.linalg.cho_solve(data, rhs, check_finite=False)
    return scipy.linalg.lu_solve(data, rhs, check_finite=False)


@register_estimator("if-explicit")
class ExplicitInfluence(DampedInfluence):
    """score = ∇f(z)ᵀ (C + λI)⁻¹ ∇ℓ(z_i) with C explicit; see the module docstring.

    curvature: "hessian" or "gauss-newton". damping: λ, relative to λ_G (mean squared entry of the
    per-sample training gradients) when `damping_relative`. max_params: larger models are refused.

    Default damping 1e4·λ_G: chosen on the validation split of breast-cancer-mlp (test points that
    compare does not score; benchmarks/validation_sweep.py, 5 seeds). Mean cosine with the gold
    standard at 1 → 50 epochs: 1·λ_G 0.06 → 0.06, 1e2·λ_G 0.38 → 0.43, 1e4·λ_G 0.78 → 0.82 (Hessian
    and Gauss–Newton alike). λ_G is small on a well-fit model (λ_G = 3.7e-5 there, λ_max = 0.62), so
    the literature's 0.1–100·λ_G leaves the negative curvature of an SGD final model undamped.
    """

    def __init__(self, *, curvature: str = "hessian", damping: float = DEFAULT_DAMPING,
                 damping_relative: bool = True, max_params: int = 30000, batch_size: int = 256) -> None:
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
        matrix = curvature_matrix(context, self.curvature, self.batch_size)
        matrix.diagonal().add_(self.damping_)
        self.factor_ = factorize(matrix, positive_definite=True if self.curvature == "gauss-newton" else None)

    def _transform(self, reps: torch.Tensor) -> torch.Tensor:
        """Rows r ↦ (C + λI)⁻¹ r (C symmetric), in float64."""
        solved = solve(self.factor_, reps.double().T.numpy())
        return torch.from_numpy(np.ascontiguousarray(solved.T))
