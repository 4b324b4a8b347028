"""`if-arnoldi`: influence through the top eigenpairs of the curvature (Schioppa et al. 2022).

The Arnoldi iteration on a symmetric matrix is the Lanczos iteration; with full
re-orthogonalisation it gives an orthonormal Krylov basis Q (P, m) and a tridiagonal T = QᵀCQ whose
eigenpairs (θ_k, s_k) give Ritz pairs (θ_k, u_k = Q s_k) of C. Keeping the `rank` Ritz pairs of
largest |θ_k|:

    score[j, i] = Σ_k (u_kᵀ∇f(z_j)) (u_kᵀ∇ℓ(z_i)) / (θ_k + λ)

i.e. the influence function restricted to the top eigenspace of C. With rank = m = P (and a start
vector with a component in every eigenspace that the gradients touch) it equals `if-explicit`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tdabench.errors import TdabenchError
from tdabench.estimators.curvature import CurvatureOperator, seeded_normal
from tdabench.estimators.base import is_seed
from tdabench.estimators.damped import DEFAULT_DAMPING, DEFAULT_DAMPING_RELATIVE, DAMPING_SEARCH_SPACE, DampedInfluence, check_positive_int
from tdabench.registry import register_estimator
from tdabench.task.context import TaskContext


def lanczos(operator: CurvatureOperator, n_iterations: int, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    """Ritz values (m,) (numpy, host) and Ritz vectors (m, P) (on the operator's device) of the
    operator from m <= n_iterations Lanczos steps.

    Stops early when the Krylov space becomes invariant (the next residual vanishes). α and β stay
    on the device; each step reads one boolean (the stopping test) to the host, which it needs to
    decide whether to take the next step. The m × m tridiagonal eigenproblem is solved on the host.
    """
    q = seeded_normal((operator.dim,), seed, operator.context.device)
    basis = [q / q.norm()]
    alphas, betas = [], []
    for _ in range(min(n_iterations, operator.dim)):
        w = operator.matvec(basis[-1][None])[0]
        alphas.append(basis[-1] @ w)
        stacked = torch.stack(basis)
        for _ in range(2):  # full re-orthogonalisation, twice for stability
            w = w - stacked.T @ (stacked @ w)
        beta = w.norm()
        if len(basis) == operator.dim or bool(beta <= 1e-10 * torch.stack(alphas).abs().max()):
            break
        betas.append(beta)
        basis.append(w / beta)
    stacked = torch.stack(basis[: len(alphas)])
    alpha = torch.stack(alphas).cpu().numpy()
    beta = torch.stack(betas[: len(alphas) - 1]).cpu().numpy() if len(alphas) > 1 else np.zeros(0)
    values, vectors = np.linalg.eigh(np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1))
    return values, torch.from_numpy(vectors).to(stacked.device).T @ stacked


@register_estimator("if-arnoldi")
class ArnoldiInfluence(DampedInfluence):
    """Influence function on the top-`rank` eigenspace of C, by `n_iterations` Lanczos steps.

    seed: the random start vector. The damping λ is added to the kept eigenvalues; a kept
    eigenvalue θ_k with θ_k + λ <= 0 is refused (increase the damping or use gauss-newton).
    """
    family = "influence function"
    search_space = {**DAMPING_SEARCH_SPACE, "rank": (10, 50)}
    uses = "final-model"
    summary = "Influence function restricted to the top eigenspace of the curvature (Lanczos/Arnoldi)."
    citation = "Schioppa et al., Scaling Up Influence Functions, AAAI 2022"

    def __init__(self, *, curvature: str = "hessian", damping: float = DEFAULT_DAMPING,
                 damping_relative: bool | str = DEFAULT_DAMPING_RELATIVE, rank: int = 50, n_iterations: int = 100, seed: int = 0,
                 batch_size: int = 256) -> None:
        self.curvature = curvature
        self.damping = damping
        self.damping_relative = damping_relative
        self.rank = rank
        self.n_iterations = n_iterations
        self.seed = seed
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        super()._validate_params()
        check_positive_int(self, "rank", "n_iterations")
        self._check_param(self.rank <= self.n_iterations, "rank", f"at most n_iterations={self.n_iterations}")
        self._check_param(is_seed(self.seed), "seed", "an integer >= 0")

    def _fit_representations(self, context: TaskContext) -> None:
        self._fit_damping(context)
        values, vectors = lanczos(self._operator(context, damping=0.0), self.n_iterations, self.seed)
        keep = np.argsort(-np.abs(values))[: self.rank]
        self.eigenvalues_, self.eigenvectors_ = values[keep], vectors[keep]
        shifted = self.eigenvalues_ + self.damping_
        if (shifted <= 0).any():
            raise TdabenchError(f"if-arnoldi: a kept eigenvalue plus the damping is {shifted.min():.3g} <= 0; "
                                "increase the damping or use curvature=gauss-newton")
        self.inverse_ = torch.from_numpy(1.0 / shifted).to(context.device)

    def _train_representation(self, grads: torch.Tensor) -> torch.Tensor:
        return grads.double() @ self.eigenvectors_.T

    def _test_representation(self, grads: torch.Tensor) -> torch.Tensor:
        return grads.double() @ self.eigenvectors_.T

    def _transform(self, reps: torch.Tensor) -> torch.Tensor:
        return reps * self.inverse_

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"rank": int(len(self.eigenvalues_)),
                                     "eigenvalue_range": [float(np.abs(self.eigenvalues_).min()),
                                                          float(np.abs(self.eigenvalues_).max())]}
