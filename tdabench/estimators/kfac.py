"""K-FAC and EK-FAC influence: a Kronecker-factored Gauss–Newton block per nn.Linear or nn.Conv2d layer.

    score[j, i] = ∇f(z_j)ᵀ (C + (λ + l2) I)⁻¹ ∇ℓ(z_i)      (tdabench sign, as in `influence.py`)

C is block-diagonal over the layers and approximates the loss part of G = (1/n)Σ_i J_iᵀM_iJ_i
(+ l2·I, which enters as extra damping). For a layer with input a (in,) and ã = (a, 1) when it has a
bias, the weight gradient of example i is the matrix V = s ãᵀ (out × in+1), whose row-major
flattening is s ⊗ ã (W's entries row by row; the bias is the last column). With the exact
Gauss–Newton pseudo-gradients s_ic = (∂out_i/∂pre)ᵀ R_i e_c, R_i = M_i^{1/2} (symmetric, c = 1…C),
the layer's block of G is exactly (1/n)Σ_i Σ_c (s_ic s_icᵀ) ⊗ (ã_i ã_iᵀ) in that row-major order.

- K-FAC: block ≈ S ⊗ A (row-major; A ⊗ S in column-major vec), A = (1/n)Σ ã ãᵀ, S = (1/n)Σ_iΣ_c s sᵀ.
  With S = Q_S diag(σ) Q_Sᵀ and A = Q_A diag(α) Q_Aᵀ, (S ⊗ A + λ'I)⁻¹ vec(V) is the vec of
  Q_S [(Q_Sᵀ V Q_A) / (σ αᵀ + λ')] Q_Aᵀ  (elementwise division), λ' = λ + l2.
- EK-FAC (George et al. 2018): same bases, eigenvalues σ αᵀ replaced by the diagonal of the exact
  block in the basis Q_S ⊗ Q_A: Λ*[k, l] = (1/n)Σ_iΣ_c (Q_Sᵀ s_ic)_k² (Q_Aᵀ ã_i)_l².
- Convolutions (KFC, Grosse & Martens 2016; `layers.ConvBlock`): example i's gradient is
  V_ic = Σ_t s_ict ã_itᵀ over the T output positions (ã_it: the unfolded input patch). Assuming
  activations and pseudo-gradients uncorrelated across positions and alike at every position,
  block ≈ S ⊗ A with A = (1/n)Σ_iΣ_t ã ãᵀ and S = (1/(nT))Σ_iΣ_cΣ_t s sᵀ; EK-FAC's
  Λ*[k, l] = (1/n)Σ_iΣ_c ((Q_Sᵀ V_ic Q_A)[k, l])² uses the exact V_ic, so it remains the exact diagonal
  of the block in that basis. A linear layer is the case T = 1, where these are the formulas above.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch.func import hessian, vmap

from tdabench.errors import TdabenchError
from tdabench.estimators.damped import (DAMPING_SEARCH_SPACE, DEFAULT_DAMPING, DEFAULT_DAMPING_RELATIVE, check_damping,
                                       fit_damping)
from tdabench.estimators.gradients import Tensors, as_float64
from tdabench.estimators.inner_product import InnerProductEstimator
from tdabench.estimators.layers import LinearBlock, linear_blocks, probed
from tdabench.registry import register_estimator
from tdabench.task.context import TaskContext


def output_hessian_root(context: TaskContext, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """R_i = M_i^{1/2} (b, C, C), M_i = ∇²_out ℓ(out_i, y_i), by eigh with eigenvalues clamped at 0."""
    loss_of_out = context.output_loss
    m = vmap(hessian(lambda o, yi: loss_of_out(o.unsqueeze(0), yi.unsqueeze(0))[0]))(outputs, y)
    evals, evecs = torch.linalg.eigh((m + m.mT) / 2)
    return evecs @ (evals.clamp(min=0).sqrt().unsqueeze(-1) * evecs.mT)


def pseudo_gradients(context: TaskContext, blocks: list[LinearBlock], params: Tensors, x: torch.Tensor,
                     y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer: inputs ã (b, T, width) and pseudo-gradients s (b, C, T, out) at its T positions,
    s[i, c] = (∂out_i/∂pre)ᵀ R_i e_c: the gradient of Σ_i out_iᵀ R_i e_c w.r.t. the layer's probe
    (examples are independent)."""
    with probed(blocks) as (inputs, probes), torch.enable_grad():
        outputs = context.outputs(params, x)
    missing = [b.name for b in blocks if b.name not in inputs]
    if missing:
        raise TdabenchError(f"layers {missing} are not called by the model's forward pass")
    root = output_hessian_root(context, outputs.detach(), y)
    wrt = [probes[b.name] for b in blocks]
    cols = [torch.autograd.grad((outputs * root[:, :, c]).sum(), wrt, retain_graph=True)
            for c in range(outputs.shape[1])]
    result = []
    for k, block in enumerate(blocks):
        a = block.patches(inputs[block.name])
        if block.bias is not None:
            a = torch.cat([a, a.new_ones(*a.shape[:2], 1)], dim=2)
        result.append((a, torch.stack([block.positions(col[k]) for col in cols], dim=1)))
    return result


def _squared_rotated_gradients(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Σ_iΣ_c ((Σ_t s_ict a_itᵀ)[k, l])² for s (b, C, T, out) and a (b, T, width): (out, width).
    With one position (T = 1) the square factors, (s_k a_l)² = s_k² a_l², and no (b, C, out, width)
    temporary is made."""
    if a.shape[1] == 1:
        return s[:, :, 0].pow(2).sum(1).T @ a[:, 0].pow(2)
    return torch.einsum("icto,itw->icow", s, a).pow(2).sum((0, 1))


def batches(context: TaskContext, batch_size: int) -> Iterator[tuple[Tensors, torch.Tensor, torch.Tensor]]:
    """θᶠ, x, y of the training set in float64, in consecutive batches of `batch_size` examples."""
    params, x, y = as_float64(context, context.train.x, context.train.y)
    for lo in range(0, len(x), batch_size):
        yield params, x[lo:lo + batch_size], y[lo:lo + batch_size]


class KroneckerInfluence(InnerProductEstimator):
    """Shared fit and transform of K-FAC and EK-FAC; subclasses set `_eigenvalues`.

    `damping_relative` as in `damped` ("lambda-max", the default: × λ_max(G) of the exact Gauss–Newton
    matrix; true: × λ_G; false: absolute). The default 1·λ_max(G) is every damped estimator's, so
    that they differ only in how they apply the inverse. On the validation test points of four tasks
    (benchmarks/results/default_damping.json, mean over tasks of the mean over horizons of Pearson)
    it gives K-FAC 0.930 and EK-FAC 0.933, against 0.935 and 0.931 for the best constant, 1e4·λ_G;
    1e3·λ_G, best on three of the tasks, drops to 0.73 on breast-cancer-mlp.
    """

    search_space = DAMPING_SEARCH_SPACE

    def __init__(self, *, damping: float = DEFAULT_DAMPING, damping_relative: bool | str = DEFAULT_DAMPING_RELATIVE,
                 batch_size: int = 256) -> None:
        self.damping = damping
        self.damping_relative = damping_relative
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        super()._validate_params()
        check_damping(self, lambda_max=True)

    def _fit_representations(self, context: TaskContext) -> None:
        label = type(self).__dict__.get("name") or type(self).__name__
        self.blocks_ = linear_blocks(context, label, conv=True)
        self.lambda_g_, self.lambda_max_, self.damping_ = fit_damping(self, context)
        self.factors_ = self._factors(context)
        decompositions = [(torch.linalg.eigh(s), torch.linalg.eigh(a)) for a, s in self.factors_]
        self.bases_ = [(ds.eigenvectors, da.eigenvectors) for ds, da in decompositions]
        self.factor_eigenvalues_ = [(ds.eigenvalues, da.eigenvalues) for ds, da in decompositions]
        self.eigenvalues_ = self._eigenvalues(context)
        for block, lam in zip(self.blocks_, self.eigenvalues_):
            denominator = lam + self.damping_ + context.l2
            if not denominator.min() > np.finfo(np.float64).eps * denominator.max():
                raise TdabenchError(f"{label}: the damped curvature of layer '{block.name}' is singular "
                                    f"(damping + l2 = {self.damping_ + context.l2:g}); increase the damping")

    def _factors(self, context: TaskContext) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (A (width, width), S (out, out)), float64 means over the training set, on the
        context's device."""
        zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float64, device=context.device)
        sums = [(zeros(b.width, b.width), zeros(b.n_out, b.n_out)) for b in self.blocks_]
        for params, xb, yb in batches(context, self.batch_size):
            for (a_sum, s_sum), (a, s) in zip(sums, pseudo_gradients(context, self.blocks_, params, xb, yb)):
                a, s = a.reshape(-1, a.shape[-1]), s.reshape(-1, s.shape[-1]) / s.shape[2] ** 0.5
                a_sum.addmm_(a.T, a)
                s_sum.addmm_(s.T, s)
        n = len(context.train)
        return [(a_sum / n, s_sum / n) for a_sum, s_sum in sums]

    def _eigenvalues(self, context: TaskContext) -> list[torch.Tensor]:
        """Per layer, the curvature's eigenvalues (out, width) in the basis Q_S ⊗ Q_A."""
        raise NotImplementedError

    def _transform(self, reps: torch.Tensor) -> torch.Tensor:
        """Rows r ↦ (C + (λ + l2) I)⁻¹ r, block by block in the Kronecker eigenbases, float64."""
        reps = reps.double()
        out = torch.zeros_like(reps)
        damping = self.damping_ + self._fitted_context().l2
        for block, (q_s, q_a), lam in zip(self.blocks_, self.bases_, self.eigenvalues_):
            rotated = q_s.T @ block.to_matrix(reps) @ q_a
            block.write(out, q_s @ (rotated / (lam + damping)) @ q_a.T)
        return out

    def describe(self) -> dict[str, Any]:
        context = self._fitted_context()
        return {"damping": self.damping_, "lambda_g": self.lambda_g_, "lambda_max": self.lambda_max_, "l2": context.l2,
                "layers": [b.name for b in self.blocks_]}


@register_estimator("kfac")
class KFAC(KroneckerInfluence):
    """K-FAC influence: eigenvalues σ_k α_l of S ⊗ A (see the module docstring)."""
    family = "per-layer curvature"
    uses = "final-model"
    summary = "Influence function with the Kronecker-factored Gauss-Newton matrix of each layer."
    citation = ("Martens & Grosse, Optimizing Neural Networks with Kronecker-factored Approximate Curvature, ICML "
                "2015; Grosse et al., Studying Large Language Model Generalization with Influence Functions, 2023")

    def _eigenvalues(self, context: TaskContext) -> list[torch.Tensor]:
        return [sigma.clamp(min=0)[:, None] * alpha.clamp(min=0)[None, :]
                for sigma, alpha in self.factor_eigenvalues_]


@register_estimator("ekfac")
class EKFAC(KroneckerInfluence):
    """EK-FAC influence: K-FAC's bases with the corrected eigenvalues Λ* (see the module docstring)."""
    family = "per-layer curvature"
    uses = "final-model"
    summary = "K-FAC's eigenbases with eigenvalues corrected to the per-sample gradients (EK-FAC)."
    citation = ("George et al., Fast Approximate Natural Gradient Descent in a Kronecker-factored Eigenbasis, NeurIPS "
                "2018; Grosse et al., 2023")

    def _eigenvalues(self, context: TaskContext) -> list[torch.Tensor]:
        sums = [torch.zeros(b.n_out, b.width, dtype=torch.float64, device=context.device) for b in self.blocks_]
        for params, xb, yb in batches(context, self.batch_size):
            stats = pseudo_gradients(context, self.blocks_, params, xb, yb)
            for total, (q_s, q_a), (a, s) in zip(sums, self.bases_, stats):
                total += _squared_rotated_gradients(s @ q_s, a @ q_a)
        return [total / len(context.train) for total in sums]
