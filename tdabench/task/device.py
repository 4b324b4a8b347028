"""Where tensors live: `--device auto|cpu|cuda[:k]`, resolved once, and a context moved there.

`resolve_device` turns the user's word into a `torch.device` (auto: the first CUDA device when one
is present, else the CPU) and refuses a CUDA device that this machine does not have, before anything
is trained. `context_on` returns the same task context with its model, parameters, buffers, data
and checkpoints on that device; code that makes new tensors takes the device from the context
(`TaskContext.device`, the parameters' device), so nothing crosses to the host in a hot loop.

`context_as` does the same for precision (`--dtype`): the final model trained and cached in the
spec's dtype, cast to another floating dtype (parameters, buffers, real-valued data, checkpoints,
the probe); integer labels and token ids are unchanged. Code that makes new tensors takes the dtype
from the context too (`TaskContext.dtype`, the parameters' dtype). Which casts a task allows is
tdabench/precision.py's question.
"""

from __future__ import annotations

import copy
import dataclasses
import platform
import re
from typing import Callable

import torch
from torch import nn

from tdabench.errors import TdabenchError
from tdabench.task.context import Checkpoint, TaskContext
from tdabench.task.data import Dataset

DEVICE_FORMS = ("auto", "cpu", "cuda", "cuda:K")
_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_name(name: str) -> None:
    """A well-formed device word (whether it exists here is `resolve_device`'s question)."""
    if not (isinstance(name, str) and _PATTERN.match(name)):
        raise TdabenchError(f"device must be one of {', '.join(DEVICE_FORMS)}, got {name!r}")


def resolve_device(name: str) -> torch.device:
    """`auto` → cuda if available else cpu; `cuda[:k]` must exist on this machine."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise TdabenchError(f"device '{name}': no CUDA device is available here (torch "
                                f"{torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); "
                                "use --device cpu")
        if (device.index or 0) >= count:
            raise TdabenchError(f"device '{name}': this machine has {count} CUDA device(s), 0..{count - 1}")
    return device


def device_name(device: torch.device) -> str:
    """What a measurement ran on: a CUDA device's model name, else the processor's, else "cpu"."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"


def device_suffix(device: torch.device) -> str:
    """The tag of a result file measured on `device`: "" on the CPU, "_cuda" on a GPU."""
    return "" if device.type == "cpu" else f"_{device.type}"


Convert = Callable[[torch.Tensor], torch.Tensor]


def _map_splits(data: Dataset, convert: Convert) -> Dataset:
    """The same data set with `convert` applied to both splits' inputs and targets."""
    split = lambda s: dataclasses.replace(s, x=convert(s.x), y=convert(s.y))  # noqa: E731
    return dataclasses.replace(data, train=split(data.train), test=split(data.test))


def _map_context(ctx: TaskContext, convert: Convert, module_to: torch.device | torch.dtype, data: Dataset,
                 init_model: Callable[[], nn.Module] | None) -> TaskContext:
    """`ctx` with `convert` applied to its parameters, buffers, checkpoints, probe and interaction
    baseline, a copy of its
    model moved by `nn.Module.to(module_to)`, and the given data and model initialiser."""
    tensors = lambda named: {k: convert(v) for k, v in named.items()}  # noqa: E731
    checkpoints = tuple(Checkpoint(c.epoch, tensors(c.params), c.lr) for c in ctx.checkpoints)
    probe = ctx.probe and dataclasses.replace(ctx.probe, weight=convert(ctx.probe.weight),
                                              mean=convert(ctx.probe.mean), std=convert(ctx.probe.std))
    interaction = ctx.interaction
    if interaction is not None and interaction.masker.baseline is not None:
        masker = dataclasses.replace(interaction.masker, baseline=convert(interaction.masker.baseline))
        interaction = dataclasses.replace(interaction, masker=masker)
    return dataclasses.replace(ctx, model=copy.deepcopy(ctx.model).to(module_to), params=tensors(ctx.params),
                               buffers=tensors(ctx.buffers), data=data, checkpoints=checkpoints, probe=probe,
                               init_model=init_model, interaction=interaction)


def dataset_on(data: Dataset, device: torch.device) -> Dataset:
    """The same data set with both splits on `device` (itself when they are there already)."""
    if data.train.x.device == device and data.test.x.device == device:
        return data
    return _map_splits(data, lambda t: t.to(device))


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Real-valued tensors to `dtype`; integer ones (labels, token ids) as they are."""
    return tensor.to(dtype) if tensor.is_floating_point() else tensor


def dataset_as(data: Dataset, dtype: torch.dtype) -> Dataset:
    """The same data set with its real-valued inputs and targets in `dtype`."""
    return _map_splits(data, lambda t: _cast(t, dtype))


def context_as(ctx: TaskContext, dtype: torch.dtype) -> TaskContext:
    """The same context in floating `dtype` (itself when it is in it already): the same final model,
    rounded to `dtype`, not one trained in it. `init_model` builds its models in `dtype` too."""
    if ctx.dtype == dtype:
        return ctx
    init = ctx.init_model and (lambda: ctx.init_model().to(dtype))
    return _map_context(ctx, lambda t: _cast(t, dtype), dtype, dataset_as(ctx.data, dtype), init)


def context_on(ctx: TaskContext, device: torch.device) -> TaskContext:
    """The same context on `device` (itself when it is there already)."""
    if ctx.device == device:
        return ctx
    return _map_context(ctx, lambda t: t.to(device), device, dataset_on(ctx.data, device), ctx.init_model)
