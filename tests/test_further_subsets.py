"""Further training with a set of instances removed per copy (truths/further/subsets.py) against a
plain one-model loop, the single-removal gold standard and itself in chunks."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tdabench.task.objective import l2_penalty
from tdabench.task.optim import torch_optimizer
from tdabench.task.schedule import FURTHER_TRAINING_STREAM, epoch_permutation
from tdabench.task.spec import OptimizerSpec
from tdabench.truths.further import GoldConfig, paired_differences
from tdabench.truths.further.subsets import further_train_subsets

from gold_helpers import small_context

RECIPE = OptimizerSpec(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=8)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return small_context(tmp_path_factory.mktemp("subsets"), **{"objective.l2": 0.01})


def _plain_loop(ctx, recipe, keep_row, seed, steps, eval_idx):
    """One nn.Module, torch.optim, the kept instances of each epoch's permutation in batches of B
    on the reference clock of ceil(n / B) steps per epoch (an empty batch: no update)."""
    model = copy.deepcopy(ctx.model)
    model.load_state_dict(ctx.params, strict=False)
    optimizer = torch_optimizer(recipe, [p for p in model.parameters() if p.requires_grad])
    n, b = len(ctx.train), recipe.batch_size
    out, step, epoch = [], 0, 0
    while step < steps[-1]:
        perm = epoch_permutation(n, seed, epoch, FURTHER_TRAINING_STREAM)
        kept = perm[keep_row[perm]]
        for s in range(-(-n // b)):
            batch = torch.as_tensor(kept[s * b:(s + 1) * b])
            if len(batch):
                loss = ctx.loss(dict(model.named_parameters()), ctx.train.x[batch], ctx.train.y[batch]).mean()
                loss = loss + l2_penalty(dict(model.named_parameters()), ctx.l2)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            step += 1
            if step in steps:
                with torch.no_grad():
                    out.append(model(ctx.test.x[eval_idx]).double().numpy())
            if step == steps[-1]:
                break
        epoch += 1
    return np.stack(out)


def _keep(n, removed_sets):
    keep = np.ones((len(removed_sets), n), dtype=bool)
    for row, removed in enumerate(removed_sets):
        keep[row, list(removed)] = False
    return keep


def test_multi_removal_equals_a_plain_sequential_loop(ctx):
    n, steps, eval_idx = len(ctx.train), [3, 7, 12], [0, 4, 9]
    removed_sets = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [0], list(range(0, 40, 2))]  # 11, 1 and 20 removed
    keep = _keep(n, removed_sets)
    reference, outputs = further_train_subsets(ctx, RECIPE, keep, seed=3, steps=steps, eval_idx=eval_idx)
    np.testing.assert_allclose(reference, _plain_loop(ctx, RECIPE, np.ones(n, bool), 3, steps, eval_idx),
                               rtol=1e-9, atol=1e-12)
    for row in range(len(keep)):
        want = _plain_loop(ctx, RECIPE, keep[row], 3, steps, eval_idx)
        np.testing.assert_allclose(outputs[:, row], want, rtol=1e-9, atol=1e-12)
    assert np.abs(outputs[:, 2] - reference).max() > 1e-3  # removing half the data changed the model


def test_one_removed_instance_is_the_removal_gold_standard(ctx):
    train_idx, test_idx = (2, 17, 30), (1, 5)
    cfg = GoldConfig(RECIPE, train_idx, test_idx, (1, 2), n_train=len(ctx.train))
    diff, _ = paired_differences(ctx, cfg, seed=0)  # target: the loss
    reference, outputs = further_train_subsets(ctx, RECIPE, _keep(len(ctx.train), [[i] for i in train_idx]), 0,
                                               cfg.steps, test_idx)
    y = ctx.test.y[list(test_idx)]
    loss = lambda o: ctx.output_loss(torch.as_tensor(o), y).numpy()  # noqa: E731
    for h in range(2):
        got = np.stack([loss(outputs[h, k]) - loss(reference[h]) for k in range(3)], axis=1)
        np.testing.assert_allclose(got, diff[h], rtol=1e-8, atol=1e-13)


def test_chunking_changes_no_number(ctx):
    keep = _keep(len(ctx.train), [[0, 1], [5], [7, 8, 9], [20]])
    whole = further_train_subsets(ctx, RECIPE, keep, 1, [5], [0, 1])
    chunked = further_train_subsets(ctx, RECIPE, keep, 1, [5], [0, 1], chunk_size=3)
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
