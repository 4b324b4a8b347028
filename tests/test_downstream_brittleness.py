"""Top-k removal (tdabench/downstream/brittleness.py) on a tiny task."""

from __future__ import annotations

import numpy as np
import pytest

from tdabench.downstream.brittleness import Flips, keep_masks, random_order, removal_flips, removal_order
from tdabench.task.spec import OptimizerSpec

from gold_helpers import small_context

RECIPE = OptimizerSpec(lr=0.5, batch_size=8)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return small_context(tmp_path_factory.mktemp("brittle"), **{"training.epochs": 10})


def test_removal_order_takes_the_most_negative_margin_scores_first():
    scores = np.array([[0.5, -2.0, 0.0, -1.0], [3.0, 2.0, 1.0, 1.0]])
    np.testing.assert_array_equal(removal_order(scores), [[1, 3, 2, 0], [2, 3, 1, 0]])
    keep = keep_masks(removal_order(scores), (1, 2))
    np.testing.assert_array_equal(keep, [[1, 0, 1, 1], [1, 0, 1, 0], [1, 1, 0, 1], [1, 1, 0, 0]])
    orders = random_order(3, 10, seed=0)
    assert all(sorted(row) == list(range(10)) for row in orders) and not np.array_equal(orders[0], orders[1])
    np.testing.assert_array_equal(orders, random_order(3, 10, seed=0))


def test_flips_summaries():
    flips = Flips((1, 5, 10), np.array([[0, 1, 0], [0, 1, 1], [1, 1, 0]], dtype=bool))
    assert flips.share() == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert flips.smallest_k() == [10, 1, 5]
    assert Flips((1,), np.zeros((1, 2), bool)).smallest_k() == [None, None]


def test_removing_the_whole_class_support_flips_predictions_and_random_removal_flips_fewer(ctx):
    y_train = ctx.train.y.numpy()
    predicted = ctx.outputs(ctx.params, ctx.test.x).argmax(-1)
    test_idx = np.flatnonzero(((predicted == ctx.test.y) & (ctx.test.y == 0)).numpy())
    support = int((y_train == 0).sum())  # every class-0 training instance
    orders = np.stack([np.argsort(y_train != 0, kind="stable") for _ in test_idx])
    assert set(orders[0, :support]) == set(np.flatnonzero(y_train == 0))
    class_flips = removal_flips(ctx, orders, test_idx, (support,), RECIPE, steps=200)
    random_flips = removal_flips(ctx, random_order(len(test_idx), len(y_train), 0), test_idx, (support,),
                                 RECIPE, steps=200)
    assert class_flips.flipped.sum() >= 3
    assert random_flips.flipped.sum() < class_flips.flipped.sum()
    nothing = removal_flips(ctx, orders, test_idx, (1,), RECIPE, steps=1)
    assert not nothing.flipped.any()  # one step without one instance changes no prediction here
