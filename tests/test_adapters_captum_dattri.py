"""Adapters to captum (TracInCP → `tracin-captum`) and dattri (IFAttributorCG → `if-dattri`), in float64,
against tdabench's own estimators and a plain sequential TracIn reference."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from estimator_helpers import all_scores, assert_close
from tdabench.adapters import captum_tracin
from tdabench.adapters.captum_tracin import TracInCaptum
from tdabench.adapters.dattri_influence import InfluenceDattri
from tdabench.errors import TdabenchError
from tdabench.estimators import ExplicitInfluence, GradDot
from tdabench.estimators.gradients import flat_per_sample_grads
from tdabench.estimators.influence import hessian_matrix
from tdabench.task import TaskContext, build_context, parse_spec
from tdabench.task.context import Checkpoint
from tdabench.task.data import Split
from tdabench.testing import check_estimator


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: on the shared 2-core machine two threads mostly contend (10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def with_checkpoints(ctx: TaskContext) -> TaskContext:
    """Three checkpoints: θᶠ perturbed by different amounts, with different learning rates."""
    gen = torch.Generator().manual_seed(0)
    checkpoints = []
    for epoch, (scale, lr) in enumerate([(0.3, 0.2), (0.1, 0.05), (0.0, 0.01)], start=1):
        params = {k: v + scale * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in ctx.params.items()}
        checkpoints.append(Checkpoint(epoch, params, lr))
    return dataclasses.replace(ctx, checkpoints=tuple(checkpoints))


def sequential_tracin(ctx: TaskContext) -> np.ndarray:
    """Σ_c lr_c g_test(θ_c) g_train(θ_c)ᵀ, one checkpoint after another."""
    total = np.zeros((len(ctx.test), len(ctx.train)))
    for ckpt in ctx.checkpoints:
        g_test = flat_per_sample_grads(ctx, "target", ctx.test.x, ctx.test.y, params=ckpt.params)
        g_train = flat_per_sample_grads(ctx, "loss", ctx.train.x, ctx.train.y, params=ckpt.params)
        total += ckpt.lr * (g_test @ g_train.T).numpy()
    return total


def state_copy(ctx: TaskContext) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in ctx.model.state_dict().items()}


def assert_state_unchanged(ctx: TaskContext, before: dict[str, torch.Tensor]) -> None:
    after = ctx.model.state_dict()
    assert sorted(after) == sorted(before)
    assert all(torch.equal(after[k], before[k]) for k in before), "context.model's parameters were modified"


# --- tracin-captum ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", ["tiny_logreg_context", "tiny_mlp_context"])
@pytest.mark.parametrize("target", ["loss", "margin"])
def test_tracin_captum_without_checkpoints_is_lr_times_grad_dot(fixture, target, request):
    ctx = request.getfixturevalue(fixture).with_target(target)
    assert ctx.checkpoints == ()
    expected = ctx.spec.training.lr * all_scores(GradDot(), ctx)
    est = TracInCaptum()
    assert_close(all_scores(est, ctx), expected, 1e-8)
    described = est.describe()
    assert described["library"] == "captum" and described["learning_rates"] == [ctx.spec.training.lr]
    assert described["sample_wise_grads_per_batch"] is True  # nn.Linear only: captum's per-batch trick
    json.dumps(described)


@pytest.mark.parametrize("target", ["loss", "margin"])
def test_tracin_captum_sums_checkpoints_weighted_by_lr(tiny_mlp_context, target):
    ctx = with_checkpoints(tiny_mlp_context.with_target(target))
    before = state_copy(ctx)
    expected = sequential_tracin(ctx)
    actual = all_scores(TracInCaptum(batch_size=16), ctx)
    assert_close(actual, expected, 1e-8)
    assert_state_unchanged(ctx, before)
    # every checkpoint counts: the final model alone (last checkpoint, lr 0.01) is far from the sum
    last_only = dataclasses.replace(ctx, checkpoints=ctx.checkpoints[-1:])
    assert np.abs(sequential_tracin(last_only) - expected).max() > 0.1 * np.abs(expected).max()


def test_tracin_captum_per_example_loop_gives_the_same_scores(tiny_mlp_context, monkeypatch):
    """Models with layers captum's sample-wise hooks do not handle use its per-example loop instead."""
    ctx = with_checkpoints(tiny_mlp_context.with_target("margin"))
    test_idx, train_idx = np.arange(0, 20, 3), np.arange(0, 60, 4)
    expected = sequential_tracin(ctx)[np.ix_(test_idx, train_idx)]
    monkeypatch.setattr(captum_tracin, "sample_wise_trick_supported", lambda model: False)
    est = TracInCaptum(batch_size=7).fit(ctx)
    assert_close(est.score(test_idx, train_idx), expected, 1e-8)
    assert est.describe()["sample_wise_grads_per_batch"] is False


def test_tracin_captum_follows_the_index_order(tiny_mlp_context):
    est = TracInCaptum(batch_size=8).fit(with_checkpoints(tiny_mlp_context))
    full = est.score(np.arange(20), np.arange(60))
    test_idx, train_idx = np.array([5, 0, 19, 5]), np.array([59, 3, 3, 10, 0])
    assert_close(est.score(test_idx, train_idx), full[np.ix_(test_idx, train_idx)], 1e-12)
    assert est.score([], train_idx).shape == (0, 5)


def test_tracin_captum_batch_size_invariance(tiny_mlp_context):
    ctx = with_checkpoints(tiny_mlp_context)
    test_idx, train_idx = np.arange(20), np.arange(0, 60, 2)
    scores = [TracInCaptum(batch_size=b).fit(ctx).score(test_idx, train_idx) for b in (1, 7, 256)]
    assert_close(scores[0], scores[2], 1e-12)
    assert_close(scores[1], scores[2], 1e-12)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, "8"])
def test_tracin_captum_rejects_bad_params(tiny_logreg_context, batch_size):
    with pytest.raises(TdabenchError, match="'batch_size' must be a positive integer"):
        TracInCaptum(batch_size=batch_size).fit(tiny_logreg_context)


def test_tracin_captum_rejects_bad_checkpoints(tiny_logreg_context):
    ctx = tiny_logreg_context
    wrong = dataclasses.replace(ctx, checkpoints=(Checkpoint(1, {"0.weight": ctx.params["0.weight"]}, 0.1),))
    with pytest.raises(TdabenchError, match="checkpoint 0 \\(epoch 1\\) does not hold the model's parameters"):
        TracInCaptum().fit(wrong)
    nan_lr = dataclasses.replace(ctx, checkpoints=(Checkpoint(1, ctx.params, float("nan")),))
    with pytest.raises(TdabenchError, match="has learning rate nan"):
        TracInCaptum().fit(nan_lr)


def test_tracin_captum_contract():
    check_estimator(TracInCaptum())


# --- if-dattri -------------------------------------------------------------------------------------

def assert_positive_definite(ctx: TaskContext, damping: float) -> None:
    lowest = float(torch.linalg.eigvalsh(hessian_matrix(ctx)).min())
    assert lowest + damping > 1e-3, f"H + {damping}·I is not positive definite (λ_min(H) = {lowest:.3g})"


@pytest.mark.parametrize("fixture, damping", [("tiny_logreg_context", 1e-3), ("tiny_mlp_context", 0.3)])
@pytest.mark.parametrize("target", ["loss", "margin"])
def test_if_dattri_equals_if_explicit(fixture, damping, target, request):
    """λ = 0.3 for the tanh MLP: its Hessian has λ_min ≈ −0.2, so λ = 0.1 would leave H + λI indefinite."""
    ctx = request.getfixturevalue(fixture).with_target(target)
    assert_positive_definite(ctx, damping)  # H includes the l2 term
    before = state_copy(ctx)
    expected = all_scores(ExplicitInfluence(curvature="hessian", damping=damping, damping_relative=False), ctx)
    est = InfluenceDattri(damping=damping)
    actual = all_scores(est, ctx)
    assert_close(actual, expected, 1e-6)
    other = all_scores(ExplicitInfluence(curvature="hessian", damping=2 * damping, damping_relative=False), ctx)
    assert np.abs(other - expected).max() > 1e-3 * np.abs(expected).max()  # the tolerance tells dampings apart
    assert_state_unchanged(ctx, before)
    described = est.describe()
    assert described["library"] == "dattri" and described["damping"] == damping
    assert described["regularization"] == pytest.approx(damping + ctx.l2)
    assert described["max_relative_residual"] <= 1e-8
    json.dumps(described)


def test_if_dattri_keeps_float64_precision(tiny_logreg_context):
    """dattri allocates its score matrix in torch's default dtype (float32: ~1e-7 relative error);
    the adapter runs it with float64 as the default, and restores the default afterwards."""
    ctx = tiny_logreg_context
    expected = all_scores(ExplicitInfluence(curvature="hessian", damping=1e-3, damping_relative=False), ctx)
    assert torch.get_default_dtype() == torch.float32
    assert_close(all_scores(InfluenceDattri(damping=1e-3), ctx), expected, 1e-10)
    assert torch.get_default_dtype() == torch.float32


def test_if_dattri_relative_damping(tiny_logreg_context):
    ctx = tiny_logreg_context
    expected = ExplicitInfluence(curvature="hessian", damping=3.0, damping_relative=True).fit(ctx)
    est = InfluenceDattri(damping=3.0, damping_relative=True).fit(ctx)
    assert est.describe()["damping"] == pytest.approx(expected.describe()["damping"], rel=1e-12)
    idx_test, idx_train = np.arange(len(ctx.test)), np.arange(len(ctx.train))
    assert_close(est.score(idx_test, idx_train), expected.score(idx_test, idx_train), 1e-6)


def test_if_dattri_follows_the_index_order(tiny_logreg_context):
    """batch_size 7: several training and test batches in dattri's loops."""
    est = InfluenceDattri(damping=1e-3, batch_size=7).fit(tiny_logreg_context)  # memoised CG per test batch
    full = est.score(np.arange(20), np.arange(60))
    test_idx, train_idx = np.array([5, 0, 19, 5]), np.array([59, 3, 3, 10, 0])
    assert_close(est.score(test_idx, train_idx), full[np.ix_(test_idx, train_idx)], 1e-9)
    assert est.score([], train_idx).shape == (0, 5)


def test_if_dattri_survives_cg_breakdown(tiny_mlp_context):
    """dattri's CG ignores its tolerance; P + 10 = 276 iterations on the 266-parameter MLP run past
    convergence into 0/0 or garbage for some test points, which are recomputed with 138 iterations."""
    ctx = tiny_mlp_context
    test_idx = np.arange(0, 20, 2)
    est = InfluenceDattri(damping=0.3, max_iter=1000).fit(ctx)
    actual = est.score(test_idx, np.arange(60))
    expected = ExplicitInfluence(curvature="hessian", damping=0.3, damping_relative=False).fit(ctx)
    assert_close(actual, expected.score(test_idx, np.arange(60)), 1e-6)
    described = est.describe()
    assert described["max_iter"] == ctx.n_params + 10 == 276
    assert described["other_max_iter"] and set(described["other_max_iter"].values()) <= {138, 69}


def test_if_dattri_refuses_an_unconverged_solve(tiny_mlp_context):
    with pytest.raises(TdabenchError, match="did not reach relative residual <= 1e-12 .* up to max_iter = 2; "
                                            "increase max_iter"):
        InfluenceDattri(damping=0.3, max_iter=2, tol=1e-12).fit(tiny_mlp_context).score([0, 1], [0])


def test_if_dattri_zero_target_gradient_gives_zero_row():
    """A squared-loss test point predicted exactly: ∇f = 0 (dattri's CG would divide 0 by 0)."""
    raw = {"name": "tiny-least-squares-dattri", "version": 1, "modality": "tabular",
           "data": {"source": "sklearn:load_diabetes", "max_train": 40, "max_test": 5, "standardize_target": True},
           "model": {"hidden": []}, "objective": {"loss": "squared", "l2": 0.01},
           "training": {"lr": 0.05, "batch_size": 16, "epochs": 5}, "gold_standard": {}}
    ctx = build_context(parse_spec(raw))
    x, y = ctx.test.x.clone(), ctx.test.y.clone()
    x[2], y[2] = 0.0, ctx.params["0.bias"][0]  # prediction 0·w + b = b = label exactly: ∇f = 2·0·(x, 1) = 0
    ctx = dataclasses.replace(ctx, data=dataclasses.replace(ctx.data, test=Split(x, y)))
    assert flat_per_sample_grads(ctx, "target", x[2:3], y[2:3]).abs().max() == 0
    actual = all_scores(InfluenceDattri(damping=1e-3), ctx)
    assert np.all(actual[2] == 0) and np.isfinite(actual).all()
    assert_close(actual, all_scores(ExplicitInfluence(damping=1e-3, damping_relative=False), ctx), 1e-6)


@pytest.mark.parametrize("params, message", [
    ({"damping": -1.0}, "'damping' must be a finite number >= 0"),
    ({"damping": float("inf")}, "'damping' must be a finite number >= 0"),
    ({"damping_relative": "yes"}, "'damping_relative' must be true or false"),
    ({"max_iter": 0}, "'max_iter' must be a positive integer"),
    ({"tol": 0.0}, "'tol' must be a finite number > 0"),
    ({"batch_size": 2.5}, "'batch_size' must be a positive integer"),
])
def test_if_dattri_rejects_bad_params(tiny_logreg_context, params, message):
    with pytest.raises(TdabenchError, match=message):
        InfluenceDattri(**params).fit(tiny_logreg_context)


def test_if_dattri_contract():
    check_estimator(InfluenceDattri(damping=0.1))
