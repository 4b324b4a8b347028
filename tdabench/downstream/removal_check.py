"""The top-k removal check of the downstream flow (the method and its conventions: brittleness.py).

`removal_setup` fixes what every estimator shares — the correctly classified test points among the
chosen ones, the horizon in optimizer steps, and the random-removal control's flips — and
`estimator_flips` removes each test point's k most negative margin-score instances for one estimator.
With `options.retrain` each flips entry also holds `retrained`: the same removals, retrained from
scratch with the final model's recipe instead of further-trained.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tdabench.downstream.brittleness import random_order, removal_flips, removal_order, retrained_flips
from tdabench.downstream.options import DownstreamOptions
from tdabench.errors import TdabenchError
from tdabench.estimators.base import Estimator
from tdabench.task.context import TaskContext


def horizon_steps(ctx: TaskContext, horizon: int | None) -> tuple[int, int]:
    """(horizon in the spec's unit (None: its longest), the same in optimizer steps of further training:
    horizon · ⌈n / B⌉ for epochs)."""
    gold = ctx.spec.gold_standard
    horizon = horizon or gold.horizons[-1]
    per_epoch = -(-len(ctx.train) // gold.further_training.batch_size)
    return horizon, horizon * per_epoch if gold.horizon_unit == "epoch" else horizon


def correctly_classified(ctx: TaskContext, test_idx: np.ndarray) -> np.ndarray:
    """The test points of `test_idx` whose final-model prediction is their label (in that order)."""
    predicted = ctx.outputs(ctx.params, ctx.test.x[test_idx]).argmax(-1).cpu().numpy()
    correct = test_idx[predicted == ctx.test.y[test_idx].cpu().numpy()]
    if len(correct) == 0:
        raise TdabenchError("brittleness: the final model classifies none of the chosen test points correctly")
    return correct


def removal_setup(ctx: TaskContext, test_idx: np.ndarray, options: DownstreamOptions) -> dict[str, Any]:
    """The brittleness entry of downstream.json without its estimators: ks, horizon, steps, the
    correctly classified test points and the random control's flips (seeded by `options.seed`)."""
    correct = correctly_classified(ctx, test_idx)
    horizon, steps = horizon_steps(ctx, options.horizon)
    gold = ctx.spec.gold_standard
    orders = random_order(len(correct), len(ctx.train), options.seed)
    control = removal_flips(ctx, orders, correct, options.ks, gold.further_training, steps, options.seed)
    return {"ks": list(options.ks), "horizon": horizon, "horizon_unit": gold.horizon_unit, "steps": steps,
            "test_idx": [int(i) for i in correct], "random": _with_retraining(control.to_json(), ctx, orders, correct,
                                                                              options),
            "estimators": {}}


def _with_retraining(flips: dict[str, Any], ctx: TaskContext, orders: np.ndarray, correct: np.ndarray,
                     options: DownstreamOptions) -> dict[str, Any]:
    """`flips`, with `retrained` (the same orders, retrained from scratch, seed 0) when asked for."""
    if not options.retrain:
        return flips
    return {**flips, "retrained": retrained_flips(ctx, orders, correct, options.ks).to_json()}


def estimator_flips(estimator: Estimator, ctx: TaskContext, setup: dict[str, Any],
                    options: DownstreamOptions) -> dict[str, Any]:
    """Flips of removing each test point's k most negative margin scores (estimator fitted with the
    margin target), further-trained like the control."""
    correct = np.asarray(setup["test_idx"])
    scores = estimator.fit(ctx.with_target("margin")).score(correct, np.arange(len(ctx.train)))
    orders = removal_order(scores)
    flips = removal_flips(ctx, orders, correct, options.ks, ctx.spec.gold_standard.further_training,
                          setup["steps"], options.seed)
    return _with_retraining(flips.to_json(), ctx, orders, correct, options)
