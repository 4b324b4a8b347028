"""Training the final model from the spec's recipe: a plain torch.optim loop, float as in the spec."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tdabench.task.data import Split
from tdabench.task.objective import l2_penalty, per_example_loss
from tdabench.task.optim import torch_optimizer
from tdabench.task.schedule import epoch_batches, epoch_permutation
from tdabench.task.spec import ObjectiveSpec, OptimizerSpec


def train_module(model: nn.Module, data: Split, objective: ObjectiveSpec, recipe: OptimizerSpec,
                 epochs: int | None = None, removed: int = -1, mode: str = "removal",
                 epsilon: float = 1.0, seed: int | None = None,
                 on_epoch=None) -> nn.Module:
    """Train `model` in place for `epochs` epochs with the schedule of `seed` (default recipe.seed).

    `removed`/`mode`/`epsilon` describe one copy of a paired run (see schedule.py); `on_epoch(e)` is
    called after every epoch e (1-based). This is also the sequential reference of the gold standard.
    """
    loss_fn = per_example_loss(objective)
    optimizer = torch_optimizer(recipe, model.parameters())
    seed = recipe.seed if seed is None else seed
    for epoch in range(epochs or recipe.epochs):
        perm = epoch_permutation(len(data), seed, epoch)
        for batch in epoch_batches(perm, np.array([removed]), recipe.batch_size, mode, epsilon):
            if not batch.active[0]:
                continue
            idx = torch.as_tensor(batch.index[0])
            w = torch.as_tensor(batch.weight[0], dtype=data.x.dtype)
            losses = loss_fn(model(data.x[idx]), data.y[idx])
            loss = (w * losses).sum() / float(batch.mask[0].sum())
            loss = loss + l2_penalty(dict(model.named_parameters()), objective.l2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if on_epoch is not None:
            on_epoch(epoch + 1)
    return model


@torch.no_grad()
def evaluate(model: nn.Module, data: Split, objective: ObjectiveSpec) -> dict[str, float]:
    """Mean loss, and accuracy for classification."""
    out = model(data.x)
    metrics = {"loss": float(per_example_loss(objective)(out, data.y).mean())}
    if objective.loss == "cross-entropy":
        metrics["accuracy"] = float((out.argmax(-1) == data.y).double().mean())
    return metrics
