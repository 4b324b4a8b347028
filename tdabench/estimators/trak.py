"""`trak`: TRAK (Park et al. 2023) as an influence function on projected gradients.

With a random projection Π (P × k, Gaussian N(0, 1/k) or Rademacher ±1/√k entries, drawn in row
chunks from `seed`; kept whole when it fits in 1 GiB, otherwise regenerated chunk by chunk so that
memory stays bounded) and φ = Πᵀ∇m the projected gradient of the
model-output function m (margin log p_y/(1 − p_y), or the output for regression):

    score[j, i] = (Πᵀ∇f(z_j))ᵀ (ΦᵀΦ/n + λI)⁻¹ (Πᵀ∇ℓ(z_i)),    Φ = rows φ(z_1…z_n) of the training set

Since ∇ℓ = −(1 − p_i)∇m for cross-entropy, the train side is TRAK's φ_i weighted by the out-to-loss
factor Q_i = 1 − p_i (with the sign of the loss; in general ∇ℓ = (dℓ/dm)∇m, `loss_slope`), and ΦᵀΦ/n is the (unweighted) Gauss–Newton matrix
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

from tdabench.errors import TdabenchError
from tdabench.estimators.base import is_seed
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

    def chunk(self, c: int, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
        """Rows c·PROJECTION_CHUNK … of Π, shape (≤ PROJECTION_CHUNK, k), on `device`. Rademacher
        signs come from random bytes, 8 signs per byte. Drawn on the CPU from a CPU generator, so Π
        is the same on every device (CUDA's generator draws others); Rademacher bytes are copied
        packed and unpacked on `device` (1/32 of the float32 matrix crosses the bus)."""
        rows = min(PROJECTION_CHUNK, self.dim - c * PROJECTION_CHUNK)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + c)
        if self.kind == "gaussian":
            values = torch.randn(rows, self.proj_dim, generator=generator, dtype=dtype, device="cpu").to(device)
        else:
            packed = torch.randint(0, 256, (rows, -(-self.proj_dim // 8)), generator=generator, dtype=torch.uint8,
                                   device="cpu").to(device)
            bits = (packed.unsqueeze(-1) >> torch.arange(8, dtype=torch.uint8, device=device)) & 1
            values = bits.reshape(rows, -1)[:, : self.proj_dim].to(dtype) * 2 - 1
        return values / self.proj_dim ** 0.5

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(len(x), self.proj_dim)
        for c, lo in enumerate(range(0, self.dim, PROJECTION_CHUNK)):
            out += x[:, lo:lo + PROJECTION_CHUNK] @ self.chunk(c, x.dtype, x.device)
        return out


class CachedProjection:
    """`RandomProjection` in `dtype`, with Π generated once and kept on `device` when it takes at
    most `max_bytes` (otherwise regenerated chunk by chunk on every call); returns float64."""

    def __init__(self, projection: RandomProjection, dtype: torch.dtype, max_bytes: int = 2**31,
                 device: torch.device | str = "cpu") -> None:
        self.projection, self.dtype = projection, dtype
        size = projection.dim * projection.proj_dim * torch.finfo(dtype).bits // 8
        self.matrix = None
        if size <= max_bytes:
            self.matrix = torch.empty(projection.dim, projection.proj_dim, dtype=dtype, device=device)
            for c, lo in enumerate(range(0, projection.dim, PROJECTION_CHUNK)):
                self.matrix[lo:lo + PROJECTION_CHUNK] = projection.chunk(c, dtype, device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        return (x @ self.matrix if self.matrix is not None else self.projection(x)).double()


@register_estimator("trak")
class Trak(InnerProductEstimator):
    """TRAK; see the module docstring. proj_dim: k; projection: "gaussian" or "rademacher";
    dtype: of the projection ("float32", as in traker, or "float64"); the kernel is solved in float64.

    Default damping 1e3·λ_F: chosen on the validation split of breast-cancer-mlp (5 seeds, k = 2048
    > n = 398, benchmarks/results/validation_sweep_zoo_breast-cancer-mlp.json). Mean Pearson with the
    gold standard at 1 → 50 epochs: 1·λ_F −0.11 → 0.12, 10·λ_F 0.22 → 0.60, 100·λ_F 0.73 → 0.80,
    1e3·λ_F 0.99 → 0.60, 1e4·λ_F 0.995 → 0.57 (Grad-Dot: 0.998 → 0.57). With little damping the
    inverse amplifies the projection's noise: two projection seeds then agree only at Pearson 0.6.
    """
    family = "random projection"
    search_space = {"proj_dim": (512, 2048), "damping": (10.0, 100.0, 1e3, 1e4)}
    uses = "final-model"
    summary = ("Randomly projected output gradients with the projected Gauss-Newton inverse, optionally over an "
                "ensemble.")
    citation = "Park et al., TRAK: Attributing Model Behavior at Scale, ICML 2023"

    def __init__(self, *, proj_dim: int = 2048, projection: str = "rademacher", seed: int = 0,
                 damping: float = 1e3, n_models: int = 1, dtype: str = "float32", batch_size: int = 256) -> None:
        self.proj_dim = proj_dim
        self.projection = projection
        self.seed = seed
        self.damping = damping
        self.n_models = n_models
        self.dtype = dtype
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        super()._validate_params()
        check_positive_int(self, "proj_dim", "n_models")
        self._check_param(self.projection in ("gaussian", "rademacher"), "projection", "'gaussian' or 'rademacher'")
        self._check_param(is_seed(self.seed), "seed", "an integer >= 0")
        self._check_param(is_real(self.damping) and self.damping >= 0, "damping", "a finite number >= 0")
        self._check_param(self.dtype in ("float32", "float64"), "dtype", "'float32' or 'float64'")

    def _fit_representations(self, context: TaskContext) -> None:
        projection = RandomProjection(context.n_params, self.proj_dim, self.projection, self.seed)
        self.projector_ = CachedProjection(projection, getattr(torch, self.dtype), device=context.device)
        self.members_ = [self._fit_member(member_context(context, m)) for m in range(self.n_models)]

    def _fit_member(self, member: TaskContext) -> dict[str, Any]:
        """Features Φ of the whole training set, loss slopes q (∇ℓ_i = q_i∇m_i, so the train side of
        the score is q_i φ_i), and the Cholesky factor of ΦᵀΦ/n + λI."""
        everyone = np.arange(len(member.train))
        features = self._projected(member, member.train, everyone, "output")
        n, k = features.shape
        damping = self.damping * float(features.pow(2).sum() / (n * k)) + member.l2  # λ_F = tr(ΦᵀΦ/n)/k
        if n < k and damping == 0:
            raise TdabenchError(f"trak: ΦᵀΦ is singular with proj_dim={k} > n={n}; use a positive damping")
        dual = n < k  # solve in the n-dimensional space: T(ΦᵀΦ/n + λI)⁻¹Φᵀ = n·TΦᵀ(ΦΦᵀ + nλI)⁻¹
        kernel = features @ features.T if dual else features.T @ features / n
        kernel.diagonal().add_(n * damping if dual else damping)
        slopes = member.loss_slope(member.params, member.train.x, member.train.y).double()
        return {"context": member, "features": features, "slopes": slopes, "damping": damping, "dual": dual,
                "factor": torch.linalg.cholesky(kernel)}

    @staticmethod
    def _weights(fitted: dict[str, Any], test: torch.Tensor) -> torch.Tensor:
        """W = T (ΦᵀΦ/n + λI)⁻¹ Φᵀ, (n_test, n): the score before the loss slopes, for every training
        example; primal (k × k) or dual (n × n) solve, whichever is smaller."""
        features, factor = fitted["features"], fitted["factor"]
        if fitted["dual"]:
            return len(features) * torch.cholesky_solve(features @ test.T, factor).T
        return torch.cholesky_solve(test.T, factor).T @ features.T

    def _projected(self, member: TaskContext, split, idx: np.ndarray, fn: str) -> torch.Tensor:
        """Projected per-sample gradients (len(idx), k), float64, at the member's final model."""
        out = torch.empty(len(idx), self.proj_dim, dtype=torch.float64, device=member.device)
        for lo in range(0, len(idx), self.batch_size):
            grads = self._grads(member, split, idx[lo:lo + self.batch_size], fn, member.params)
            out[lo:lo + self.batch_size] = self.projector_(grads)
        return out

    def _score(self, test_idx: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
        device = self._fitted_context().device
        total = torch.zeros(len(test_idx), len(train_idx), dtype=torch.float64, device=device)
        index = torch.as_tensor(train_idx, dtype=torch.long, device=device)
        for fitted in self.members_:
            member = fitted["context"]
            test = self._projected(member, member.test, test_idx, "target")
            total += self._weights(fitted, test)[:, index] * fitted["slopes"][index]
        return (total / len(self.members_)).cpu().numpy()

    def describe(self) -> dict[str, Any]:
        self._fitted_context()
        return {"proj_dim": self.proj_dim, "projection": self.projection, "n_models": self.n_models,
                "dtype": self.dtype, "damping": [m["damping"] for m in self.members_]}
