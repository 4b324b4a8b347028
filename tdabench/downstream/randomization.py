"""The model-randomisation sanity check (Adebayo et al. 2018; Hanawa et al. 2021 for TDA).

An attribution that explains the trained model must change when the model's parameters are replaced
by random ones. The same estimator (same parameters) is fitted twice: on the final model θᶠ and on
a copy whose attributed parameters are re-initialised, θ⁰_s (every module's `reset_parameters`,
the initialisation the built-in models use, under seed s — not the spec's `init_seed`). For each
test point j the check reports Spearman ρ_j between row j of the two score matrices (n_test,
n_train), and their mean with its bootstrap interval. ρ ≈ 1 fails the check: the scores barely
depend on what the model learned. The data, target and loss are unchanged; only θ differs.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Sequence

import numpy as np
import torch

from tdabench.downstream.metrics import row_spearman
from tdabench.estimators.base import Estimator, clone
from tdabench.scoring.metrics import Summary
from tdabench.task.context import TaskContext

RANDOMIZATION_SEED = 1  # default seed of the re-initialisation (the final models' init_seed is 0)


def randomized_params(ctx: TaskContext, seed: int) -> dict[str, torch.Tensor]:
    """The attributed parameters of a fresh initialisation: a copy of the model whose modules are
    `reset_parameters()`-ed under `torch.manual_seed(seed)` (global RNG restored afterwards). A
    module without `reset_parameters` keeps its values; frozen parameters stay as in the context."""
    model = copy.deepcopy(ctx.model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    named = dict(model.named_parameters())
    return {k: named[k].detach().to(dtype=v.dtype, device=v.device).clone() for k, v in ctx.params.items()}


def randomized_context(ctx: TaskContext, seed: int = RANDOMIZATION_SEED) -> TaskContext:
    """The context with θᶠ replaced by `randomized_params(ctx, seed)`; checkpoints are dropped (they
    belong to the trained model) and the memo starts empty."""
    return dataclasses.replace(ctx, params=randomized_params(ctx, seed), checkpoints=())


def model_randomization(estimator: Estimator, ctx: TaskContext, test_idx: Sequence[int] | np.ndarray,
                        train_idx: Sequence[int] | np.ndarray, seed: int = RANDOMIZATION_SEED,
                        trained: np.ndarray | None = None) -> tuple[Summary, np.ndarray]:
    """(summary of ρ_j over test points, ρ_j per test point (NaN where undefined)): Spearman between
    the scores on the final model (`trained`, if the caller has them, else computed by fitting
    `estimator` on `ctx`) and those of a clone of `estimator` on `randomized_context`."""
    if trained is None:
        trained = estimator.fit(ctx).score(test_idx, train_idx)
    randomized = clone(estimator).fit(randomized_context(ctx, seed)).score(test_idx, train_idx)
    per_row = np.array([row_spearman(a[None], b[None]).mean for a, b in zip(trained, randomized)], dtype=float)
    return row_spearman(trained, randomized), per_row
