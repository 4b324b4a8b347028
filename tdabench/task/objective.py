"""Per-example losses, the training risk and the attribution targets, as functions of model outputs.

Risk: R(θ) = mean_i loss(z_i; θ) + (l2 / 2) ||θ||². Squared loss is (f(x) − y)² (no ½), so that
ordinary least squares has Hessian 2XᵀX/n. Targets f(z; θ) map outputs of shape (B, n_outputs) and
labels (B,) to per-example values (B,); they are built in targets.py.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from tdabench.errors import TdabenchError
from tdabench.task.spec import ObjectiveSpec

OutputFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def per_example_loss(spec: ObjectiveSpec) -> OutputFn:
    """loss(outputs (B, C), y (B,)) -> (B,), without the regulariser. A 'custom' loss is the
    callable given to the Python API; the context holds it."""
    if spec.loss == "custom":
        raise TdabenchError("the loss 'custom' is the callable given to the Python API (tdabench.api.Task); "
                            "a spec file names 'cross-entropy' or 'squared'")
    if spec.loss == "cross-entropy":
        return lambda out, y: F.cross_entropy(out, y, reduction="none")
    return lambda out, y: (out.squeeze(-1) - y) ** 2


def loss_output_gradient(spec: ObjectiveSpec) -> Callable[..., torch.Tensor] | None:
    """∂loss/∂outputs in closed form, `(out, y, dim=-1)` → the shape of `out`, with the outputs
    along `dim` (out (B, C) and labels (B,) by default; out (K, C, B) and y (K, B) with dim=1):
    cross-entropy softmax(out) − onehot(y), squared 2(out − y); None for a 'custom' loss (then
    autograd)."""
    if spec.loss == "cross-entropy":
        return lambda out, y, dim=-1: torch.softmax(out, dim=dim).scatter_add_(
            dim, y.unsqueeze(dim), torch.full_like(out.narrow(dim, 0, 1), -1.0))
    if spec.loss == "squared":
        return lambda out, y, dim=-1: 2 * (out - y.unsqueeze(dim))
    return None


def l2_penalty(params: dict[str, torch.Tensor], l2: float) -> torch.Tensor:
    """(l2 / 2) Σ ||θ||²; a plain 0 when l2 == 0 (works inside vmap and grad)."""
    if l2 == 0:
        first = next(iter(params.values()))
        return torch.zeros((), dtype=first.dtype, device=first.device)
    total = sum((p * p).sum() for p in params.values())
    return 0.5 * l2 * total


def margin(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p_y − log(1 − p_y): the log-odds of the true class."""
    logp = F.log_softmax(out, dim=-1)
    true = logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    others = logp.scatter(-1, y.unsqueeze(-1), float("-inf")).logsumexp(-1)
    return true - others
