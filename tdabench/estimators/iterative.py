"""Influence functions with iterative inverses: conjugate gradients (`if-cg`) and LiSSA (`if-lissa`).

Both apply (C + λI)⁻¹ to the test representations (the target gradients ∇f(z_j), rows of a (k, P)
batch) with matrix-free curvature products (`curvature.CurvatureOperator`); C is symmetric, so
score[j, i] = ((C + λI)⁻¹∇f(z_j))ᵀ ∇ℓ(z_i), the same quantity as `if-explicit`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import torch

from tdabench.errors import TdabenchError
from tdabench.estimators.base import is_seed
from tdabench.estimators.damped import (DEFAULT_DAMPING, DEFAULT_DAMPING_RELATIVE, DAMPING_SEARCH_SPACE, DampedInfluence, check_positive_int,
                                        is_real)
from tdabench.estimators.curvature import top_eigenvalue
from tdabench.progress import bar
from tdabench.registry import register_estimator
from tdabench.task.context import TaskContext

MatVec = Callable[[torch.Tensor], torch.Tensor]
CURVATURE_CHECK_EVERY = 10  # CG iterations between host reads of the "non-positive curvature" flag


def conjugate_gradient(matvec: MatVec, rhs: torch.Tensor, max_iter: int, tol: float) -> tuple[torch.Tensor, float, int]:
    """Solve A X = B row by row (B: (k, P), A symmetric positive definite), all rows together.

    Each row runs its own CG recursion; a row stops once ||r|| <= tol·||b||. Returns (X, the largest
    relative residual, iterations). A direction with pᵀAp <= 0 means A is not positive definite.

    Host syncs, on any device: one per iteration, the indices of the rows still running (the
    products are restricted to them, so the numbers do not depend on the other rows; an empty set
    ends the loop). The "non-positive curvature" test is a flag kept on the device and read every
    `CURVATURE_CHECK_EVERY` iterations and at the end; a step taken after such a direction only
    produces numbers that are thrown away with the error.
    """
    x, r = torch.zeros_like(rhs), rhs.clone()
    p, rs = r.clone(), (r * r).sum(1)
    target = tol * rhs.norm(dim=1)
    active = rs.sqrt() > target
    indefinite = torch.zeros((), dtype=torch.bool, device=rhs.device)
    iterations = 0
    with bar(max_iter, "conjugate gradients", "iteration") as shown_bar:
        while iterations < max_iter:
            rows = active.nonzero().squeeze(1)
            if len(rows) == 0:
                break
            ap = matvec(p[rows])
            curvature = (p[rows] * ap).sum(1)
            indefinite |= (curvature <= 0).any()
            if iterations % CURVATURE_CHECK_EVERY == 0:
                _check_curvature(indefinite)
            alpha = rs[rows] / curvature
            x[rows] += alpha[:, None] * p[rows]
            r[rows] -= alpha[:, None] * ap
            rs_new = (r[rows] * r[rows]).sum(1)
            p[rows] = r[rows] + (rs_new / rs[rows])[:, None] * p[rows]
            rs[rows] = rs_new
            active[rows] = rs_new.sqrt() > target[rows]
            iterations += 1
            shown_bar.update()
    _check_curvature(indefinite)
    scale = rhs.norm(dim=1).clamp(min=1e-300)
    return x, float((rs.sqrt() / scale).max()) if len(rhs) else 0.0, iterations


def _check_curvature(indefinite: torch.Tensor) -> None:
    """Raise when CG has met a direction of non-positive curvature (a host read of the flag)."""
    if bool(indefinite):
        raise TdabenchError("conjugate gradients met a direction of non-positive curvature: the damped "
                            "curvature is not positive definite; increase the damping or use gauss-newton")


@register_estimator("if-cg")
class ConjugateGradientInfluence(DampedInfluence):
    """Influence function with (C + λI)⁻¹∇f(z_j) by conjugate gradients (Koh & Liang 2017).

    max_iter: CG iterations per solve; tol: relative residual at which a row stops. The damped
    curvature must be positive definite (with the Hessian, the damping must cover its negative
    eigenvalues; otherwise use curvature="gauss-newton").
    """
    family = "influence function"
    uses = "final-model"
    summary = "Influence function with the damped inverse applied by conjugate gradients."
    citation = "Koh & Liang, Understanding Black-box Predictions via Influence Functions, ICML 2017"

    def __init__(self, *, curvature: str = "hessian", damping: float = DEFAULT_DAMPING,
                 damping_relative: bool | str = DEFAULT_DAMPING_RELATIVE, max_iter: int = 200, tol: float = 1e-10,
                 batch_size: int = 256) -> None:
        self.curvature = curvature
        self.damping = damping
        self.damping_relative = damping_relative
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        super()._validate_params()
        check_positive_int(self, "max_iter")
        self._check_param(is_real(self.tol) and self.tol > 0, "tol", "a positive number")

    def _fit_representations(self, context: TaskContext) -> None:
        self._fit_damping(context)
        self.operator_ = self._operator(context)
        self.residual_, self.iterations_ = None, None

    def _transform(self, reps: torch.Tensor) -> torch.Tensor:
        solved, residual, iterations = conjugate_gradient(self.operator_.matvec, reps.double(),
                                                          self.max_iter, self.tol)
        self.residual_, self.iterations_ = residual, iterations
        return solved

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"last_residual": self.residual_, "last_iterations": self.iterations_}


def lissa(matvec: MatVec, rhs: torch.Tensor, depth: int, scale: float) -> torch.Tensor:
    """The Neumann recursion v_{k+1} = b + v_k − A v_k / s from v_0 = b; returns v_depth / s.

    For ||I − A/s|| < 1 this tends to A⁻¹b: v_K / s = (1/s) Σ_{k=0}^{K} (I − A/s)^k b.
    """
    v = rhs.clone()
    with bar(depth, "LiSSA recursion", "step") as steps:
        for _ in range(depth):
            v = rhs + v - matvec(v) / scale
            steps.update()
    return v / scale


def sampled_rows(rng: np.random.Generator, n: int, size: int, device: torch.device,
                 block: int = 64) -> Iterator[torch.Tensor]:
    """Endless index sets `rng.choice(n, size, replace=False)` as long tensors on `device`, drawn
    `block` at a time and copied to the device in one transfer per block (not one per product).
    Drawing ahead consumes `rng` in the same order, so the sets are those of one draw per call."""
    while True:
        drawn = torch.as_tensor(np.stack([rng.choice(n, size, replace=False) for _ in range(block)]), device=device)
        yield from drawn


@register_estimator("if-lissa")
class LissaInfluence(DampedInfluence):
    """Influence function with (C + λI)⁻¹ by the LiSSA recursion (Agarwal et al. 2017; Koh & Liang).

    depth: recursion steps. scale: s, which must exceed half the largest eigenvalue of C + λI for
    the recursion to converge; None = 1.1 × that eigenvalue estimated by power iteration.
    hvp_batch_size: training examples sampled (with `seed`) for each step's curvature product, as in
    stochastic LiSSA; None = the whole training set (deterministic, converges to `if-explicit`). The
    power iteration that sets the default scale samples its products the same way.
    """
    family = "influence function"
    search_space = {**DAMPING_SEARCH_SPACE, "depth": (25, 100)}
    uses = "final-model"
    summary = "Influence function with the damped inverse applied by the LiSSA (Neumann series) recursion."
    citation = ("Agarwal, Bullins & Hazan, Second-Order Stochastic Optimization for Machine Learning in Linear Time, "
                "JMLR 2017")

    def __init__(self, *, curvature: str = "hessian", damping: float = DEFAULT_DAMPING,
                 damping_relative: bool | str = DEFAULT_DAMPING_RELATIVE, depth: int = 50, scale: float | None = None,
                 hvp_batch_size: int | None = None, seed: int = 0, batch_size: int = 256) -> None:
        self.curvature = curvature
        self.damping = damping
        self.damping_relative = damping_relative
        self.depth = depth
        self.scale = scale
        self.hvp_batch_size = hvp_batch_size
        self.seed = seed
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        super()._validate_params()
        check_positive_int(self, "depth")
        self._check_param(self.scale is None or (is_real(self.scale) and self.scale > 0), "scale",
                          "a positive number or None")
        if self.hvp_batch_size is not None:
            check_positive_int(self, "hvp_batch_size")
        self._check_param(is_seed(self.seed), "seed", "an integer >= 0")

    def _fit_representations(self, context: TaskContext) -> None:
        self._fit_damping(context)
        self.operator_ = self._operator(context)
        self.scale_ = (1.1 * top_eigenvalue(self.operator_, seed=self.seed, matvec=self._sampled_matvec(context))
                       if self.scale is None else float(self.scale))

    def _transform(self, reps: torch.Tensor) -> torch.Tensor:
        return lissa(self._sampled_matvec(self._fitted_context()), reps.double(), self.depth, self.scale_)

    def _sampled_matvec(self, context: TaskContext) -> MatVec:
        """Full-batch products, or each call on a fresh sample of `hvp_batch_size` examples (drawn
        with `seed`: the power iteration and the recursion each restart the same stream)."""
        if self.hvp_batch_size is None:
            return self.operator_.matvec
        samples = sampled_rows(np.random.default_rng(self.seed), len(context.train),
                               min(self.hvp_batch_size, len(context.train)), context.device)
        return lambda v: self.operator_.matvec(v, rows=next(samples))

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"scale": self.scale_, "depth": self.depth}
