"""Grad-Dot and Grad-Cos: inner products of gradients at the final model, no curvature.

Sign: one SGD step on a batch B containing i moves θ by −(η/|B|) Σ_{j∈B} ∇ℓ(z_j). Removing i deletes
the term −(η/|B|)∇ℓ(z_i), so Δθ = θ^{−i} − θ ≈ +c ∇ℓ(z_i) with c = η/|B| > 0 summed over the steps
that contain i, and Δf(z) ≈ ∇f(z)ᵀΔθ = +c ∇f(z)ᵀ∇ℓ(z_i): positive when the gradients are aligned,
which is the tdabench sign (removal increases the target). This is TracIn with the final checkpoint
only; the positive constant c is dropped.
"""

from __future__ import annotations

import numpy as np
import torch

from tdabench.estimators.inner_product import InnerProductEstimator
from tdabench.estimators.layers import gradient_gram
from tdabench.registry import register_estimator


@register_estimator("grad-dot")
class GradDot(InnerProductEstimator):
    """score[j, i] = ∇f(z_j; θᶠ)ᵀ ∇ℓ(z_i; θᶠ), by per-layer factored inner products (layers.py)."""
    family = "gradient similarity"
    uses = "final-model"
    summary = "Inner product of the test target's and the training loss's gradients at the final model."
    citation = "Charpiat et al., Input Similarity from the Neural Network Perspective, NeurIPS 2019"

    def _score(self, test_idx: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
        context = self._fitted_context()
        return gradient_gram(context, (context.test, test_idx, "target"), (context.train, train_idx, "loss"),
                             batch_size=self.batch_size).cpu().numpy()


def normalize_rows(grads: torch.Tensor) -> torch.Tensor:
    """Each row divided by its Euclidean norm; rows of norm 0 stay 0 (never NaN)."""
    norms = grads.norm(dim=1, keepdim=True)
    return grads / torch.where(norms > 0, norms, torch.ones_like(norms))


@register_estimator("grad-cos")
class GradCos(InnerProductEstimator):
    """score[j, i] = cos(∇f(z_j), ∇ℓ(z_i)) ∈ [−1, 1]; 0 where either gradient is 0."""
    family = "gradient similarity"
    uses = "final-model"
    summary = "Cosine of the angle between the test target's and the training loss's gradients."
    citation = "Charpiat et al., Input Similarity from the Neural Network Perspective, NeurIPS 2019"

    def _train_representation(self, grads: torch.Tensor) -> torch.Tensor:
        return normalize_rows(grads)

    def _test_representation(self, grads: torch.Tensor) -> torch.Tensor:
        return normalize_rows(grads)
