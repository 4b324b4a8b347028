"""Model builders. Parameters are initialised from the spec's `init_seed` without touching global RNG."""

from __future__ import annotations

import torch
from torch import nn

from tdabench.task.spec import ModelSpec


def build_model(spec: ModelSpec, n_inputs: int, n_outputs: int, dtype: torch.dtype) -> nn.Module:
    """An MLP `n_inputs → hidden… → n_outputs`; with no hidden layers, a linear model."""
    activation = {"relu": nn.ReLU, "tanh": nn.Tanh}[spec.activation]
    widths = [n_inputs, *spec.hidden, n_outputs]
    layers: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.init_seed)
        for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(w_in, w_out))
            if i < len(widths) - 2:
                layers.append(activation())
    return nn.Sequential(*layers).to(dtype)
