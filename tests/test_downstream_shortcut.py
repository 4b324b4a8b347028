"""Shortcut detection (tdabench/downstream/shortcut.py, shortcut_check.py): known answers by construction."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tdabench.downstream.options import DownstreamOptions
from tdabench.downstream.shortcut import patched, patched_test_context, shortcut_detection, shortcut_spec
from tdabench.downstream.shortcut_check import shortcut_check, shortcut_test_points
from tdabench.errors import TdabenchError
from tdabench.estimators.base import Estimator
from tdabench.registry import make_estimator
from tdabench.selection import EstimatorRequest
from tdabench.task import build_context, find_spec


class RandomScores(Estimator):
    """A stub that knows nothing: independent standard normal scores (seeded)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _score(self, test_idx: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
        return np.random.default_rng(self.seed).standard_normal((len(test_idx), len(train_idx)))


def test_scores_that_put_the_planted_images_first_find_them_all():
    planted = np.zeros(50, dtype=bool)
    planted[[3, 10, 11, 40, 44]] = True
    scores = np.where(planted, 1.0, 0.0)[None] + np.random.default_rng(0).uniform(0, 0.5, (4, 50))
    found = shortcut_detection(scores, planted, k=5)
    assert found.share == 1.0 and found.auc.value == 1.0 and found.chance == pytest.approx(0.1)
    half = shortcut_detection(scores, planted, k=10)
    assert half.share == 0.5  # the 5 planted ones are half of every top 10
    reversed_ = shortcut_detection(-scores, planted, k=5)
    assert reversed_.share == 0.0 and reversed_.auc.value == 0.0  # the largest end is the one counted


def test_random_scores_are_at_chance_within_their_intervals():
    rng = np.random.default_rng(1)
    planted = np.zeros(300, dtype=bool)
    planted[rng.choice(300, 60, replace=False)] = True
    found = shortcut_detection(rng.standard_normal((200, 300)), planted, k=10)
    assert found.share_low <= 0.2 <= found.share_high and abs(found.share - 0.2) < 0.03
    assert found.auc.low <= 0.5 <= found.auc.high


@pytest.fixture(scope="module")
def sctx(tmp_path_factory):
    small = find_spec("digits-mlp@small")  # 200 training digits; 200 test digits, about 20 of each class
    small = dataclasses.replace(small, data=dataclasses.replace(small.data, max_test=200))
    spec = shortcut_spec(small, 0.3, cls=0, seed=0)
    return build_context(spec, tmp_path_factory.mktemp("shortcut"))


def test_the_variant_is_named_hashed_and_refused_on_tabular_tasks():
    spec = find_spec("digits-mlp")
    planted = shortcut_spec(spec, 0.3, cls=4)
    assert planted.name == "digits-mlp@shortcut" and planted.spec_hash != spec.spec_hash
    assert planted.data.shortcut_class == 4 and shortcut_spec(planted) is planted
    with pytest.raises(TdabenchError, match="image classification"):
        shortcut_spec(find_spec("breast-cancer-mlp"))


def test_patched_test_images_carry_the_training_patch_and_nothing_else_changes(sctx):
    idx = shortcut_test_points(sctx, DownstreamOptions(task="x", n_test=5))
    assert len(idx) == 5 and torch.all(sctx.test.y[idx] == 0)
    pctx = patched_test_context(sctx, idx)
    x, x0 = pctx.test.x, sctx.test.x[idx]
    changed = (x != x0).any(0)
    assert changed.sum() <= 4 and torch.equal(x[0], patched(sctx, x0[:1])[0])
    planted = sctx.train.x[list(sctx.data.shortcut)]
    assert torch.all(x[:, changed] == planted[0, changed])
    assert pctx.target_name == "loss" and len(pctx.train) == len(sctx.train)


def test_grad_dot_finds_the_planted_shortcut_and_a_random_estimator_does_not(sctx):
    made = [(EstimatorRequest("grad-dot"), make_estimator("grad-dot")), (EstimatorRequest("random"), RandomScores())]
    errors: dict = {}
    out = shortcut_check(sctx, made, DownstreamOptions(task="x", n_test=10, top_k=5), errors)
    assert errors == {} and out["n_planted"] == len(sctx.data.shortcut) and out["class"] == 0
    chance = out["n_planted"] / out["n_train"]
    grad_dot, random = out["estimators"]["grad-dot"], out["estimators"]["random"]
    assert grad_dot["chance"] == pytest.approx(chance)
    assert grad_dot["share"] > 5 * chance and grad_dot["share_low"] > chance, grad_dot
    assert grad_dot["auc"] > 0.9 and grad_dot["auc_low"] > 0.5, grad_dot
    assert random["auc_low"] <= 0.5 <= random["auc_high"], random
    assert random["share"] < grad_dot["share"]
    assert 0 <= out["patch_effect"]["clean"] <= 1 and 0 <= out["patch_effect"]["patched"] <= 1
