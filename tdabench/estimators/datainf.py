"""DataInf (Kwon et al. 2023): a closed-form, per-layer inverse of a damped empirical Fisher.

    score[j, i] = Σ_l v_lᵀ (G_l + λ'_l I)⁻¹ g_il      (tdabench sign, as in `influence.py`)

with v_l, g_il the blocks of layer l (its parameters, grouped by module prefix: '0.weight' and
'0.bias' form layer '0'; d_l entries) of the test-target gradient ∇f(z_j) and of the training-loss
gradient ∇ℓ(z_i). DataInf swaps the order of averaging and inversion, which a rank-one
Sherman–Morrison update makes closed-form:

    (G_l + λ'I)⁻¹ ≈ (1/n)Σ_k (λ'I + g_k g_kᵀ)⁻¹ = (1/λ')(I − (1/n)Σ_k g_k g_kᵀ / (λ' + ||g_k||²))

so T(v_l) = (1/λ')(v_l − (1/n)Σ_k g_k (g_kᵀv_l)/(λ' + ||g_k||²)), summed over all n training points
(their gradients are computed in `fit`, float64). The curvature is the empirical Fisher of the
training loss (g_k g_kᵀ), DataInf's stand-in for the Gauss–Newton matrix. Damping per layer:
λ'_l = λ_l + l2, λ_l = damping · (1/(n d_l))Σ_k ||g_kl||² (the layer's mean squared gradient entry)
when `damping_relative`, else λ_l = damping. Default 0.1 relative: the DataInf paper's choice.
"""

from __future__ import annotations

from typing import Any

import torch

from tdabench.errors import TdabenchError
from tdabench.estimators.damped import check_damping
from tdabench.estimators.gradients import as_float64, flat_per_sample_grads
from tdabench.estimators.inner_product import InnerProductEstimator
from tdabench.registry import register_estimator
from tdabench.task.context import TaskContext


def layer_indices(context: TaskContext) -> dict[str, torch.Tensor]:
    """Module prefix → the flat indices (`gradients.flatten` order) of that module's parameters, on
    the context's device."""
    groups: dict[str, list[int]] = {}
    start = 0
    for key, value in context.params.items():
        prefix = key.rpartition(".")[0]
        groups.setdefault(prefix, []).extend(range(start, start + value.numel()))
        start += value.numel()
    return {prefix: torch.tensor(idx, dtype=torch.long, device=context.device) for prefix, idx in groups.items()}


@register_estimator("datainf")
class DataInf(InnerProductEstimator):
    """DataInf influence; see the module docstring. batch_size: examples per gradient batch."""
    family = "per-layer curvature"
    search_space = {"damping": (1e-3, 1e-2, 0.1, 1.0, 10.0)}
    uses = "final-model"
    summary = "Closed-form per-layer inverse of the damped empirical Fisher, swapping inverse and average."
    citation = ("Kwon et al., DataInf: Efficiently Estimating Data Influence in LoRA-tuned LLMs and Diffusion Models, "
                "ICLR 2024")

    def __init__(self, *, damping: float = 0.1, damping_relative: bool = True, batch_size: int = 256) -> None:
        self.damping = damping
        self.damping_relative = damping_relative
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        super()._validate_params()
        check_damping(self)

    def _fit_representations(self, context: TaskContext) -> None:
        params, x, y = as_float64(context, context.train.x, context.train.y)
        grads = flat_per_sample_grads(context, "loss", x, y, params, self.batch_size)
        self.layers_ = layer_indices(context)
        self.train_grads_ = {name: grads[:, idx] for name, idx in self.layers_.items()}
        scale = lambda g: float(g.pow(2).mean()) if self.damping_relative else 1.0
        self.layer_damping_ = {name: float(self.damping) * scale(g) for name, g in self.train_grads_.items()}
        self.denominators_ = {}
        for name, g in self.train_grads_.items():
            damped = self.layer_damping_[name] + context.l2
            if not damped > 0:
                raise TdabenchError(f"datainf: layer '{name}' has damping + l2 = 0 (its training gradients "
                                    f"are all 0 or damping is 0); use damping_relative=false and damping > 0")
            self.denominators_[name] = damped + g.pow(2).sum(1)

    def _transform(self, reps: torch.Tensor) -> torch.Tensor:
        """Rows v ↦ per layer (1/λ')(v − (1/n)Σ_k g_k (g_kᵀv)/(λ' + ||g_k||²)), float64, (m, P) → (m, P)."""
        reps = reps.double()
        out, l2 = torch.zeros_like(reps), self._fitted_context().l2
        for name, idx in self.layers_.items():
            g, v = self.train_grads_[name], reps[:, idx]
            coefficients = (v @ g.T) / self.denominators_[name]  # (m, n)
            out[:, idx] = (v - coefficients @ g / len(g)) / (self.layer_damping_[name] + l2)
        return out

    def describe(self) -> dict[str, Any]:
        context = self._fitted_context()
        return {"layer_damping": dict(self.layer_damping_), "l2": context.l2,
                "damping_relative": self.damping_relative}
