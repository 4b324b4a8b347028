"""How many parameter copies fit in one vmapped further-training step, for a memory budget.

Per copy, one step holds its parameters, their gradient, the optimizer's slots (SGD momentum: 1,
Adam: 2) and about two parameter-sized temporaries, plus the activations of one batch that
backpropagation keeps. Activations are counted as the outputs of every module on one example
(a forward pass with hooks), times the batch size, times `ACTIVATION_FACTOR` for what the count
misses (attention scores, gradients of activations). An estimate, so the budget is a target,
not a hard limit; the numbers do not depend on the chunk size (tested).
"""

from __future__ import annotations

import os

import torch

from tdabench.task.context import TaskContext
from tdabench.task.spec import OptimizerSpec

DEFAULT_BUDGET_GB = 4.0
ACTIVATION_FACTOR = 4


def activation_elements(ctx: TaskContext) -> int:
    """Number of elements in the outputs of every leaf module for one training example."""
    total = 0

    def count(module, inputs, output) -> None:
        nonlocal total
        outs = output if isinstance(output, (tuple, list)) else (output,)
        total += sum(o.numel() for o in outs if isinstance(o, torch.Tensor))

    leaves = [m for m in ctx.model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            ctx.outputs(ctx.params, ctx.train.x[:1])
    finally:
        for h in handles:
            h.remove()
    return total


def bytes_per_copy(ctx: TaskContext, recipe: OptimizerSpec) -> int:
    """Estimated bytes one further-training copy needs in a vmapped step."""
    itemsize = torch.finfo(ctx.dtype).bits // 8
    slots = 2 if recipe.optimizer in ("adam", "adamw") else 1
    param_bytes = ctx.n_params * itemsize * (2 + slots + 2)
    return param_bytes + recipe.batch_size * activation_elements(ctx) * itemsize * ACTIVATION_FACTOR


def budget_bytes() -> int:
    """$TDABENCH_GOLD_MEMORY_GB (default 4 GB) in bytes."""
    return int(float(os.environ.get("TDABENCH_GOLD_MEMORY_GB", DEFAULT_BUDGET_GB)) * 2**30)


def auto_chunk_size(ctx: TaskContext, recipe: OptimizerSpec, n_instances: int,
                    budget: int | None = None) -> int | None:
    """Instances per chunk so that (1 + chunk) copies fit `budget` bytes; None when all fit at once."""
    fits = (budget or budget_bytes()) // max(1, bytes_per_copy(ctx, recipe))
    return None if fits >= n_instances + 1 else max(1, int(fits) - 1)
