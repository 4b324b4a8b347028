"""Small float64 tasks for the gold-standard tests, built from in-memory specs."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from tdabench.task import TaskContext, build_context, parse_spec
from tdabench.task.models import build_model
from tdabench.task.objective import l2_penalty, per_example_loss
from tdabench.task.optim import torch_optimizer
from tdabench.task.schedule import TRAINING_STREAM, epoch_permutation

ROOT = Path(__file__).resolve().parents[1]


def spec_dict(task: str = "breast-cancer-mlp", **overrides: Any) -> dict:
    """A built-in spec as a dict, with dotted-path overrides like {'model.hidden': [8]}."""
    raw = yaml.safe_load((ROOT / "tasks" / f"{task}.yaml").read_text())
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = copy.deepcopy(value)
    return raw


def in_cache(context: TaskContext, folder: Path) -> TaskContext:
    """The same context, caching its ground truths under `folder`."""
    return dataclasses.replace(context, cache_dir=folder)


def small_context(cache: Path, task: str = "breast-cancer-mlp", **overrides: Any) -> TaskContext:
    defaults = {"model.hidden": [8], "training.epochs": 3, "training.checkpoint_epochs": [],
                "data.max_train": 40, "data.max_test": 12}
    return build_context(parse_spec(spec_dict(task, **(defaults | overrides))), cache)


SMALL_COMPARE = {"model.hidden": [8], "training.epochs": 5, "training.checkpoint_epochs": [2, 5],
                 "data.max_train": 40, "data.max_test": 12,
                 "gold_standard.n_train_evaluated": 10, "gold_standard.n_test": 8,
                 "gold_standard.seeds": 2, "gold_standard.horizons": [1, 3]}


def write_small_spec(folder: Path, name: str = "small-bc", **overrides: Any) -> Path:
    """A small breast-cancer MLP spec file for end-to-end command-line tests."""
    raw = spec_dict(**(SMALL_COMPARE | overrides))
    raw["name"] = name
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def sequential_subset_model(ctx: TaskContext, keep_row: np.ndarray, seed: int) -> torch.nn.Module:
    """The plain reference of retraining on a subset: one model trained from a fresh initialisation
    by torch.optim with the final model's recipe, on the shared order restricted to the kept
    instances (`keep_row`, bool (n,)), batch mean + l2."""
    recipe, loss_fn = ctx.spec.training, per_example_loss(ctx.spec.objective)
    model = build_model(ctx.spec.model, ctx.train.x.shape[1], ctx.data.n_outputs, ctx.dtype)
    optimizer = torch_optimizer(recipe, model.parameters())
    for epoch in range(recipe.epochs):
        order = epoch_permutation(len(ctx.train), recipe.seed + seed, epoch, TRAINING_STREAM)
        order = order[keep_row[order]]
        for start in range(0, len(order), recipe.batch_size):
            idx = torch.as_tensor(order[start:start + recipe.batch_size])
            loss = loss_fn(model(ctx.train.x[idx]), ctx.train.y[idx]).mean()
            loss = loss + l2_penalty(dict(model.named_parameters()), ctx.l2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model
