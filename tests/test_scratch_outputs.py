"""Retraining from scratch with model outputs (truths/scratch.py `scratch_outputs`) and top-k removal
with retraining (downstream/brittleness.py `retrained_flips`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tdabench.downstream.brittleness import random_order, retrained_flips
from tdabench.truths.retraining import random_subsets
from tdabench.truths.scratch import scratch_outputs, train_from_scratch

from gold_helpers import sequential_subset_model, small_context

TRAINING = {"training.optimizer": "sgd", "training.lr": 0.1, "training.momentum": 0.9, "training.batch_size": 8,
            "training.epochs": 4, "training.seed": 2}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return small_context(tmp_path_factory.mktemp("scratch"), **TRAINING)


def _plain_loop(ctx, keep_row: np.ndarray, seed: int, test_idx) -> np.ndarray:
    """One model, torch.optim, the training order restricted to the kept instances, batch mean + l2."""
    model = sequential_subset_model(ctx, keep_row, seed)
    with torch.no_grad():
        return model(ctx.test.x[torch.as_tensor(test_idx)]).numpy()


def test_outputs_equal_a_plain_sequential_loop_in_float64(ctx):
    assert ctx.dtype == torch.float64
    keep = np.concatenate([np.ones((1, 40), bool), random_subsets(40, 3, 0.5, seed=1)])
    keep[1, :5] = False  # a set removal next to the random halves
    test_idx = (0, 3, 7, 11)
    ours = scratch_outputs(ctx, keep, 1, test_idx, chunk_size=3)
    assert ours.shape == (4, 4, ctx.data.n_outputs) and ours.dtype == np.float64
    for row in range(len(keep)):
        np.testing.assert_allclose(ours[row], _plain_loop(ctx, keep[row], 1, test_idx), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ours, scratch_outputs(ctx, keep, 1, test_idx), rtol=1e-12, atol=1e-13)  # chunks
    targets = train_from_scratch(ctx, keep, 1, test_idx)
    y = ctx.test.y[list(test_idx)].numpy()
    own_loss = -torch.log_softmax(torch.as_tensor(ours), -1).numpy()[:, np.arange(4), y]
    np.testing.assert_allclose(targets, own_loss, rtol=1e-10)  # the loss target read from the outputs


def test_seed_zero_on_all_of_the_data_reproduces_the_final_model(ctx):
    ours = scratch_outputs(ctx, np.ones((1, 40), bool), 0, range(12))[0]
    with torch.no_grad():
        final = ctx.outputs(ctx.params, ctx.test.x).numpy()
    np.testing.assert_allclose(ours, final, rtol=1e-10, atol=1e-12)


def test_retraining_without_a_whole_class_flips_every_test_point_of_it(ctx):
    y_train = ctx.train.y.numpy()
    predicted = ctx.outputs(ctx.params, ctx.test.x).argmax(-1)
    test_idx = np.flatnonzero(((predicted == ctx.test.y) & (ctx.test.y == 0)).numpy())
    assert len(test_idx) >= 2
    support = int((y_train == 0).sum())
    orders = np.stack([np.argsort(y_train != 0, kind="stable") for _ in test_idx])  # class 0 first
    flips = retrained_flips(ctx, orders, test_idx, (support,))
    assert flips.flipped.all()  # trained without any image of class 0, nothing is predicted as 0
    control = retrained_flips(ctx, random_order(len(test_idx), 40, 0), test_idx, (1,))
    assert control.flipped.shape == (1, len(test_idx))
