"""Concept probes: a frozen linear probe on one layer's activations, used as an attribution target.

The probe is logistic regression on the final model's activations at module LAYER over the
training split, standardised with their mean μ and std σ. Target: the probe's logit
f(z; θ) = w · (a_LAYER(z; θ) − μ) / σ + b, with (w, b, μ, σ) frozen: they are not attributed
parameters, and further training moves f only through the activations.
Activations: (B, d) as they are; (B, L, d) token sequences → the first ([CLS]) token;
(B, C, H, W) feature maps → flattened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from tdabench.errors import UnknownNameError
from tdabench.task.concepts import concept_labels
from tdabench.task.data import Split

Tensors = dict[str, torch.Tensor]


def probe_layers(model: nn.Module) -> list[str]:
    """Names of the modules whose output a probe can read (every named submodule)."""
    return [name for name, _ in model.named_modules() if name]


def check_probe_layer(model: nn.Module, layer: str) -> None:
    """A `layer` that names no submodule of the model raises, listing the valid ones."""
    if layer not in probe_layers(model):
        raise UnknownNameError("probe layer", layer, probe_layers(model))


def pooled(out) -> torch.Tensor:
    """A module's output as (B, d) activations: a tuple's first element; (B, L, d) → the first
    token; anything else flattened after the batch axis."""
    out = out[0] if isinstance(out, (tuple, list)) else out
    if out.dim() == 3:
        return out[:, 0]
    return out.flatten(1)


def layer_activation(model: nn.Module, params: Tensors, buffers: Tensors, x: torch.Tensor,
                     layer: str) -> torch.Tensor:
    """The pooled output (B, d) of module `layer` when the model runs with `params` on x."""
    check_probe_layer(model, layer)
    modules = dict(model.named_modules())
    seen: list[torch.Tensor] = []
    handle = modules[layer].register_forward_hook(lambda mod, inp, out: seen.append(pooled(out)))
    try:
        functional_call(model, (params, buffers), (x,))
    finally:
        handle.remove()
    return seen[-1]


@dataclass(frozen=True)
class Probe:
    """A frozen probe for `concept` at module `layer`: logit = ((a − mean) / std) · weight + bias."""

    layer: str
    concept: str
    weight: torch.Tensor  # (d,)
    bias: float
    mean: torch.Tensor  # (d,)
    std: torch.Tensor  # (d,)
    train_accuracy: float

    def logit(self, activations: torch.Tensor) -> torch.Tensor:
        return ((activations - self.mean) / self.std) @ self.weight + self.bias


def fit_probe(model: nn.Module, params: Tensors, buffers: Tensors, train: Split, layer: str,
              concept: str, batch_size: int = 512) -> Probe:
    """The probe of `probe_from_activations` on the activations of module `layer` over `train`."""
    with torch.no_grad():
        acts = torch.cat([layer_activation(model, params, buffers, x, layer)
                          for x in torch.split(train.x, batch_size)])
    dtype = params[next(iter(params))].dtype
    return probe_from_activations(acts, concept_labels(concept, train), layer, concept, dtype)


def probe_from_activations(acts: torch.Tensor, labels: np.ndarray, layer: str, concept: str,
                           dtype: torch.dtype) -> Probe:
    """L2-regularised logistic regression (C = 1, lbfgs) on the activations `acts` (n, d) standardised
    in float64 with their mean and std (std clamped at 1e-12), for the boolean `labels` (n,)."""
    from sklearn.linear_model import LogisticRegression

    acts = acts.detach().double()
    mean, std = acts.mean(0), acts.std(0).clamp(min=1e-12)
    z = ((acts - mean) / std).cpu().numpy()
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(z, labels)
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype, device=acts.device)
    return Probe(layer, concept, as_t(clf.coef_[0]), float(clf.intercept_[0]), mean.to(dtype), std.to(dtype),
                 float(clf.score(z, labels)))
