"""Matrix-free curvature products over the training set, for iterative influence estimators.

`CurvatureOperator.matvec(V)` returns (C + λI)V for a batch of flat vectors V of shape (k, P),
float64, where C is the Hessian of the training risk R(θ) = mean_i ℓ(z_i; θ) + (l2/2)||θ||² at θᶠ
(curvature "hessian") or its Gauss–Newton matrix G = mean_i J_iᵀ M_i J_i + l2·I ("gauss-newton",
M_i = ∇²_out ℓ_i, J_i = ∂outputs_i/∂θ). Products are exact: forward-over-reverse (Hessian) or
jvp → M → vjp (Gauss–Newton), vmapped over the k vectors and accumulated over training batches;
Linear stacks (`mlp_hessian.mlp_layers`) take Pearlmutter's R-operator as batched GEMMs instead
(`mlp_products`; `structured=False` keeps them on the generic path). Other models' Gauss–Newton
products go through the stored output Jacobian of the training set when it takes at most
`jacobian_up_to` bytes (`output_jacobian`: two GEMMs per product; 0 keeps them matrix-free).
For small models (P <= `dense_up_to`) C is built once as an explicit matrix (`dense_curvature`) and
later calls are a matmul: same numbers up to rounding, and far cheaper for the many products of CG,
LiSSA and Lanczos. On mnist-cnn (P = 2,202, 1,000 images) one matrix-free Hessian product of 100
vectors took about a minute on 2 shared cores (float64 convolutions have no fast kernel); the explicit
matrices are built once per comparison (`dense_curvature.curvature_matrix`).

Devices: every product runs on the context's device (`TaskContext.device`). Random start vectors
are drawn on the CPU from a seeded CPU generator and copied to the device once (`seeded_normal`),
so that a seed gives the same vector, and the same numbers, on every device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.func import grad, jvp, vjp, vmap

from tdabench.errors import TdabenchError
from tdabench.estimators.dense_curvature import CURVATURES, MEMO_UP_TO, curvature_matrix
from tdabench.estimators.gradients import as_float64, flatten, unflatten
from tdabench.estimators.mlp_hessian import mlp_layers
from tdabench.estimators.mlp_products import BatchFactors, mlp_factors, mlp_products
from tdabench.estimators.output_jacobian import (JACOBIAN_BYTES, OutputJacobian, count_outputs, jacobian_nbytes,
                                                 output_jacobian)
from tdabench.progress import bar
from tdabench.task.context import TaskContext


@dataclass
class CurvatureOperator:
    """(C + damping·I) as a linear operator on (k, P) float64 batches of flat vectors, C averaged over
    the whole training set (or, per call, over the `rows` given to `matvec`)."""

    context: TaskContext
    curvature: str = "hessian"
    damping: float = 0.0
    batch_size: int = 256
    dense_up_to: int = MEMO_UP_TO  # models with at most this many parameters build C once, then matmul
    structured: bool = True  # Linear stacks: products by GEMMs (`mlp_products`); False: generic vmap path
    jacobian_up_to: int = JACOBIAN_BYTES  # Gauss-Newton of other models: through a stored J of at most these bytes
    n_products: int = field(default=0, init=False)  # vectors multiplied so far (for cost reports)
    _dense: torch.Tensor | None = field(default=None, init=False, repr=False)
    _factors: dict[tuple[int, int], BatchFactors] = field(default_factory=dict, init=False, repr=False)  # whole-set batches

    def __post_init__(self) -> None:
        if self.curvature not in CURVATURES:
            raise TdabenchError(f"curvature must be one of {', '.join(CURVATURES)}, got {self.curvature!r}")
        self.params_, self.x_, self.y_ = as_float64(self.context, self.context.train.x, self.context.train.y)
        self.layers_ = mlp_layers(self.context) if self.structured else None
        self.uses_jacobian_ = (self.curvature == "gauss-newton" and self.layers_ is None
                               and jacobian_nbytes(self.context, count_outputs(self.context, self.params_, self.x_))
                               <= self.jacobian_up_to)

    @property
    def dim(self) -> int:
        return sum(p.numel() for p in self.params_.values())

    def matvec(self, vectors: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(C + λI) V for V of shape (k, P); returns (k, P) float64.

        `rows`: indices into the operator's examples; C is then the mean over those only (a
        stochastic estimate, as in stochastic LiSSA). The l2 term and the damping are always added.
        """
        vectors = vectors.double()
        self.n_products += len(vectors)
        if rows is None and self.dim <= self.dense_up_to:
            out = vectors @ self.dense()  # C is symmetric
        elif self.uses_jacobian_:
            out = self.output_jacobian().gauss_newton_products(vectors, rows)
        else:
            x, y = (self.x_, self.y_) if rows is None else (self.x_[rows], self.y_[rows])
            out = self._products(vectors, x, y, whole=rows is None)
        return out + (self.context.l2 + self.damping) * vectors

    def dense(self) -> torch.Tensor:
        """C as an explicit (P, P) matrix, without the l2 term and the damping; built on first use."""
        if self._dense is None:
            self._dense = curvature_matrix(self.context, self.curvature, self.batch_size)
            self._dense.diagonal().sub_(self.context.l2)
        return self._dense

    def output_jacobian(self) -> OutputJacobian:
        """J and M of the training set (`output_jacobian`), shared through the context's memo."""
        return output_jacobian(self.context, self.params_, self.x_, self.y_, self.batch_size)

    def _products(self, vectors: torch.Tensor, x: torch.Tensor, y: torch.Tensor, whole: bool = False) -> torch.Tensor:
        """(mean over the examples (x, y) of the per-example curvature) V, matrix-free, in batches.
        `whole`: (x, y) is the whole training set (a Linear stack's batch factors are kept)."""
        out = torch.zeros_like(vectors)
        product = self._hessian_batch if self.curvature == "hessian" else self._gauss_newton_batch
        with bar(len(x), f"curvature product ({len(vectors)} vectors)", "example") as examples:
            for lo in range(0, len(x), self.batch_size):
                xb, yb = x[lo:lo + self.batch_size], y[lo:lo + self.batch_size]
                batch = (product(xb, yb, vectors) if self.layers_ is None
                         else self._structured_batch(xb, yb, vectors, (lo, len(xb)) if whole else None))
                out += batch * (len(xb) / len(x))
                examples.update(len(xb))
        return out

    def _structured_batch(self, x: torch.Tensor, y: torch.Tensor, vectors: torch.Tensor,
                          key: tuple[int, int] | None) -> torch.Tensor:
        """The batch's mean curvature times V for a Linear stack, by GEMMs (`mlp_products`); the
        batch's forward factors are kept under `key` (None: not kept)."""
        assert self.layers_ is not None
        gauss_newton = self.curvature == "gauss-newton"
        factors = self._factors.get(key) if key is not None else None
        if factors is None:
            factors = mlp_factors(self.context, self.layers_, self.params_, x, y, gauss_newton)
            if key is not None:
                self._factors[key] = factors
        return mlp_products(self.layers_, self.params_, factors, vectors, gauss_newton)

    def _hessian_batch(self, x: torch.Tensor, y: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """∇²(mean loss over the batch) V, by forward-over-reverse differentiation."""
        params = self.params_

        def batch_grad(flat: torch.Tensor) -> torch.Tensor:
            return flatten(grad(lambda p: self.context.loss(p, x, y).mean())(unflatten(flat, params)))

        theta = flatten(params)
        return vmap(lambda v: jvp(batch_grad, (theta,), (v,))[1])(vectors)

    def _gauss_newton_batch(self, x: torch.Tensor, y: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """mean_i J_iᵀ M_i J_i V over the batch: jvp through the outputs, M, then vjp back."""
        params, theta = self.params_, flatten(self.params_)
        outputs_of = lambda flat: self.context.outputs(unflatten(flat, params), x)
        outputs, pullback = vjp(outputs_of, theta)
        loss_of_out = self.context.output_loss
        out_grad = grad(lambda o, t: loss_of_out(o[None], t[None])[0])
        out_hvp = vmap(lambda o, t, u: jvp(lambda o_: out_grad(o_, t), (o,), (u,))[1])

        def one(v: torch.Tensor) -> torch.Tensor:
            jv = jvp(outputs_of, (theta,), (v,))[1]  # (B, C)
            return pullback(out_hvp(outputs, y, jv))[0] / len(x)

        return vmap(one)(vectors)


def seeded_normal(shape: tuple[int, ...], seed: int, device: torch.device) -> torch.Tensor:
    """Standard normal float64 entries from a CPU generator seeded with `seed`, copied to `device`:
    the same numbers on every device (CUDA's generator would draw others)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64, device="cpu").to(device)


def top_eigenvalue(operator: CurvatureOperator, iterations: int = 30, seed: int = 0,
                   matvec: Callable[[torch.Tensor], torch.Tensor] | None = None) -> float:
    """Largest |eigenvalue| of the operator by power iteration (an estimate from below); `matvec`
    replaces `operator.matvec` (e.g. products on sampled training examples).

    No host sync per step: the norm stays on the device and is read once at the end. A product
    that vanishes (w = 0) leaves v = 0, so every later product and the result are 0 (as when the
    loop stopped there).
    """
    matvec = operator.matvec if matvec is None else matvec
    v = seeded_normal((1, operator.dim), seed, operator.context.device)
    v /= v.norm()
    value = v.new_zeros(())
    for _ in range(iterations):
        w = matvec(v)
        value = w.norm()
        v = torch.where(value > 0, w / value, w)
    return float(value)
