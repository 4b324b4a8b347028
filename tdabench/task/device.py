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
import re

import torch

from tdabench.errors import TdabenchError
from tdabench.task.context import Checkpoint, TaskContext
from tdabench.task.data import Dataset, Split

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


def _split_on(split: Split, device: torch.device) -> Split:
    return dataclasses.replace(split, x=split.x.to(device), y=split.y.to(device))


def dataset_on(data: Dataset, device: torch.device) -> Dataset:
    """The same data set with both splits on `device` (itself when they are there already)."""
    if data.train.x.device == device and data.test.x.device == device:
        return data
    return dataclasses.replace(data, train=_split_on(data.train, device), test=_split_on(data.test, device))


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Real-valued tensors to `dtype`; integer ones (labels, token ids) as they are."""
    return tensor.to(dtype) if tensor.is_floating_point() else tensor


def dataset_as(data: Dataset, dtype: torch.dtype) -> Dataset:
    """The same data set with its real-valued inputs and targets in `dtype`."""
    cast = lambda split: dataclasses.replace(split, x=_cast(split.x, dtype), y=_cast(split.y, dtype))  # noqa: E731
    return dataclasses.replace(data, train=cast(data.train), test=cast(data.test))


def context_as(ctx: TaskContext, dtype: torch.dtype) -> TaskContext:
    """The same context in floating `dtype` (itself when it is in it already): the same final model,
    rounded to `dtype`, not one trained in it. `init_model` builds its models in `dtype` too."""
    if ctx.dtype == dtype:
        return ctx
    cast = lambda tensors: {k: _cast(v, dtype) for k, v in tensors.items()}  # noqa: E731
    checkpoints = tuple(Checkpoint(c.epoch, cast(c.params), c.lr) for c in ctx.checkpoints)
    probe = ctx.probe and dataclasses.replace(ctx.probe, weight=ctx.probe.weight.to(dtype),
                                              mean=ctx.probe.mean.to(dtype), std=ctx.probe.std.to(dtype))
    init = ctx.init_model and (lambda: ctx.init_model().to(dtype))
    return dataclasses.replace(ctx, model=copy.deepcopy(ctx.model).to(dtype), params=cast(ctx.params),
                               buffers=cast(ctx.buffers), data=dataset_as(ctx.data, dtype),
                               checkpoints=checkpoints, probe=probe, init_model=init)


def context_on(ctx: TaskContext, device: torch.device) -> TaskContext:
    """The same context on `device` (itself when it is there already)."""
    if ctx.device == device:
        return ctx
    model = copy.deepcopy(ctx.model).to(device)
    data = dataset_on(ctx.data, device)
    move = lambda tensors: {k: v.to(device) for k, v in tensors.items()}
    checkpoints = tuple(Checkpoint(c.epoch, move(c.params), c.lr) for c in ctx.checkpoints)
    probe = ctx.probe and dataclasses.replace(ctx.probe, weight=ctx.probe.weight.to(device),
                                              mean=ctx.probe.mean.to(device), std=ctx.probe.std.to(device))
    return dataclasses.replace(ctx, model=model, params=move(ctx.params), buffers=move(ctx.buffers),
                               data=data, checkpoints=checkpoints, probe=probe)
