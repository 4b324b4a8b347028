"""Example plugin: Grad-Dot over the parameters of the model's last layer only.

score[j, i] = ∇_W f(z_j)ᵀ ∇_W ℓ(z_i), W = the last two parameter tensors (weight and bias of the
output layer). Uses only the public TaskContext API (params, loss, target), as plugins should.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import grad, vmap

from tdabench.estimators.base import Estimator
from tdabench.errors import TdabenchError


class LastLayerGradDot(Estimator):
    """Grad-Dot on the last `n_tensors` parameter tensors (default 2: weight and bias)."""
    uses = "final-model"

    def __init__(self, n_tensors: int = 2) -> None:
        self.n_tensors = n_tensors

    def _fit(self, context) -> None:
        """Called by Estimator.fit, which then sets `context_`."""
        if not 0 < self.n_tensors <= len(context.params):
            raise TdabenchError(f"n_tensors must be in 1..{len(context.params)}, got {self.n_tensors}")
        self.names_ = list(context.params)[-self.n_tensors:]

    def _grads(self, fn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fixed = self.context_.params

        def one(sub, xi, yi):
            return fn({**fixed, **sub}, xi[None], yi[None])[0]

        sub = {k: fixed[k] for k in self.names_}
        g = vmap(grad(one), in_dims=(None, 0, 0))(sub, x, y)
        return torch.cat([g[k].reshape(len(x), -1) for k in self.names_], dim=1)

    def _score(self, test_idx: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
        """Called by Estimator.score with validated integer index arrays."""
        ctx = self.context_
        tr, te = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
        g_train = self._grads(ctx.loss, ctx.train.x[tr], ctx.train.y[tr])
        g_test = self._grads(ctx.target, ctx.test.x[te], ctx.test.y[te])
        return (g_test @ g_train.T).double().numpy()
