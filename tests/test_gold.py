"""The gold standard: vectorised = sequential loop, closed form on ridge regression, resume, cache."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from gold_helpers import in_cache, small_context
from tdabench.errors import CacheMismatchError, TdabenchError
from tdabench.task.spec import OptimizerSpec
from tdabench.truths.further import (GoldConfig, gold_entry, paired_differences, paired_differences_sequential,
                                     run_gold_standard)

RECIPES = {
    "sgd": OptimizerSpec(lr=0.05, batch_size=8),
    "momentum+wd": OptimizerSpec(lr=0.05, momentum=0.9, weight_decay=0.01, batch_size=8),
    "adam": OptimizerSpec(optimizer="adam", lr=0.01, batch_size=8),
    "adamw": OptimizerSpec(optimizer="adamw", lr=0.01, weight_decay=0.1, batch_size=8),
}


@pytest.fixture(scope="module")
def mlp_ctx(tmp_path_factory):
    return small_context(tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize("recipe", list(RECIPES))
@pytest.mark.parametrize("mode,unit,horizons", [("removal", "epoch", (1, 3)), ("downweight", "step", (1, 4, 11))])
def test_vectorised_equals_sequential_loop(mlp_ctx, recipe, mode, unit, horizons):
    cfg = GoldConfig(RECIPES[recipe], train_idx=(0, 5, 17, 39), test_idx=(0, 3, 11), horizons=horizons,
                     horizon_unit=unit, seeds=1, mode=mode, epsilon=0.5 if mode == "downweight" else 1.0,
                     n_train=len(mlp_ctx.train))
    fast, ref_fast = paired_differences(mlp_ctx, cfg, seed=2)
    slow, ref_slow = paired_differences_sequential(mlp_ctx, cfg, seed=2)
    assert fast.shape == (len(horizons), 3, 4)
    assert np.abs(fast).max() > 1e-4, "the removals must change the target for the test to mean anything"
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-6 * np.abs(slow).max())
    np.testing.assert_allclose(ref_fast, ref_slow, rtol=1e-9, atol=1e-12)


def test_empty_last_batch_is_no_step(tmp_path):
    """n − 1 divisible by the batch size: the removal copy has one batch fewer per epoch."""
    ctx = small_context(tmp_path, **{"data.max_train": 33})
    cfg = GoldConfig(OptimizerSpec(lr=0.05, momentum=0.9, batch_size=8), train_idx=(1, 32), test_idx=(0, 1),
                     horizons=(1, 2), seeds=1, n_train=len(ctx.train))
    fast, _ = paired_differences(ctx, cfg, seed=0)
    slow, _ = paired_differences_sequential(ctx, cfg, seed=0)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-10)


def test_chunked_equals_unchunked(mlp_ctx):
    base = dict(recipe=RECIPES["sgd"], train_idx=tuple(range(0, 40, 3)), test_idx=(0, 1, 2), horizons=(1, 2),
                n_train=len(mlp_ctx.train))
    whole, _ = paired_differences(mlp_ctx, GoldConfig(**base), seed=0)
    chunked, _ = paired_differences(mlp_ctx, GoldConfig(**base, chunk_size=4), seed=0)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-12)


def _ridge_closed_form(ctx, cfg: GoldConfig, seed_weights: np.ndarray) -> np.ndarray:
    """Test loss after T full-batch GD steps on R_w(θ) = Σ w_j (x̃_jᵀθ − y_j)² / Σ m_j + (l2/2)||θ||².

    θ_{t+1} = θ_t − η(Hθ_t − b) with H = 2X̃ᵀWX̃/N + l2·I, b = 2X̃ᵀWy/N, so θ_T = θ* + (I − ηH)^T(θ_0 − θ*).
    X̃ = [X, 1] carries the bias; rows: the K copies' weight vectors. Returns (H, K, n_test).
    """
    w_lin, bias = ctx.params["0.weight"].numpy()[0], ctx.params["0.bias"].numpy()
    theta0 = np.concatenate([w_lin, bias])
    x = np.hstack([ctx.train.x.numpy(), np.ones((len(ctx.train), 1))])
    xt = np.hstack([ctx.test.x.numpy()[list(cfg.test_idx)], np.ones((len(cfg.test_idx), 1))])
    yt, y = ctx.test.y.numpy()[list(cfg.test_idx)], ctx.train.y.numpy()
    eta, l2, out = cfg.recipe.lr, ctx.l2, []
    for steps in cfg.steps:
        row = []
        for weights, norm in seed_weights:
            h = 2 * x.T @ (weights[:, None] * x) / norm + l2 * np.eye(x.shape[1])
            star = np.linalg.solve(h, 2 * x.T @ (weights * y) / norm)
            theta = star + np.linalg.matrix_power(np.eye(len(h)) - eta * h, steps) @ (theta0 - star)
            row.append((xt @ theta - yt) ** 2)
        out.append(row)
    return np.array(out)


@pytest.mark.parametrize("mode", ["removal", "downweight"])
def test_ridge_full_batch_matches_closed_form(tmp_path, mode):
    ctx = small_context(tmp_path, task="diabetes-mlp", **{"model.hidden": [], "objective.l2": 0.1})
    n, eps = len(ctx.train), 0.7
    cfg = GoldConfig(OptimizerSpec(lr=0.05, batch_size=4 * n), train_idx=(0, 9, 21), test_idx=(0, 4, 7),
                     horizons=(1, 5, 40), horizon_unit="step", seeds=1, mode=mode, epsilon=eps, n_train=n)
    copies = [(np.ones(n), n)]
    for i in cfg.train_idx:
        w = np.ones(n)
        w[i] = 0.0 if mode == "removal" else 1 - eps
        copies.append((w, n - 1 if mode == "removal" else n))
    expected = _ridge_closed_form(ctx, cfg, copies)
    diff, reference = paired_differences(ctx, cfg, seed=0)
    np.testing.assert_allclose(reference, expected[:, 0], rtol=1e-10)
    np.testing.assert_allclose(diff, (expected[:, 1:] - expected[:, :1]).transpose(0, 2, 1), rtol=1e-8,
                               atol=1e-12)


def test_resume_after_interruption_gives_same_numbers(tmp_path, mlp_ctx):
    cfg = GoldConfig(RECIPES["momentum+wd"], train_idx=(0, 7, 30), test_idx=(0, 2), horizons=(1, 2), seeds=3,
                     n_train=len(mlp_ctx.train))

    def die_after_first(seed: int) -> None:
        if seed == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_gold_standard(in_cache(mlp_ctx, tmp_path / "a"), cfg, progress=False, after_seed=die_after_first)
    saved = sorted(p.name for p in gold_entry(in_cache(mlp_ctx, tmp_path / "a"), cfg).glob("seed_*"))
    assert saved == ["seed_0000.safetensors"]
    computed = []
    resumed = run_gold_standard(in_cache(mlp_ctx, tmp_path / "a"), cfg, progress=False, after_seed=computed.append)
    assert computed == [1, 2], "only the missing seeds are computed again"
    fresh = run_gold_standard(in_cache(mlp_ctx, tmp_path / "b"), cfg, progress=False)
    np.testing.assert_array_equal(resumed.per_seed, fresh.per_seed)
    assert resumed.per_seed.shape == (3, 2, 2, 3)


def test_more_seeds_later_reuse_the_seeds_on_disk(tmp_path, mlp_ctx):
    cfg = GoldConfig(RECIPES["sgd"], train_idx=(0, 4), test_idx=(0, 1), horizons=(1,), seeds=2,
                     n_train=len(mlp_ctx.train))
    two = run_gold_standard(in_cache(mlp_ctx, tmp_path), cfg, progress=False)
    computed = []
    three = run_gold_standard(in_cache(mlp_ctx, tmp_path), dataclasses.replace(cfg, seeds=3), progress=False,
                              after_seed=computed.append)
    assert computed == [2]
    np.testing.assert_array_equal(three.per_seed[:2], two.per_seed)


def test_gold_cache_with_other_settings_is_refused(tmp_path, mlp_ctx):
    cfg = GoldConfig(RECIPES["sgd"], train_idx=(0, 1), test_idx=(0,), horizons=(1,), seeds=1,
                     n_train=len(mlp_ctx.train))
    run_gold_standard(in_cache(mlp_ctx, tmp_path), cfg, progress=False)
    settings = gold_entry(in_cache(mlp_ctx, tmp_path), cfg) / "settings.json"
    stored = json.loads(settings.read_text())
    settings.write_text(json.dumps(stored | {"epsilon": 0.5}))
    with pytest.raises(CacheMismatchError, match="epsilon"):
        run_gold_standard(in_cache(mlp_ctx, tmp_path), cfg, progress=False)


def test_final_model_cache_is_reused_and_training_is_deterministic(tmp_path):
    first = small_context(tmp_path / "a")
    cached = small_context(tmp_path / "a")
    retrained = small_context(tmp_path / "b")
    for name, value in first.params.items():
        assert torch.equal(value, cached.params[name]) and torch.equal(value, retrained.params[name])
    assert not torch.equal(first.params["0.weight"], small_context(tmp_path / "c", **{"model.init_seed": 1}).params["0.weight"])


def test_final_model_cache_with_other_settings_is_refused(tmp_path):
    small_context(tmp_path)
    entry = next((tmp_path / "final_models").iterdir())
    stored = json.loads((entry / "settings.json").read_text())
    (entry / "settings.json").write_text(json.dumps(stored | {"format": -1}))
    with pytest.raises(CacheMismatchError, match="format"):
        small_context(tmp_path)


def test_centering_removes_the_common_change(mlp_ctx, tmp_path):
    cfg = GoldConfig(RECIPES["sgd"], train_idx=(0, 3, 9, 20), test_idx=(0, 1, 2), horizons=(2,), seeds=2,
                     n_train=len(mlp_ctx.train))
    gold = run_gold_standard(in_cache(mlp_ctx, tmp_path), cfg, progress=False)
    centered = gold.mean(0, centered=True)
    np.testing.assert_allclose(centered.mean(axis=1), 0, atol=1e-15)
    np.testing.assert_allclose(centered, gold.mean(0) - gold.mean(0).mean(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(gold.seeds_at(0, True).mean(0), centered, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("bad,match", [(dict(horizons=(0, 1)), "positive"), (dict(horizons=(2, 1)), "increasing"),
                                       (dict(seeds=0), "seeds"), (dict(mode="x"), "mode"),
                                       (dict(train_idx=(1, 1)), "repeats"), (dict(train_idx=(0, 9)), r"\[0, 5\)"),
                                       (dict(n_train=0), "n_train"), (dict(epsilon=0.0), "epsilon")])
def test_bad_gold_config_is_a_user_error(bad, match):
    base = dict(recipe=RECIPES["sgd"], train_idx=(0, 1), test_idx=(0,), horizons=(1,), n_train=5)
    with pytest.raises(TdabenchError, match=match):
        GoldConfig(**(base | bad))
