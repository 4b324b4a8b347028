"""Final models trained from other seeds: the members of an ensemble (TRAK) or of a seed study.

Member 0 is the task's final model; member m > 0 is trained by the same recipe from initialisation
seed `model.init_seed + m` with data-order seed `training.seed + m`, and cached like the final model
(its spec, and so its cache key, differs only in those two seeds).
"""

from __future__ import annotations

import dataclasses

import torch

from tdabench.task.context import TaskContext, build_context
from tdabench.task.device import context_on, dataset_on
from tdabench.task.spec import TaskSpec


def member_spec(spec: TaskSpec, member: int) -> TaskSpec:
    """The spec of ensemble member `member` (0 = the spec itself)."""
    if member < 0:
        raise ValueError(f"member must be >= 0, got {member}")
    model = dataclasses.replace(spec.model, init_seed=spec.model.init_seed + member)
    training = dataclasses.replace(spec.training, seed=spec.training.seed + member)
    return dataclasses.replace(spec, model=model, training=training)


def member_context(context: TaskContext, member: int) -> TaskContext:
    """The context of member `member`: same data and target, its own final model (cached), on the
    context's device."""
    if member == 0:
        return context
    cpu = torch.device("cpu")  # final models are trained (and cached) on the CPU, then moved
    built = build_context(member_spec(context.spec, member), context.cache_dir, context.target_name,
                          dataset_on(context.data, cpu))
    return context_on(built, context.device)
