"""`tracin`: TracIn-CP (Pruthi et al. 2020) over the checkpoints saved while the final model trained.

    score[j, i] = Σ_c η_c ∇f(z_j; θ_c)ᵀ ∇ℓ(z_i; θ_c)

over the checkpoints c of `context.checkpoints` (the task spec's `training.checkpoint_epochs`), η_c
the learning rate of the epochs before checkpoint c. The sign is Grad-Dot's: positive when the
test target's gradient and the training loss's gradient align, i.e. when removing the instance
increases the target. With the final model alone (no checkpoints, or use_checkpoints=False) the
sum has one term and TracIn reduces to η × Grad-Dot at θᶠ, η = the final model's learning rate
(`context.final_lr`), and `describe()` says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tdabench.estimators.gradients import Tensors
from tdabench.estimators.inner_product import InnerProductEstimator
from tdabench.estimators.layers import gradient_gram
from tdabench.registry import register_estimator
from tdabench.task.context import TaskContext


@register_estimator("tracin")
class TracIn(InnerProductEstimator):
    """TracIn-CP; `use_checkpoints=False` forces the final-model-only form η·Grad-Dot."""
    family = "gradient similarity"
    uses = "training-checkpoints"
    summary = "Gradient inner products summed over the saved training checkpoints, each weighted by its learning rate."
    citation = "Pruthi et al., Estimating Training Data Influence by Tracing Gradient Descent, NeurIPS 2020"

    def __init__(self, *, use_checkpoints: bool = True, batch_size: int = 256) -> None:
        self.use_checkpoints = use_checkpoints
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        super()._validate_params()
        self._check_param(isinstance(self.use_checkpoints, bool), "use_checkpoints", "true or false")

    def _fit_representations(self, context: TaskContext) -> None:
        saved = context.checkpoints if self.use_checkpoints else ()
        self.checkpoints_: list[tuple[float, Tensors]] = (
            [(c.lr, c.params) for c in saved] or [(context.final_lr, context.params)])
        self.epochs_ = [c.epoch for c in saved] or ["final"]
        self.fallback_ = (None if saved else "use_checkpoints=False" if self.use_checkpoints is False
                          else "the task has no checkpoints (training.checkpoint_epochs or model.checkpoints)")

    def _score(self, test_idx: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
        context = self._fitted_context()
        total = torch.zeros(len(test_idx), len(train_idx), dtype=torch.float64, device=context.device)
        for lr, params in self.checkpoints_:
            total += lr * gradient_gram(context, (context.test, test_idx, "target"),
                                        (context.train, train_idx, "loss"), params, self.batch_size)
        return total.cpu().numpy()

    def fitted_input(self) -> str | None:
        """"final-model" when no checkpoint was used (`fallback_` says why)."""
        self._fitted_context()
        return "final-model" if self.fallback_ else self.uses

    def describe(self) -> dict[str, Any]:
        self._fitted_context()
        return {"checkpoints": self.epochs_, "learning_rates": [lr for lr, _ in self.checkpoints_],
                "final_model_only_because": self.fallback_}
