"""Mislabel detection: self-influence finds planted label flips (tdabench/downstream/mislabel.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tdabench.downstream.mislabel import detection, flipped_mask, noisy_spec
from tdabench.downstream import selfinfluence
from tdabench.downstream.selfinfluence import (estimator_self_influence, gold_entry_and_settings, gold_self_influence,
                                               self_context)
from tdabench.errors import TdabenchError
from tdabench.registry import make_estimator
from tdabench.task import find_spec, parse_spec
from tdabench.truths.further import GoldConfig, paired_differences_sequential

from gold_helpers import in_cache, small_context, spec_dict

NOISY = {"data.label_noise": 0.05, "training.epochs": 20}  # 2 of 40 training labels flipped


@pytest.fixture(scope="module")
def noisy_ctx(tmp_path_factory):
    return small_context(tmp_path_factory.mktemp("noisy"), **NOISY)


def test_noisy_spec_is_a_variant_with_its_own_hash_and_name():
    spec = find_spec("breast-cancer-mlp")
    noisy = noisy_spec(spec, 0.1, seed=3)
    assert noisy.name == "breast-cancer-mlp@noisy" and noisy.spec_hash != spec.spec_hash
    assert (noisy.data.label_noise, noisy.data.label_noise_seed) == (0.1, 3)
    assert noisy_spec(noisy) is noisy  # already noisy: kept as it is
    with pytest.raises(TdabenchError, match="classification"):
        noisy_spec(find_spec("diabetes-mlp"))


def test_planted_mislabels_are_found_by_grad_dot(noisy_ctx):
    flipped = noisy_ctx.data.flipped
    assert len(flipped) == 2
    idx = np.arange(len(noisy_ctx.train))
    scores = estimator_self_influence(make_estimator("grad-dot"), noisy_ctx, idx, block=16)
    ranks = [int(np.flatnonzero(np.argsort(-scores) == f)[0]) for f in flipped]
    assert max(ranks) < 4, ranks  # both flipped instances among the 4 most self-influential of 40
    result = detection(scores, flipped_mask(len(idx), flipped, idx))
    assert result.auc.value > 0.9 and result.auc.low > 0.5


def test_self_influence_blocks_equal_the_diagonal_of_one_full_matrix(noisy_ctx):
    idx = np.array([5, 0, 33, 10, 7, 21, 39])
    est = make_estimator("grad-dot")
    blocked = estimator_self_influence(est, noisy_ctx, idx, block=3)
    full = est.fit(self_context(noisy_ctx)).score(idx, idx)
    np.testing.assert_allclose(blocked, np.diagonal(full), rtol=1e-12, atol=0)
    assert np.all(blocked > 0)  # grad-dot self-influence is a squared gradient norm


def test_gold_self_influence_equals_the_sequential_loop_on_its_own_loss(noisy_ctx):
    idx = (3, noisy_ctx.data.flipped[0], 17)
    recipe = noisy_ctx.spec.gold_standard.further_training
    got = gold_self_influence(noisy_ctx, recipe, idx, (1, 2), seeds=2)
    cfg = GoldConfig(recipe, idx, idx, (1, 2), seeds=2, n_train=len(noisy_ctx.train))
    sctx = self_context(noisy_ctx)
    want = np.mean([np.diagonal(paired_differences_sequential(sctx, cfg, s)[0], axis1=1, axis2=2)
                    for s in range(2)], axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)
    assert got[:, 1].min() > 0  # removing the flipped instance raises its own loss


def test_a_negative_label_noise_is_refused_by_the_spec():
    with pytest.raises(TdabenchError):
        parse_spec(spec_dict(**{"data.label_noise": -0.1}))


def test_gold_self_influence_is_kept_per_seed_in_the_unit_store(noisy_ctx, tmp_path, monkeypatch):
    ctx = in_cache(noisy_ctx, tmp_path)
    recipe = ctx.spec.gold_standard.further_training
    calls = []
    real = selfinfluence.paired_differences

    def counted(sctx, cfg, seed, on_step=None):
        calls.append(seed)
        return real(sctx, cfg, seed, on_step=on_step)
    monkeypatch.setattr(selfinfluence, "paired_differences", counted)
    idx = (3, ctx.data.flipped[0], 17)
    first = gold_self_influence(ctx, recipe, idx, (1, 2), seeds=1, progress=False)
    again = gold_self_influence(ctx, recipe, idx, (1, 2), seeds=1, progress=False)
    more = gold_self_influence(ctx, recipe, idx, (1, 2), seeds=2, progress=False)
    assert calls == [0, 1]  # the second call trains nothing, the third only seed 1
    np.testing.assert_array_equal(first, again)
    entry, settings = gold_entry_and_settings(ctx, GoldConfig(recipe, idx, idx, (1, 2), n_train=len(ctx.train)))
    assert (entry / "seed_0000.safetensors").is_file() and settings["target"] == "self-influence"
    assert "self-influence" in entry.name
    want = np.mean([np.diagonal(paired_differences_sequential(self_context(ctx), GoldConfig(
        recipe, idx, idx, (1, 2), seeds=2, n_train=len(ctx.train)), s)[0], axis1=1, axis2=2) for s in range(2)], axis=0)
    np.testing.assert_allclose(more, want, rtol=1e-6, atol=1e-12)
