"""Training the final model from the spec's recipe: a plain torch.optim loop, float as in the spec."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from tdabench.task.data import Split
from tdabench.task.objective import OutputFn, l2_penalty, per_example_loss
from tdabench.task.optim import torch_optimizer
from tdabench.task.schedule import TRAINING_STREAM, epoch_batches, epoch_permutation
from tdabench.task.spec import ObjectiveSpec, OptimizerSpec


def train_module(model: nn.Module, data: Split, objective: ObjectiveSpec, recipe: OptimizerSpec,
                 epochs: int | None = None, removed: int = -1, mode: str = "removal",
                 epsilon: float = 1.0, seed: int | None = None, stream: int = TRAINING_STREAM,
                 on_step: Callable[[int], None] | None = None,
                 on_epoch: Callable[[int], None] | None = None, loss_fn: OutputFn | None = None) -> nn.Module:
    """Train `model` in place for `epochs` epochs with the schedule of (`seed`, `stream`).

    `removed`/`mode`/`epsilon` describe one copy of a paired run (see schedule.py). `on_step(t)` is
    called after global step t (1-based, the reference run's clock: a copy whose batch is empty skips
    the update but not the call) and `on_epoch(e)` after epoch e. This plain loop is the sequential
    reference that the vectorised gold standard is tested against. Only parameters that require
    gradients are trained (the others are frozen); `loss_fn` replaces the objective's loss.
    """
    loss_fn = loss_fn or per_example_loss(objective)
    optimizer = torch_optimizer(recipe, [p for p in model.parameters() if p.requires_grad])
    seed = recipe.seed if seed is None else seed
    step = 0
    for epoch in range(epochs or recipe.epochs):
        perm = epoch_permutation(len(data), seed, epoch, stream)
        for batch in epoch_batches(perm, np.array([removed]), recipe.batch_size, mode, epsilon):
            step += 1
            if batch.active[0]:
                _sgd_step(model, optimizer, loss_fn, data, batch, objective.l2)
            if on_step is not None:
                on_step(step)
        if on_epoch is not None:
            on_epoch(epoch + 1)
    return model


def _sgd_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn, data: Split, batch,
              l2: float) -> None:
    """One optimizer step on the batch loss Σ w·loss / Σ mask + (l2/2)||θ||²."""
    idx = torch.as_tensor(batch.index[0], device=data.x.device)
    w = torch.as_tensor(batch.weight[0], dtype=data.x.dtype, device=data.x.device)
    losses = loss_fn(model(data.x[idx]), data.y[idx])
    loss = (w * losses).sum() / float(batch.mask[0].sum())
    loss = loss + l2_penalty(dict(model.named_parameters()), l2)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@torch.no_grad()
def evaluate(model: nn.Module, data: Split, objective: ObjectiveSpec,
             loss_fn: OutputFn | None = None) -> dict[str, float]:
    """Mean loss, and accuracy for classification (integer labels)."""
    out = model(data.x)
    metrics = {"loss": float((loss_fn or per_example_loss(objective))(out, data.y).mean())}
    if objective.loss == "cross-entropy" or (not data.y.is_floating_point() and out.shape[-1] > 1):
        metrics["accuracy"] = float((out.argmax(-1) == data.y).double().mean())
    return metrics
