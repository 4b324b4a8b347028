"""Recognising Linear stacks: an `nn.Sequential` of an optional leading `Flatten`, `Linear` layers
each optionally followed by `ReLU` or `Tanh`, the last layer without an activation, every parameter
attributed. The fast gold standard (truths/linear_stack.py) and the structured Hessian
(estimators/mlp_hessian.py) take such models layer by layer; anything else takes the generic path.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

ACTIVATION_TYPES = (nn.ReLU, nn.Tanh)


@dataclass(frozen=True)
class Layer:
    """One Linear layer (`weight`, `bias`: parameter names; bias may be None) and the activation
    that follows it ('relu', 'tanh' or None)."""

    weight: str
    bias: str | None
    activation: str | None


def linear_layers(model: nn.Module, names: set[str]) -> tuple[Layer, ...] | None:
    """The model as a Linear stack, or None when it is not one (or not every parameter is in
    `names`, the attributed parameters): then the generic vmapped path is used."""
    if not isinstance(model, nn.Sequential):
        return None
    layers: list[Layer] = []
    owned: set[str] = set()
    for index, (key, module) in enumerate(model.named_children()):
        if isinstance(module, nn.Flatten) and index == 0:
            continue
        if isinstance(module, nn.Linear):
            bias = f"{key}.bias" if module.bias is not None else None
            layers.append(Layer(f"{key}.weight", bias, None))
            owned |= {f"{key}.weight"} | ({bias} if bias else set())
        elif isinstance(module, ACTIVATION_TYPES) and layers and layers[-1].activation is None:
            kind = "relu" if isinstance(module, nn.ReLU) else "tanh"
            layers[-1] = Layer(layers[-1].weight, layers[-1].bias, kind)
        else:
            return None
    all_params = {k for k, _ in model.named_parameters()}
    if not layers or owned != all_params or owned != names or layers[-1].activation is not None:
        return None
    return tuple(layers)
