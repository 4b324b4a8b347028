"""Per-sample gradients with torch.func, flattened in the order of `context.params`.

A flat parameter vector concatenates ``p.reshape(-1)`` for the tensors of ``context.params`` in dict
order; P is its length. Row k of a gradient matrix is the gradient of one example's loss (or target).
Gradients live on the parameters' device (`TaskContext.device`); nothing here copies to the host.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch.func import grad, vmap

from tdabench.task.context import TaskContext

Tensors = dict[str, torch.Tensor]
GradFn = Literal["loss", "target", "output"]


def flatten(params: Tensors) -> torch.Tensor:
    """Concatenate the tensors of `params` (dict order) into one vector of length P."""
    return torch.cat([p.reshape(-1) for p in params.values()])


def unflatten(vec: torch.Tensor, like: Tensors) -> Tensors:
    """Inverse of `flatten`: split a vector of length P into tensors shaped as in `like`."""
    sizes = [p.numel() for p in like.values()]
    if vec.shape != (sum(sizes),):
        raise ValueError(f"expected a vector of length {sum(sizes)}, got shape {tuple(vec.shape)}")
    chunks = torch.split(vec, sizes)
    return {k: c.view(p.shape) for (k, p), c in zip(like.items(), chunks)}


def flatten_rows(grads: Tensors, n: int) -> torch.Tensor:
    """Stacked per-example tensors (n, *shape) of each parameter → one matrix (n, P)."""
    return torch.cat([g.reshape(n, -1) for g in grads.values()], dim=1)


def per_example_function(context: TaskContext, fn: GradFn):
    """The per-example function named by `fn`: (params, x, y) -> (B,)."""
    functions = {"loss": context.loss, "target": context.target, "output": context.model_output}
    if fn not in functions:
        raise ValueError(f"fn must be 'loss', 'target' or 'output', got {fn!r}")
    return functions[fn]


def flat_per_sample_grads(context: TaskContext, fn: GradFn, x: torch.Tensor, y: torch.Tensor,
                          params: Tensors | None = None, batch_size: int = 256) -> torch.Tensor:
    """Gradients ∇_θ fn(z_k; θ) of each example, shape (n, P), in the dtype of `params`.

    fn = "loss": the per-example training loss `context.loss` (no regulariser);
    fn = "target": the per-example attribution target `context.target`;
    fn = "output": TRAK's model-output function `context.model_output` (margin or regression output).
    Computed by vmap(grad(·)) over batches of `batch_size` examples; θ = `params` (default θᶠ).
    """
    per_example = per_example_function(context, fn)
    params = context.params if params is None else params

    def one(p: Tensors, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return per_example(p, xi.unsqueeze(0), yi.unsqueeze(0))[0]

    batched = vmap(grad(one), in_dims=(None, 0, 0))
    n, n_params = int(x.shape[0]), sum(p.numel() for p in params.values())
    first = next(iter(params.values()))
    out = torch.empty(n, n_params, dtype=first.dtype, device=first.device)
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        out[lo:hi] = flatten_rows(batched(params, x[lo:hi], y[lo:hi]), hi - lo)
    return out


def lambda_g(train_grads: torch.Tensor) -> float:
    """λ_G: the mean squared entry of the per-sample training gradients (n, P) (docs/method.md, the unified view)."""
    return float(_mean_square(train_grads))


def _mean_square(train_grads: torch.Tensor) -> torch.Tensor:
    """The mean squared entry, a float64 0-d tensor on the gradients' device (no host copy)."""
    if train_grads.numel() == 0:
        raise ValueError("lambda_g needs at least one gradient")
    return train_grads.double().pow(2).mean()


def training_lambda_g(context: TaskContext, batch_size: int = 256) -> float:
    """λ_G of the whole training set at θᶠ, in float64, batch by batch (never all gradients at once).
    The batches' sum stays on the device; one host copy at the end (float64 arithmetic, so the same
    number as summing Python floats)."""
    params, x, y = as_float64(context, context.train.x, context.train.y)
    total = sum(_mean_square(flat_per_sample_grads(context, "loss", x[lo:lo + batch_size], y[lo:lo + batch_size],
                                                   params, batch_size)) * len(x[lo:lo + batch_size])
                for lo in range(0, len(x), batch_size))
    return float(total / len(x))


def as_float64(context: TaskContext, x: torch.Tensor, y: torch.Tensor) -> tuple[Tensors, torch.Tensor, torch.Tensor]:
    """θᶠ, x and y in float64 where they are real-valued (token ids stay integers), for curvature
    computations in double precision."""
    params = {k: v.double() for k, v in context.params.items()}
    return params, (x.double() if x.is_floating_point() else x), (y.double() if y.is_floating_point() else y)
