"""dattri's conjugate-gradient attributor with each solve checked (used by `if-dattri`).

A module of its own because it subclasses a dattri class: it imports dattri, which
`tdabench.adapters.dattri_influence` imports only when the estimator is fitted.
"""

from __future__ import annotations

import functools
import hashlib

import torch
from dattri.algorithm.influence_function import IFAttributorCG
from dattri.func.hessian import hvp_at_x
from dattri.task import AttributionTask


class CheckedCG(IFAttributorCG):
    """dattri's IFAttributorCG with each CG solve checked and memoised.

    Check: a row x of `transform_test_rep` (x ≈ (H + ρI)⁻¹v) whose relative residual
    ‖(H + ρI)x − v‖/‖v‖ is not ≤ `tol` (non-finite included) is replaced by NaN, so that the scores of
    that test point come out NaN. The residual uses dattri's own `hvp_at_x` on the same loss, data and
    regularization as its CG. Memo: dattri's `attribute` calls `transform_test_rep` again for every
    training batch with the same test batch; the solution is computed once per test batch.
    """

    def __init__(self, task: AttributionTask, max_iter: int, regularization: float, tol: float,
                 device: str = "cpu") -> None:
        super().__init__(task=task, device=device, max_iter=max_iter, regularization=regularization)
        self.check_tol = tol
        self.max_accepted_residual = 0.0
        self._memo: dict[tuple[int, bytes], torch.Tensor] = {}

    def transform_test_rep(self, ckpt_idx: int, test_rep: torch.Tensor) -> torch.Tensor:
        key = (ckpt_idx, hashlib.blake2b(test_rep.detach().cpu().numpy().tobytes()).digest())
        if key not in self._memo:
            self._memo[key] = self._checked_solve(ckpt_idx, test_rep)
        return self._memo[key]

    def _checked_solve(self, ckpt_idx: int, test_rep: torch.Tensor) -> torch.Tensor:
        solved = super().transform_test_rep(ckpt_idx, test_rep)
        model_params, _ = self.task.get_param(ckpt_idx, layer_name=self.layer_name)
        (full_data,) = list(self.full_train_dataloader)  # one batch (see InfluenceDattri)
        loss = functools.partial(self.task.get_loss_func(layer_name=self.layer_name, ckpt_idx=ckpt_idx),
                                 **{self.task.loss_func_data_key: tuple(full_data)})
        hvp = hvp_at_x(loss, x=(model_params,), regularization=self.transformation_kwargs["regularization"])
        residual = torch.vmap(hvp)(torch.nan_to_num(solved, nan=0.0, posinf=0.0, neginf=0.0)) - test_rep
        relative = (residual.norm(dim=1) / test_rep.norm(dim=1)).detach()
        ok = torch.isfinite(solved).all(dim=1) & (relative <= self.check_tol)
        if ok.any():
            self.max_accepted_residual = max(self.max_accepted_residual, float(relative[ok].max()))
        return torch.where(ok[:, None], solved, torch.full_like(solved, float("nan"))).detach()
