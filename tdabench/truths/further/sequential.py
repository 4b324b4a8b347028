"""The plain reference: one model at a time, nn.Module + torch.optim, no vmap.

It is what the vectorised gold standard must reproduce (tests, to 1e-6 in float64) and the
baseline its speed is measured against (benchmarks/).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from tdabench.task.context import TaskContext
from tdabench.task.schedule import FURTHER_TRAINING_STREAM
from tdabench.task.training import train_module
from tdabench.truths.further.config import GoldConfig


def _run_one(ctx: TaskContext, cfg: GoldConfig, seed: int, removed: int) -> np.ndarray:
    """Targets at every horizon for one copy, shape (n_horizons, n_test)."""
    model = copy.deepcopy(ctx.model)
    model.load_state_dict(ctx.params, strict=False)
    test_idx = torch.as_tensor(cfg.test_idx, device=ctx.test.x.device)
    cfg.check_split(len(ctx.train))
    marks = set(cfg.steps)
    values: list[np.ndarray] = []

    def record(step: int) -> None:
        if step in marks:
            with torch.no_grad():
                out = ctx.target(dict(model.named_parameters()), ctx.test.x[test_idx], ctx.test.y[test_idx])
            values.append(out.double().cpu().numpy())

    epochs = -(-max(marks) // cfg.steps_per_epoch)
    train_module(model, ctx.train, ctx.spec.objective, cfg.recipe, epochs=epochs, removed=removed,
                 mode=cfg.mode, epsilon=cfg.epsilon, seed=seed, stream=FURTHER_TRAINING_STREAM,
                 on_step=record)
    return np.stack(values)


def paired_differences_sequential(ctx: TaskContext, cfg: GoldConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Same contract as vectorized.paired_differences, computed with 1 + |I| separate runs."""
    reference = _run_one(ctx, cfg, seed, -1)
    diffs = [_run_one(ctx, cfg, seed, int(i)) - reference for i in cfg.train_idx]
    return np.stack(diffs, axis=-1), reference
