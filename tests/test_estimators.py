"""Built-in estimators against closed forms, independent references and direct retraining (float64)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.func import hessian

from estimator_helpers import all_scores, assert_close
from tdabench.errors import TdabenchError
from tdabench.estimators import ExplicitInfluence, GradCos, GradDot, clone
from tdabench.estimators.grad_dot import normalize_rows
from tdabench.estimators.gradients import flat_per_sample_grads, flatten, lambda_g, unflatten
from tdabench.estimators import damped, dense_curvature
from tdabench.estimators.curvature import CurvatureOperator
from tdabench.estimators.influence import gauss_newton_matrix, hessian_matrix
from tdabench.registry import make_estimator
from tdabench.task import TaskContext

BUILTINS = ["grad-dot", "grad-cos", "if-explicit"]


# --- closed forms -------------------------------------------------------------------------------

def linear_parts(context: TaskContext, split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w, b = context.params["0.weight"].numpy(), context.params["0.bias"].numpy()
    x = split.x.numpy()
    return x, x @ w.T + b, split.y.numpy()


def test_grad_dot_least_squares_closed_form(least_squares_context):
    """ℓ = (wᵀx + b − y)²: ∇ℓ = 2r(x, 1), so grad-dot = 4 r_j r_i (x_jᵀx_i + 1)."""
    ctx = least_squares_context
    x_tr, out_tr, y_tr = linear_parts(ctx, ctx.train)
    x_te, out_te, y_te = linear_parts(ctx, ctx.test)
    r_tr, r_te = out_tr[:, 0] - y_tr, out_te[:, 0] - y_te
    expected = 4 * r_te[:, None] * r_tr[None, :] * (x_te @ x_tr.T + 1)
    assert_close(all_scores(GradDot(), ctx), expected, 1e-10)


def logreg_grads(context: TaskContext, split) -> tuple[np.ndarray, np.ndarray]:
    """Per-example gradients (n, P) and loss Hessians (n, P, P) of 2-logit softmax regression.

    Flat order: W (2, d) row-major, then b (2,). Logits o = Wx + b = J θ with J[c] = (e_c ⊗ x, e_c);
    ∇ℓ = Jᵀ(p − e_y), ∇²ℓ = Jᵀ(diag p − ppᵀ)J (exact: the logits are linear in θ).
    """
    x, logits, y = linear_parts(context, split)
    n, d = x.shape
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    jac = np.zeros((n, 2, 2 * d + 2))
    for c in range(2):
        jac[:, c, c * d:(c + 1) * d] = x
        jac[:, c, 2 * d + c] = 1.0
    residual = p - np.eye(2)[y]
    curvature = np.einsum("nc,cd->ncd", p, np.eye(2)) - p[:, :, None] * p[:, None, :]
    grads = np.einsum("ncp,nc->np", jac, residual)
    return grads, np.einsum("ncp,ncd,ndq->npq", jac, curvature, jac)


@pytest.mark.parametrize("curvature", ["hessian", "gauss-newton"])
def test_if_explicit_logistic_regression_closed_form(tiny_logreg_context, curvature):
    ctx = tiny_logreg_context
    g_train, hess = logreg_grads(ctx, ctx.train)
    g_test, _ = logreg_grads(ctx, ctx.test)
    lam_g = np.mean(g_train ** 2)
    h = hess.mean(0) + ctx.l2 * np.eye(g_train.shape[1])
    expected = g_test @ np.linalg.solve(h + 0.3 * lam_g * np.eye(len(h)), g_train.T)
    est = ExplicitInfluence(curvature=curvature, damping=0.3, damping_relative=True)
    assert_close(all_scores(est, ctx), expected, 1e-8)
    described = est.describe()
    assert described["curvature"] == curvature
    assert sorted(described) == ["curvature", "damping", "lambda_g", "lambda_max"] and described["lambda_max"] is None
    assert described["lambda_g"] == pytest.approx(lam_g, rel=1e-12)
    assert described["damping"] == pytest.approx(0.3 * lam_g, rel=1e-12)
    # the default: damping 1 × λ_max(G); G = H here (the logits are linear in θ)
    default = ExplicitInfluence(curvature=curvature)
    scores = all_scores(default, ctx)
    top = default.describe()["lambda_max"]
    assert top == pytest.approx(np.linalg.eigvalsh(h).max(), rel=1e-6) and default.describe()["lambda_g"] is None
    assert default.describe()["damping"] == top
    assert_close(scores, g_test @ np.linalg.solve(h + top * np.eye(len(h)), g_train.T), 1e-8)
    absolute = ExplicitInfluence(curvature=curvature, damping=1e-3, damping_relative=False)
    assert_close(all_scores(absolute, ctx), g_test @ np.linalg.solve(h + 1e-3 * np.eye(len(h)), g_train.T), 1e-8)


def test_lambda_max_is_computed_once_per_context(tiny_logreg_context, monkeypatch):
    ctx = dataclasses.replace(tiny_logreg_context)  # a fresh context: an empty memo
    calls = []
    real = damped.top_eigenvalue
    monkeypatch.setattr(damped, "top_eigenvalue", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = make_estimator("if-cg").fit(ctx).describe()["lambda_max"]
    second = make_estimator("kfac", damping=2.0).fit(ctx).describe()["lambda_max"]
    assert len(calls) == 1 and first == second  # the second estimator read the memo
    fresh = real(CurvatureOperator(ctx, "gauss-newton", 0.0, 256), damped.POWER_ITERATIONS)
    assert first == fresh  # the memoised value is the power iteration's own
    make_estimator("if-cg").fit(dataclasses.replace(ctx))  # another context computes its own
    assert len(calls) == 2


@pytest.mark.parametrize("fixture", ["tiny_logreg_context", "least_squares_context"])
def test_gauss_newton_equals_hessian_for_linear_models(fixture, request):
    ctx = request.getfixturevalue(fixture)
    h, g = hessian_matrix(ctx), gauss_newton_matrix(ctx, batch_size=13)
    assert_close(g.numpy(), h.numpy(), 1e-12)
    scores = {c: all_scores(ExplicitInfluence(curvature=c), ctx) for c in ("hessian", "gauss-newton")}
    assert_close(scores["gauss-newton"], scores["hessian"], 1e-9)


def test_hessian_matrix_matches_torch_hessian_on_mlp(tiny_mlp_context):
    ctx = tiny_mlp_context
    theta = flatten(ctx.params)

    def risk(v):
        p = unflatten(v, ctx.params)
        return ctx.loss(p, ctx.train.x, ctx.train.y).mean() + ctx.regularizer(p)

    h = hessian_matrix(ctx, chunk_size=5, structured=False)  # the generic path (test_mlp_hessian: the structured one)
    assert torch.equal(h, h.T)
    assert_close(h.numpy(), hessian(risk)(theta).numpy(), 1e-12)
    batched = hessian_matrix(ctx, chunk_size=5, batch_size=7, structured=False)  # 60 examples: 8 uneven batches
    assert torch.equal(batched, batched.T)
    assert_close(batched.numpy(), h.numpy(), 1e-12)
    g = gauss_newton_matrix(ctx)
    assert (g - h).abs().max() > 1e-3 * h.abs().max()  # tanh MLP: the residual term is not negligible


def test_curvature_matrix_is_built_once_per_context_and_parameter_values(tiny_mlp_context, monkeypatch):
    """if-explicit factorises its copy in place; a second estimator on the same context reuses the
    memoised matrix and scores the same; a changed parameter (or a new context) builds it again."""
    ctx = dataclasses.replace(tiny_mlp_context, params={k: v.clone() for k, v in tiny_mlp_context.params.items()})
    builds = []
    monkeypatch.setattr(dense_curvature, "hessian_matrix", lambda c, **kw: builds.append(c) or hessian_matrix(c, **kw))
    first = all_scores(ExplicitInfluence(damping=10.0, damping_relative=False), ctx)
    again = all_scores(ExplicitInfluence(damping=10.0, damping_relative=False), ctx)
    cg = all_scores(make_estimator("if-cg", damping=10.0, damping_relative=False), ctx)
    assert len(builds) == 1 and np.array_equal(first, again)
    assert_close(cg, first, 1e-8)
    with torch.no_grad():
        ctx.params["0.bias"].add_(0.1)  # in place: the memoised matrix no longer applies
    moved = all_scores(ExplicitInfluence(damping=10.0, damping_relative=False), ctx)
    assert len(builds) == 2 and not np.allclose(moved, first)
    all_scores(ExplicitInfluence(damping=10.0, damping_relative=False), dataclasses.replace(ctx))
    assert len(builds) == 3


def test_gauss_newton_matrix_matches_per_example_loop(tiny_mlp_context):
    """G = mean_i J_iᵀ(diag p_i − p_i p_iᵀ)J_i + l2·I, with J_i from torch.autograd.functional.jacobian."""
    ctx = tiny_mlp_context
    theta = flatten(ctx.params)
    expected = np.zeros((len(theta), len(theta)))
    for xi in ctx.train.x:
        jac = torch.autograd.functional.jacobian(
            lambda v: ctx.outputs(unflatten(v, ctx.params), xi[None])[0], theta).numpy()
        p = torch.softmax(ctx.outputs(ctx.params, xi[None])[0], -1).numpy()
        expected += jac.T @ (np.diag(p) - np.outer(p, p)) @ jac
    expected = expected / len(ctx.train) + ctx.l2 * np.eye(len(theta))
    assert_close(gauss_newton_matrix(ctx, batch_size=7).numpy(), expected, 1e-12)


# --- signs against actual parameter changes -------------------------------------------------------

def test_grad_dot_sign_matches_one_gradient_step(tiny_mlp_context):
    """Down-weighting i out of one full-batch GD step changes θ by +(η/n)∇ℓ_i: Δf ≈ (η/n)·grad-dot."""
    ctx, eta, n = tiny_mlp_context, 1e-4, len(tiny_mlp_context.train)
    g_train = flat_per_sample_grads(ctx, "loss", ctx.train.x, ctx.train.y)
    reg_grad = ctx.l2 * flatten(ctx.params)
    stepped = flatten(ctx.params) - eta * (g_train.mean(0) + reg_grad)
    target = lambda v: ctx.target(unflatten(v, ctx.params), ctx.test.x, ctx.test.y).numpy()
    removed = [0, 7, 33]
    actual = np.stack([target(stepped + eta / n * g_train[i]) - target(stepped) for i in removed], axis=1)
    predicted = eta / n * GradDot().fit(ctx).score(np.arange(len(ctx.test)), np.array(removed))
    assert_close(actual, predicted, 1e-3)


def newton_minimum(ctx: TaskContext, weights: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """argmin (1/n) Σ_j w_j ℓ_j(θ) + (l2/2)||θ||² by Newton's method (strictly convex for l2 > 0)."""
    def risk(v):
        p = unflatten(v, ctx.params)
        return (weights * ctx.loss(p, ctx.train.x, ctx.train.y)).sum() / len(weights) + ctx.regularizer(p)

    for _ in range(30):
        step = torch.linalg.solve(hessian(risk)(theta), torch.func.grad(risk)(theta))
        theta = theta - step
        if step.abs().max() < 1e-13:
            break
    return theta


def test_influence_predicts_reweighting_at_the_optimum(tiny_logreg_context):
    """At the optimum θ*, giving instance i the weight 1 − ε (the mean still over n) changes the
    target by Δf ≈ (ε/n)·if-explicit score: exactly to first order in ε, approximately for ε = 1."""
    base = tiny_logreg_context
    n = len(base.train)
    optimum = newton_minimum(base, torch.ones(n, dtype=torch.float64), flatten(base.params))
    ctx = dataclasses.replace(base, params=unflatten(optimum, base.params))
    target = lambda v: ctx.target(unflatten(v, ctx.params), ctx.test.x, ctx.test.y).numpy()
    removed = [1, 4, 20, 41]

    def change(i: int, eps: float) -> np.ndarray:
        weights = torch.ones(n, dtype=torch.float64)
        weights[i] -= eps
        return (target(newton_minimum(ctx, weights, optimum)) - target(optimum)) / eps

    est = ExplicitInfluence(damping=0.0, damping_relative=False).fit(ctx)
    predicted = est.score(np.arange(len(ctx.test)), np.array(removed)) / n
    derivative = np.stack([change(i, 1e-4) for i in removed], axis=1)
    assert_close(predicted, derivative, 1e-3)
    removal = np.stack([change(i, 1.0) for i in removed], axis=1)
    assert np.corrcoef(removal.ravel(), predicted.ravel())[0, 1] > 0.99


# --- invariances and conventions -----------------------------------------------------------------

@pytest.mark.parametrize("name", BUILTINS)
def test_batch_size_invariance(tiny_mlp_context, name):
    scores = [all_scores(make_estimator(name, batch_size=b), tiny_mlp_context) for b in (1, 7, 256)]
    assert_close(scores[0], scores[2], 1e-12)
    assert_close(scores[1], scores[2], 1e-12)


def test_rows_and_columns_follow_the_index_order(tiny_mlp_context):
    est = GradDot().fit(tiny_mlp_context)
    full = est.score(np.arange(20), np.arange(60))
    test_idx, train_idx = np.array([5, 0, 19, 5]), np.array([59, 3, 3, 10, 0])
    assert_close(est.score(test_idx, train_idx), full[np.ix_(test_idx, train_idx)], 1e-12)
    assert est.score([], train_idx).shape == (0, 5)


def test_grad_cos_is_normalised_grad_dot(tiny_mlp_context):
    ctx = tiny_mlp_context
    g_te = flat_per_sample_grads(ctx, "target", ctx.test.x, ctx.test.y).numpy()
    g_tr = flat_per_sample_grads(ctx, "loss", ctx.train.x, ctx.train.y).numpy()
    expected = (g_te @ g_tr.T) / np.outer(np.linalg.norm(g_te, axis=1), np.linalg.norm(g_tr, axis=1))
    scores = all_scores(GradCos(), ctx)
    assert_close(scores, expected, 1e-12)
    assert np.abs(scores).max() <= 1 + 1e-12
    zero_rows = normalize_rows(torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64))
    assert torch.equal(zero_rows, torch.tensor([[0.0, 0.0], [0.6, 0.8]], dtype=torch.float64))


def test_per_sample_grads_match_autograd_loop(tiny_mlp_context):
    ctx = tiny_mlp_context.with_target("margin")
    for fn, split, per_example in (("loss", ctx.train, ctx.loss), ("target", ctx.test, ctx.target)):
        grads = flat_per_sample_grads(ctx, fn, split.x[:9], split.y[:9], batch_size=4)
        params = {k: v.clone().requires_grad_(True) for k, v in ctx.params.items()}
        for k in range(9):
            value = per_example(params, split.x[k:k + 1], split.y[k:k + 1])[0]
            expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, list(params.values()))])
            assert torch.allclose(grads[k], expected, rtol=1e-12, atol=1e-14)
    assert lambda_g(grads) == pytest.approx(float((grads ** 2).mean()), rel=1e-14)


def test_flatten_unflatten_round_trip(tiny_mlp_context):
    params = tiny_mlp_context.params
    flat = flatten(params)
    assert flat.shape == (tiny_mlp_context.n_params,)
    back = unflatten(flat, params)
    assert list(back) == list(params) and all(torch.equal(back[k], params[k]) for k in params)


def test_score_horizons_repeats_score(tiny_logreg_context):
    est = GradDot().fit(tiny_logreg_context)
    horizons = est.score_horizons([2, 0], [5, 1, 7], steps=[1, 10])
    assert horizons.shape == (2, 2, 3) and not GradDot.horizon_dependent
    assert np.array_equal(horizons[1], est.score([2, 0], [5, 1, 7]))


# --- parameters and errors -----------------------------------------------------------------------

def test_params_repr_and_clone():
    est = ExplicitInfluence(damping=2.0)
    assert est.get_params() == {"batch_size": 256, "curvature": "hessian", "damping": 2.0,
                                "damping_relative": "lambda-max", "max_params": 30000}
    assert est.set_params(curvature="gauss-newton") is est and est.curvature == "gauss-newton"
    assert repr(est) == ("ExplicitInfluence(batch_size=256, curvature='gauss-newton', damping=2.0, "
                         "damping_relative='lambda-max', max_params=30000)")
    assert clone(est).get_params() == est.get_params() and clone(est) is not est
    with pytest.raises(TdabenchError, match="no parameter 'dampin'; valid parameters: batch_size, curvature"):
        est.set_params(dampin=1.0)


@pytest.mark.parametrize("params, message", [
    ({"curvature": "fisher"}, "'curvature' must be 'hessian' or 'gauss-newton', got 'fisher'"),
    ({"damping": -1.0}, "'damping' must be a finite number >= 0"),
    ({"damping": float("nan")}, "'damping' must be a finite number >= 0"),
    ({"damping_relative": "yes"}, "'damping_relative' must be true, false or 'lambda-max'"),
    ({"batch_size": 0}, "'batch_size' must be a positive integer"),
    ({"max_params": 10}, "the model has 62 parameters, too many for the explicit 62×62 curvature matrix"),
])
def test_if_explicit_rejects_bad_params_on_fit(tiny_logreg_context, params, message):
    est = ExplicitInfluence(**params)  # __init__ never validates
    with pytest.raises(TdabenchError, match=message):
        est.fit(tiny_logreg_context)


@pytest.mark.parametrize("curvature, message", [("hessian", "numerically singular"),
                                                ("gauss-newton", "not positive definite")])
def test_singular_curvature_is_refused(tiny_logreg_context, curvature, message):
    """Without l2 and damping, 2-logit softmax regression is flat along the logit-shift direction."""
    ctx = tiny_logreg_context
    objective = dataclasses.replace(ctx.spec.objective, l2=0.0)
    unregularised = dataclasses.replace(ctx, spec=dataclasses.replace(ctx.spec, objective=objective))
    with pytest.raises(TdabenchError, match=message):
        ExplicitInfluence(curvature=curvature, damping=0.0).fit(unregularised)
    ExplicitInfluence(curvature=curvature, damping=1e-3).fit(unregularised)  # damping fixes it


def test_score_before_fit_and_bad_indices(tiny_logreg_context):
    with pytest.raises(TdabenchError, match="GradDot is not fitted; call fit\\(context\\) first"):
        GradDot().score([0], [0])
    est = GradDot().fit(tiny_logreg_context)
    with pytest.raises(TdabenchError, match=r"train_idx out of range: indices must lie in \[0, 60\)"):
        est.score([0], [60])
    with pytest.raises(TdabenchError, match="test_idx out of range"):
        est.score([-1], [0])
    with pytest.raises(TdabenchError, match="test_idx must be a 1-D array"):
        est.score([[0]], [0])
    with pytest.raises(TdabenchError, match="train_idx must hold integer indices"):
        est.score([0], [0.5])


def test_failed_refit_leaves_estimator_unfitted(tiny_logreg_context):
    est = ExplicitInfluence().fit(tiny_logreg_context)
    est.set_params(max_params=1)
    with pytest.raises(TdabenchError):
        est.fit(tiny_logreg_context)
    with pytest.raises(TdabenchError, match="not fitted"):
        est.score([0], [0])
