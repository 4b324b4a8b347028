"""Which layers a concept is probed on, and their activations in one forward pass.

Eligible layers (the rule): the modules whose outputs are the model's activations along its forward
path, in forward order —

- the model's direct children (a Sequential MLP/CNN: every layer; a transformer: embeddings,
  encoder stack, classifier),
- where a child is a container (`nn.ModuleList` or `nn.Sequential`), its items instead (each encoder
  layer of a transformer),
- leaving out `nn.Dropout` (at evaluation the identity of its input) and `nn.Flatten` (a reshaping:
  the same probe as the layer before it).

So digits-mlp → 0 (Linear), 1 (Tanh), 2 (Linear: the logits); mnist-cnn → 0 Conv, 1 ReLU, 2 MaxPool,
3 Conv, 4 ReLU, 5 MaxPool, 7 Linear; rt-bert-tiny → embeddings, layers.0, layers.1, classifier.
Any submodule (`probe.probe_layers`) can be asked for by name instead (`--layers`). Activations are
pooled as the probe target pools them (`probe.pooled`: a token sequence → its first token).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call

from tdabench.task.probe import check_probe_layer, pooled

Tensors = dict[str, torch.Tensor]

SKIPPED = (nn.Dropout, nn.Flatten)  # the identity at evaluation / a reshaping of the layer before
CONTAINERS = (nn.ModuleList, nn.Sequential)


def eligible_layers(model: nn.Module) -> list[str]:
    """The eligible layers of `model` (the rule in the module docstring), in forward order."""
    out = []
    for name, child in model.named_children():
        items = child.named_children() if isinstance(child, CONTAINERS) and len(child) else [("", child)]
        for sub, module in items:
            if not isinstance(module, SKIPPED):
                out.append(f"{name}.{sub}" if sub else name)
    return out


def resolve_layers(model: nn.Module, layers: Sequence[str] | None) -> list[str]:
    """`layers` checked against the model's submodules (an unknown one raises, listing the valid
    ones), or the eligible layers when None."""
    if layers is None:
        return eligible_layers(model)
    for layer in layers:
        check_probe_layer(model, layer)
    return list(layers)


def layer_activations(model: nn.Module, params: Tensors, buffers: Tensors, x: torch.Tensor, layers: Sequence[str],
                      batch_size: int = 512) -> dict[str, torch.Tensor]:
    """Layer → its pooled activations (n, d) on the inputs x (n, …) when the model runs with `params`
    (one parameter set, not stacked), all layers from one forward pass per batch."""
    modules = dict(model.named_modules())
    seen: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    hooks = [modules[layer].register_forward_hook(lambda mod, inp, out, layer=layer: seen[layer].append(pooled(out)))
             for layer in layers]
    try:
        with torch.no_grad():
            for batch in torch.split(x, batch_size):
                functional_call(model, (params, buffers), (batch,))
    finally:
        for hook in hooks:
            hook.remove()
    return {layer: torch.cat(parts) for layer, parts in seen.items()}


def copy_params(stacked: Tensors, k: int) -> Tensors:
    """Copy k of stacked parameters (K, …) → one parameter set."""
    return {name: p[k] for name, p in stacked.items()}
