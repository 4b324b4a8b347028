"""Model builders. Parameters are initialised from the spec's `init_seed` without touching global RNG.

`build_model(spec, input_shape, n_outputs, dtype, vocab_size)`: `input_shape` is that of one input
(an int for flat features). Kinds: mlp, cnn (images), bert (token ids, trained from scratch) and
minilm (pretrained; its input is the output of its frozen layers, see `text_models.minilm_features`),
and the user's: factory ('package.module:function') and hf (a local Hugging Face classifier), see
user_models.py. Kind 'module' is a model handed to the Python API; a spec cannot build it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tdabench.errors import TdabenchError
from tdabench.task.spec import ModelSpec
from tdabench.task.user_models import factory_model, hf_model

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def _linear_stack(widths: list[int], activation: str) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(w_in, w_out))
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return layers


def _mlp(spec: ModelSpec, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """MLP `n_inputs → hidden… → n_outputs`; with no hidden layers, a linear model."""
    layers = _linear_stack([math.prod(input_shape), *spec.hidden, n_outputs], spec.activation)
    return nn.Sequential(*([nn.Flatten()] if len(input_shape) > 1 else []), *layers)


def _cnn(spec: ModelSpec, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """[5×5 conv → activation → 2×2 max-pool] per entry of `channels`, then an MLP head."""
    blocks: list[nn.Module] = []
    c_in, (h, w) = input_shape[0], input_shape[1:]
    for c_out in spec.channels:
        blocks += [nn.Conv2d(c_in, c_out, 5), ACTIVATIONS[spec.activation](), nn.MaxPool2d(2)]
        c_in, h, w = c_out, (h - 4) // 2, (w - 4) // 2
    head = _linear_stack([c_in * h * w, *spec.hidden, n_outputs], spec.activation)
    return nn.Sequential(*blocks, nn.Flatten(), *head)


def _bert(spec: ModelSpec, input_shape: tuple[int, ...], n_outputs: int, vocab_size: int | None) -> nn.Module:
    from tdabench.task.text_models import BertClassifier, bert_config

    if vocab_size is None:
        raise ValueError("a bert model needs the tokenizer's vocabulary size")
    return BertClassifier(bert_config(vocab_size, spec.width, spec.layers, spec.heads, input_shape[0]), n_outputs)


def _minilm(spec: ModelSpec, n_outputs: int) -> nn.Module:
    from tdabench.task.text_models import MiniLMTail, load_minilm

    return MiniLMTail(load_minilm(), spec.trainable_layers, n_outputs, spec.init_seed)


def build_model(spec: ModelSpec, input_shape: int | tuple[int, ...], n_outputs: int, dtype: torch.dtype,
                vocab_size: int | None = None) -> nn.Module:
    """The spec's architecture for inputs of shape `input_shape` (one example), in `dtype`."""
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(int(s) for s in input_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.init_seed)
        if spec.kind == "mlp":
            model = _mlp(spec, shape, n_outputs)
        elif spec.kind == "cnn":
            model = _cnn(spec, shape, n_outputs)
        elif spec.kind == "bert":
            model = _bert(spec, shape, n_outputs, vocab_size)
        elif spec.kind == "minilm":
            model = _minilm(spec, n_outputs)
        elif spec.kind == "factory":
            model = factory_model(spec)
        elif spec.kind == "hf":
            model = hf_model(spec, n_outputs)
        else:
            raise TdabenchError("model kind 'module' is the model given to the Python API (tdabench.api.Task); "
                                "it cannot be built again here")
    return model.to(dtype)


def model_for_data(spec: ModelSpec, data, dtype: torch.dtype) -> nn.Module:
    """`build_model` for a loaded `Dataset` (input shape, outputs and vocabulary taken from it)."""
    return build_model(spec, tuple(data.train.x.shape[1:]), data.n_outputs, dtype, data.vocab_size)
