"""A task handed over in memory by the Python API (tdabench.api): its spec plus what a spec file
cannot hold — the data tensors, the user's final model, a loss callable, a model factory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from tdabench.task.data import Dataset
from tdabench.task.objective import OutputFn
from tdabench.task.spec import TaskSpec


@dataclass(frozen=True)
class UserTask:
    """`spec` (data.source 'api:memory', model kind 'module'), `data`, and optionally the final
    model (`final_model`, used as it is), a per-example loss `loss_fn(outputs, y) -> (B,)` (spec
    loss 'custom') and `init_model()` (a freshly initialised model: retraining starts there, and
    without `final_model` tdabench trains it with `spec.training`)."""

    spec: TaskSpec
    data: Dataset
    final_model: nn.Module | None = None
    loss_fn: OutputFn | None = None
    init_model: Callable[[], nn.Module] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def context_args(self) -> dict:
        """The keyword arguments of `build_context` besides the spec."""
        return {"data": self.data, "final_model": self.final_model, "loss_fn": self.loss_fn,
                "init_model": self.init_model}
