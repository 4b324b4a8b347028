"""The inner-product template shared by gradient-based estimators (as in dattri).

    score[j, i] = T(φ_test(∇f(z_j)))  ·  φ_train(∇ℓ(z_i))

with ∇f(z_j) the gradient of the target at test point j and ∇ℓ(z_i) the gradient of the training
loss of instance i, both at θᶠ and flattened as in `gradients.flatten` (P entries). Subclasses
override the hooks: `_fit_representations(context)` (fit curvature, projections…),
`_train_representation` (n_train, P) → (n_train, D), `_test_representation` (n_test, P) → (n_test, D)
and `_transform` (n_test, D) → (n_test, D) (e.g. apply an inverse curvature). All default to identity,
which gives Grad-Dot. Only the gradients of the requested indices are computed, in batches.

Devices: representations and transforms live on the fitted context's device (`TaskContext.device`,
the parameters' device); `_score` copies the finished score matrix to the host once, as numpy.
"""

from __future__ import annotations

import numpy as np
import torch

from tdabench.estimators.base import Estimator, is_positive_int
from tdabench.estimators.gradients import GradFn, Tensors, flat_per_sample_grads
from tdabench.task.context import TaskContext
from tdabench.task.data import Split


class InnerProductEstimator(Estimator):
    """Template: score = T(test_rep) @ train_repᵀ. `batch_size`: examples per vmap call."""

    def __init__(self, *, batch_size: int = 256) -> None:
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        self._check_param(is_positive_int(self.batch_size), "batch_size", "a positive integer")

    def _fit(self, context: TaskContext) -> None:
        self._fit_representations(context)

    def _fit_representations(self, context: TaskContext) -> None:
        """Hook: fit what the representations need (curvature, projections). Default: nothing."""

    def _train_representation(self, grads: torch.Tensor) -> torch.Tensor:
        """Hook: training-loss gradients (n_train, P) → representations (n_train, D)."""
        return grads

    def _test_representation(self, grads: torch.Tensor) -> torch.Tensor:
        """Hook: target gradients (n_test, P) → representations (n_test, D)."""
        return grads

    def _transform(self, reps: torch.Tensor) -> torch.Tensor:
        """Hook: test representations (n_test, D) → (n_test, D), e.g. (H + λI)⁻¹ applied to each row."""
        return reps

    def _score(self, test_idx: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
        context = self._fitted_context()
        test = self._transform(self._test_representation(self._grads(context, context.test, test_idx, "target")))
        train = self._train_representation(self._grads(context, context.train, train_idx, "loss"))
        return (test.double() @ train.double().T).cpu().numpy()

    def _grads(self, context: TaskContext, split: Split, idx: np.ndarray, fn: GradFn,
               params: Tensors | None = None) -> torch.Tensor:
        """Flat per-sample gradients (len(idx), P) of `fn` at `params` (default θᶠ), in batches."""
        index = torch.as_tensor(idx, dtype=torch.long, device=split.x.device)
        return flat_per_sample_grads(context, fn, split.x[index], split.y[index], params, self.batch_size)
