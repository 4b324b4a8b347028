"""`trak`: TRAK (Park et al. 2023) as an influence function on projected gradients.

With a random projection Π (P × k, Gaussian N(0, 1/k) or Rademacher ±1/√k entries, generated in
row chunks from `seed` so that memory stays bounded) and φ = Πᵀ∇m the projected gradient of the
model-output function m (margin log p_y/(1 − p_y), or the output for regression):

    score[j, i] = (Πᵀ∇f(z_j))ᵀ (ΦᵀΦ/n + λI)⁻¹ (Πᵀ∇ℓ(z_i)),    Φ = rows φ(z_1…z_n) of the training set

Since ∇ℓ = −(1 − p_i)∇m for cross-entropy, the train side is TRAK's φ_i weighted by the out-to-loss
factor Q_i = 1 − p_i (with the sign of the loss), and ΦᵀΦ/n is the (unweighted) Gauss–Newton matrix
of the projected features; for target = loss the score is TRAK's τ(z_j, z_i) times the positive
factor (1 − p_j)/n. λ = damping × λ_F + l2, λ_F = the mean eigenvalue of ΦᵀΦ/n (the mean squared
entry of the features), l2 the risk's regulariser (as in the influence functions; the `trak-traker`
adapter uses the same λ). With `n_models` > 1 the scores of final models trained from other seeds
(task.ensemble) are averaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tdabench.estimators.damped import check_positive_int, is_real
from tdabench.estimators.inner_product import InnerProductEstimator
from tdabench.registry import register_estimator
from tdabench.task.context import TaskContext
from tdabench.task.ensemble import member_context


PROJECTION_CHUNK = 1024  # rows of Π drawn per generator: memory is PROJECTION_CHUNK × k per step


@dataclass(frozen=True)
class RandomProjection:
    """x (n, P) ↦ x Π (n, k). Rows c·1024 … (c+1)·1024 − 1 of Π are drawn from a generator seeded
    with (seed, c), so Π never has to be held whole and does not depend on any batch size."""

    dim: int
    proj_dim: int
    kind: str = "gaussian"
    seed: int = 0

    def chunk(self, c: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Rows c·PROJECTION_CHUNK … of Π, shape (≤ PROJECTION_CHUNK, k)."""
        rows = min(PROJECTION_CHUNK, self.dim - c * PROJECTION_CHUNK)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + c)
        if self.kind == "gaussian":
            values = torch.randn(rows, self.proj_dim, generator=generator, dtype=dtype)
        else:
            values = torch.randint(0, 2, (rows, self.proj_dim), generator=generator).to(dtype) * 2 - 1
        return values / self.proj_dim ** 0.5

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(x), self.proj_dim, dtype=x.dtype)
        for c, lo in enumerate(range(0, self.dim, PROJECTION_CHUNK)):
            out += x[:, lo:lo + PROJECTION_CHUNK] @ self.chunk(c, x.dtype)
        return out


@register_estimator("trak")
class Trak(InnerProductEstimator):
    """TRAK; see the module docstring. proj_dim: k; projection: "gaussian" or "rademacher"."""

    def __init__(self, *, proj_dim: int = 2048, projection: str = "gaussian", seed: int = 0,
                 damping: float = 1.0, n_models: int = 1, batch_size: int = 256) -> None:
        self.proj_dim = proj_dim
        self.projection = projection
        self.seed = seed
        self.damping = damping
        self.n_models = n_models
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        super()._validate_params()
        check_positive_int(self, "proj_dim", "n_models")
        self._check_param(self.projection in ("gaussian", "rademacher"), "projection", "'gaussian' or 'rademacher'")
        self._check_param(isinstance(self.seed, int), "seed", "an integer")
        self._check_param(is_real(self.damping) and self.damping >= 0, "damping", "a finite number >= 0")

    def _fit_representations(self, context: TaskContext) -> None:
        self.projector_ = RandomProjection(context.n_params, self.proj_dim, self.projection, self.seed)
        self.members_, self.factors_, self.dampings_ = [], [], []
        everyone = np.arange(len(context.train))
        for m in range(self.n_models):
            member = member_context(context, m)
            features = self._projected(member, member.train, everyone, "output")
            kernel = features.T @ features / len(features)
            damping = self.damping * float(kernel.diagonal().mean()) + context.l2
            kernel.diagonal().add_(damping)
            self.members_.append(member)
            self.factors_.append(torch.linalg.cholesky(kernel))
            self.dampings_.append(damping)

    def _projected(self, member: TaskContext, split, idx: np.ndarray, fn: str) -> torch.Tensor:
        """Projected per-sample gradients (len(idx), k) at the member's final model, in batches."""
        out = torch.empty(len(idx), self.proj_dim, dtype=torch.float64)
        for lo in range(0, len(idx), self.batch_size):
            grads = self._grads(member, split, idx[lo:lo + self.batch_size], fn, member.params)
            out[lo:lo + self.batch_size] = self.projector_(grads).double()
        return out

    def _score(self, test_idx: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
        total = torch.zeros(len(test_idx), len(train_idx), dtype=torch.float64)
        for member, factor in zip(self.members_, self.factors_):
            test = self._projected(member, member.test, test_idx, "target")
            train = self._projected(member, member.train, train_idx, "loss")
            total += torch.cholesky_solve(test.T, factor).T @ train.T
        return (total / len(self.members_)).numpy()

    def describe(self) -> dict[str, Any]:
        self._fitted_context()
        return {"proj_dim": self.proj_dim, "projection": self.projection, "n_models": self.n_models,
                "damping": self.dampings_}
