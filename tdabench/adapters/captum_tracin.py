"""TracIn computed by captum's `captum.influence.TracInCP` (adapter `tracin-captum`).

tdabench's TracIn (the same definition as the native `tracin`):

    score[j, i] = Σ_c lr_c ∇f(z_j; θ_c)ᵀ ∇ℓ(z_i; θ_c)

over the checkpoints c of `context.checkpoints` (θ_c, lr_c); with no checkpoints, the final model
alone with the final model's learning rate: lr · ∇f(z_j; θᶠ)ᵀ∇ℓ(z_i; θᶠ) (lr × Grad-Dot).
"""

from __future__ import annotations

import copy
import importlib.metadata
import math
import numbers
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tdabench.errors import TdabenchError
from tdabench.estimators.base import Estimator, is_positive_int
from tdabench.task.context import TaskContext
from tdabench.task.targets import make_target


def _require_captum() -> Any:
    """captum, imported on first use (this module, and the class's `adapter_of`, load without it)."""
    try:
        import captum.influence
    except ImportError as err:
        raise TdabenchError(f"tracin-captum needs the package captum: pip install captum==0.9.0 ({err})") from None
    return captum


class _OutputLoss(nn.Module):
    """A per-example function of (outputs, labels) with the `reduction` attribute captum reads:
    "sum" adds the per-example values (captum's sample-wise trick), "none" returns them."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], reduction: str) -> None:
        super().__init__()
        self.fn, self.reduction = fn, reduction

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        values = self.fn(out, y)
        return values.sum() if self.reduction == "sum" else values


def sample_wise_trick_supported(model: nn.Module) -> bool:
    """True when every parameter belongs to a module type captum's per-batch sample-gradient hooks
    handle (nn.Linear, nn.Conv2d); otherwise captum would miss those parameters' gradients."""
    _require_captum()
    from captum._utils.sample_gradient import SUPPORTED_MODULES

    for module in model.modules():
        own = [name for name, _ in module.named_parameters(recurse=False)]
        if own and (type(module) not in SUPPORTED_MODULES or not set(own) <= {"weight", "bias"}):
            return False
    return True


class TracInCaptum(Estimator):
    """TracIn by captum's TracInCP: score[j, i] = Σ_c lr_c ∇f(z_j; θ_c)ᵀ∇ℓ(z_i; θ_c).

    Checkpoints: those of `context.checkpoints`, each weighted by its `lr`; with none, θᶠ weighted by
    `context.final_lr`. Each is saved to a temporary folder and read back by the
    `checkpoints_load_func` given to TracInCP, which loads it into a deep copy of `context.model`
    and returns its learning rate.

    How captum's output maps to tdabench's (read from captum 0.9.0's source):

    - Shape: `TracInCP.influence(test_loader)` returns (n_test, n_train), row = test example in the
      loader's order, column = example of `train_dataset` in its order. The test loader holds
      `context.test[test_idx]` and `train_dataset` is `context.train[train_idx]`, both unshuffled,
      so no transposition is needed.
    - Sign: captum's score is Σ_c lr_c ∇(test_loss_fn)ᵀ∇(loss_fn), positive for a *proponent* (a
      training step on it lowers the test loss), which is tdabench's sign (removal increases the
      target). `test_loss_fn` is the target as a function of the outputs (`make_target(
      context.target_name, ...)`, the function inside `context.target`), so a 'margin' target gives
      Σ lr ∇marginᵀ∇ℓ, again tdabench's sign. No flip.
    - Scale: captum multiplies each checkpoint's dot products by the value `checkpoints_load_func`
      returns, exactly once (on the training side; the test gradients are not scaled). That value
      is lr_c, so no factor is undone. Per-example gradients: when every parameter sits in an
      nn.Linear or nn.Conv2d (all tdabench MLPs), captum's per-batch sample-wise trick is used
      (`sample_wise_grads_per_batch=True`) with loss functions that *sum* the per-example values:
      the hooks then give each example's own gradient. (With a "mean" reduction captum multiplies
      the output gradients by the batch size to undo the 1/B; "sum" needs no correction, and captum
      checks the test gradients with the *training* loss's reduction type, so both must be "sum".)
      Other models fall back to captum's per-example loop (`sample_wise_grads_per_batch=False`,
      reduction "none", one backward pass per example).

    batch_size: examples per captum batch (training DataLoader and test DataLoader). Results do not
    depend on it.
    """
    family = "gradient similarity"
    uses = "training-checkpoints"
    summary = "TracIn computed by captum's TracInCP (reference for tracin)."
    citation = ("Pruthi et al., NeurIPS 2020; Kokhlikyan et al., Captum: A Unified and Generic Model Interpretability "
                "Library for PyTorch, 2020")

    adapter_of = "captum"

    def __init__(self, *, batch_size: int = 256) -> None:
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        self._check_param(is_positive_int(self.batch_size), "batch_size", "a positive integer")

    def _fit(self, context: TaskContext) -> None:
        _require_captum()
        names = list(context.params)
        if context.checkpoints:
            checkpoints = []
            for k, ckpt in enumerate(context.checkpoints):
                if list(ckpt.params) != names or any(ckpt.params[n].shape != context.params[n].shape for n in names):
                    raise TdabenchError(f"tracin-captum: checkpoint {k} (epoch {ckpt.epoch}) does not hold the "
                                        f"model's parameters {names} with their shapes")
                if not (isinstance(ckpt.lr, numbers.Real) and not isinstance(ckpt.lr, bool)
                        and math.isfinite(ckpt.lr)):
                    raise TdabenchError(f"tracin-captum: checkpoint {k} (epoch {ckpt.epoch}) has learning rate "
                                        f"{ckpt.lr!r}; expected a finite number")
                checkpoints.append((ckpt.epoch, ckpt.params, float(ckpt.lr)))
        else:
            checkpoints = [(None, context.params, float(context.final_lr))]
        self.checkpoints_ = checkpoints
        model = copy.deepcopy(context.model)
        for p in model.parameters():
            p.requires_grad_(True)
        self.sample_wise_ = sample_wise_trick_supported(model)
        self.model_ = model

    def _score(self, test_idx: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
        context = self._fitted_context()
        if len(test_idx) == 0 or len(train_idx) == 0:
            return np.zeros((len(test_idx), len(train_idx)))
        TracInCP = _require_captum().influence.TracInCP  # noqa: N806 (captum's class)
        reduction = "sum" if self.sample_wise_ else "none"
        loss_fn = _OutputLoss(context.output_loss, reduction)
        target_fn = _OutputLoss(make_target(context.target_name, context.spec.objective), reduction)
        test_i = torch.as_tensor(test_idx, device=context.device)
        train_i = torch.as_tensor(train_idx, device=context.device)
        train_set = TensorDataset(context.train.x[train_i], context.train.y[train_i])
        test_loader = DataLoader(TensorDataset(context.test.x[test_i], context.test.y[test_i]),
                                 batch_size=self.batch_size, shuffle=False)
        base_state = {k: v.detach().clone() for k, v in self.model_.state_dict().items()}
        with tempfile.TemporaryDirectory(prefix="tdabench-tracin-captum-") as folder:
            paths = []
            for k, (_, params, lr) in enumerate(self.checkpoints_):
                path = Path(folder) / f"checkpoint-{k:06d}.pt"  # captum sorts the paths: keep the order
                state = {**base_state, **{n: p.detach() for n, p in params.items()}}
                torch.save({"state_dict": state, "learning_rate": lr}, path)
                paths.append(str(path))
            tracin = TracInCP(self.model_, train_set, paths, checkpoints_load_func=_load_checkpoint,
                              loss_fn=loss_fn, test_loss_fn=target_fn, batch_size=self.batch_size,
                              sample_wise_grads_per_batch=self.sample_wise_)
            try:
                with warnings.catch_warnings():  # captum sets requires_grad on the inputs itself
                    warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")
                    scores = tracin.influence(test_loader)
            finally:
                self.model_.load_state_dict(base_state)
        return scores.detach().double().cpu().numpy()

    def fitted_input(self) -> str | None:
        """"final-model" when the task had no checkpoints (θᶠ alone was summed)."""
        self._fitted_context()
        return self.uses if self.checkpoints_[0][0] is not None else "final-model"

    def describe(self) -> dict[str, Any]:
        self._fitted_context()
        return {"library": "captum", "library_version": importlib.metadata.version("captum"),
                "batch_size": self.batch_size, "n_checkpoints": len(self.checkpoints_),
                "checkpoint_epochs": [e for e, _, _ in self.checkpoints_],
                "learning_rates": [lr for _, _, lr in self.checkpoints_],
                "sample_wise_grads_per_batch": self.sample_wise_}


def _load_checkpoint(model: nn.Module, path: str) -> float:
    """captum's `checkpoints_load_func`: load the saved parameters, return the checkpoint's lr."""
    saved = torch.load(path, weights_only=True)
    model.load_state_dict(saved["state_dict"])
    return float(saved["learning_rate"])
