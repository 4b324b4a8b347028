"""Which layers a concept is probed on, and their activations in one forward pass.

Eligible layers (the rule): the modules whose outputs are the model's activations along its forward
path, in forward order —

- the model's direct children (a Sequential MLP/CNN: every layer; a transformer: embeddings,
  encoder stack, classifier) that the forward pass runs,
- where a child is a container (`nn.ModuleList` or `nn.Sequential`), its items instead (each encoder
  layer of a transformer); where a child does not run itself, its children that run (recursively:
  a pooler whose dense layer and activation the forward pass calls one by one),
- leaving out `nn.Dropout` (at evaluation the identity of its input) and `nn.Flatten` (a reshaping:
  the same probe as the layer before it).

So digits-mlp → 0 (Linear), 1 (Tanh), 2 (Linear: the logits); mnist-cnn → 0 Conv, 1 ReLU, 2 MaxPool,
3 Conv, 4 ReLU, 5 MaxPool, 7 Linear; rt-bert-tiny → embeddings, layers.0, layers.1, classifier.
Modules the forward pass does not run never count (a frozen MiniLM's encoder layers are
precomputed features). Any submodule (`probe.probe_layers`) that runs can be asked for by name
instead (`--layers`). Activations are pooled as the probe target pools them (`probe.pooled`: a token sequence → its first token).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call

from tdabench.errors import TdabenchError
from tdabench.task.probe import check_probe_layer, pooled

Tensors = dict[str, torch.Tensor]

SKIPPED = (nn.Dropout, nn.Flatten)  # the identity at evaluation / a reshaping of the layer before
CONTAINERS = (nn.ModuleList, nn.Sequential)


def eligible_layers(model: nn.Module, ran: Sequence[str] | None = None) -> list[str]:
    """The eligible layers of `model` (the rule in the module docstring), in the order of the module
    tree. `ran`: the modules the forward pass runs (`run_modules`); a child that does not run itself
    is replaced by its children that do (a pooler whose dense layer and activation the forward pass
    calls directly). None: every child counts as run."""
    def pick(name: str, module: nn.Module, top: bool) -> list[str]:
        if isinstance(module, SKIPPED):
            return []
        if (top and isinstance(module, CONTAINERS) and len(module)) or (ran is not None and name not in ran):
            return [n for sub, child in module.named_children() for n in pick(f"{name}.{sub}", child, False)]
        return [name]
    return [n for name, child in model.named_children() for n in pick(name, child, True)]


def resolve_layers(model: nn.Module, layers: Sequence[str] | None, x: torch.Tensor) -> list[str]:
    """`layers` checked against the model's submodules (an unknown one raises, listing the valid
    ones) and against the forward pass on the inputs x (a module the forward pass does not run, such
    as a frozen layer whose outputs are precomputed, raises), or, when None, the eligible layers
    that the forward pass runs."""
    if layers is None:
        return eligible_layers(model, run_modules(model, x))
    for layer in layers:
        check_probe_layer(model, layer)
        if layer not in run_modules(model, x):
            raise TdabenchError(f"layer '{layer}' is not run by the model's forward pass; layers it runs: "
                                f"{', '.join(run_modules(model, x))}")
    return list(layers)


def run_modules(model: nn.Module, x: torch.Tensor) -> list[str]:
    """The named submodules whose forward hook fires when the model runs on the inputs x."""
    ran: list[str] = []
    hooks = [module.register_forward_hook(lambda mod, inp, out, name=name: ran.append(name))
             for name, module in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return list(dict.fromkeys(ran))


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
