"""K-FAC, EK-FAC and DataInf against exact Gauss–Newton influence and explicit references (float64)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from estimator_helpers import all_scores, assert_close
from tdabench.errors import TdabenchError
from tdabench.estimators import ExplicitInfluence
from tdabench.estimators.datainf import DataInf
from tdabench.estimators.gradients import flat_per_sample_grads, flatten, lambda_g, unflatten
from tdabench.estimators.influence import gauss_newton_matrix
from tdabench.estimators.kfac import EKFAC, KFAC
from tdabench.scoring.metrics import agreement
from tdabench.registry import make_estimator
from tdabench.task import TaskContext
from tdabench.testing import check_estimator

ESTIMATORS = {"kfac": KFAC, "ekfac": EKFAC, "datainf": DataInf}


def matrix_order(context: TaskContext, layer: str) -> np.ndarray:
    """Flat indices of layer's (W | b) in row-major (out, in + 1) order: entry (r, c) = W[r, c], (r, in) = b[r]
    (a convolution's W: its weight as (out, in·kh·kw), row-major)."""
    offsets = dict(zip(context.params, np.cumsum([0, *(p.numel() for p in context.params.values())])))
    weight = context.params[f"{layer}.weight"]
    n_out, n_in = weight.shape[0], weight[0].numel()
    weight = offsets[f"{layer}.weight"] + np.arange(n_out * n_in).reshape(n_out, n_in)
    bias = offsets[f"{layer}.bias"] + np.arange(n_out)
    return np.hstack([weight, bias[:, None]]).ravel()


def loss_part_of_gauss_newton(context: TaskContext) -> np.ndarray:
    """(1/n) Σ_i J_iᵀ M_i J_i, i.e. the explicit Gauss–Newton matrix without its l2·I."""
    return gauss_newton_matrix(context).numpy() - context.l2 * np.eye(context.n_params)


# --- exactness and explicit references -------------------------------------------------------------

@pytest.mark.parametrize("cls", [KFAC, EKFAC])
def test_kronecker_influence_is_exact_for_linear_least_squares(least_squares_context, cls):
    ctx = least_squares_context
    expected = all_scores(ExplicitInfluence(curvature="gauss-newton", damping=0.05, damping_relative=False), ctx)
    assert_close(all_scores(cls(damping=0.05, damping_relative=False), ctx), expected, 1e-8)
    # relative damping: the same λ_G as if-explicit (mean squared entry of the training gradients)
    est = cls(damping=3.0, damping_relative=True)
    relative = all_scores(est, ctx)
    assert_close(relative, all_scores(ExplicitInfluence(curvature="gauss-newton", damping=3.0, damping_relative=True),
                                      ctx), 1e-8)
    # "lambda-max": the same λ_max(G) as if-explicit (exact here: G is K-FAC's curvature)
    top = cls(damping=0.5, damping_relative="lambda-max")
    assert_close(all_scores(top, ctx), all_scores(ExplicitInfluence(curvature="gauss-newton", damping=0.5), ctx), 1e-8)
    assert top.describe()["lambda_max"] == pytest.approx(np.linalg.eigvalsh(gauss_newton_matrix(ctx).numpy()).max(),
                                                         rel=1e-6)
    grads = flat_per_sample_grads(ctx, "loss", ctx.train.x, ctx.train.y)
    assert est.describe()["lambda_g"] == pytest.approx(lambda_g(grads), rel=1e-12)
    assert est.describe()["damping"] == pytest.approx(3.0 * lambda_g(grads), rel=1e-12)


def test_kronecker_product_is_the_gauss_newton_block_for_one_output(least_squares_context):
    """With one output, S ⊗ A (row-major (out, in+1) order) is the whole loss part of G."""
    ctx = least_squares_context
    est = KFAC(damping=0.05, damping_relative=False).fit(ctx)
    (a, s), = est.factors_
    order = matrix_order(ctx, "0")
    expected = loss_part_of_gauss_newton(ctx)[np.ix_(order, order)]
    assert_close(np.kron(s.numpy(), a.numpy()), expected, 1e-12)


def test_kfac_factors_match_per_example_loop(tiny_mlp_context):
    """A = mean ã ãᵀ from a hand-written forward pass; S = mean J_bᵀ(diag p − ppᵀ)J_b with J_b the
    Jacobian of the logits w.r.t. the layer's bias (= its pre-activation), from autograd.functional."""
    ctx = tiny_mlp_context
    theta = flatten(ctx.params)
    blocks = {"0": (30, 8), "2": (8, 2)}
    a_ref = {k: np.zeros((n_in + 1, n_in + 1)) for k, (n_in, _) in blocks.items()}
    s_ref = {k: np.zeros((n_out, n_out)) for k, (_, n_out) in blocks.items()}
    offsets = dict(zip(ctx.params, np.cumsum([0, *(p.numel() for p in ctx.params.values())])))
    for xi in ctx.train.x:
        hidden = torch.tanh(xi @ ctx.params["0.weight"].T + ctx.params["0.bias"])
        for layer, inputs in (("0", xi), ("2", hidden)):
            a_tilde = np.append(inputs.numpy(), 1.0)
            a_ref[layer] += np.outer(a_tilde, a_tilde)
        jac = torch.autograd.functional.jacobian(
            lambda v: ctx.outputs(unflatten(v, ctx.params), xi[None])[0], theta).numpy()
        p = torch.softmax(ctx.outputs(ctx.params, xi[None])[0], -1).numpy()
        for layer, (_, n_out) in blocks.items():
            j_bias = jac[:, offsets[f"{layer}.bias"]:offsets[f"{layer}.bias"] + n_out]
            s_ref[layer] += j_bias.T @ (np.diag(p) - np.outer(p, p)) @ j_bias
    est = KFAC().fit(ctx)
    assert [b.name for b in est.blocks_] == ["0", "2"]
    for (a, s), layer in zip(est.factors_, blocks):
        assert_close(a.numpy(), a_ref[layer] / len(ctx.train), 1e-10)
        assert_close(s.numpy(), s_ref[layer] / len(ctx.train), 1e-10)


def test_kfac_convolution_factors_match_a_loop_over_patches(tiny_cnn_context):
    """KFC: A = (1/n) Σ_i Σ_t ã_it ã_itᵀ with patches sliced by hand (channel, row, column order, 1
    last), S = (1/(nT)) Σ_i Σ_t J_tᵀ(diag p − ppᵀ)J_t, J_t the Jacobian of the logits w.r.t. the
    convolution's pre-activation at position t, from autograd.functional through a hand-written head."""
    ctx = tiny_cnn_context
    w, b = ctx.params["0.weight"], ctx.params["0.bias"]  # (3, 1, 5, 5), 4×4 output positions
    head_w, head_b = ctx.params["4.weight"], ctx.params["4.bias"]
    logits_of = lambda pre: torch.nn.functional.max_pool2d(torch.tanh(pre), 2).reshape(-1) @ head_w.T + head_b
    a_ref, s_ref = np.zeros((26, 26)), np.zeros((3, 3))
    for xi in ctx.train.x:
        pre = torch.stack([torch.stack([(w[:, 0] * xi[0, r:r + 5, c:c + 5]).sum((1, 2)) + b for c in range(4)])
                           for r in range(4)]).permute(2, 0, 1)  # (3, 4, 4), by hand
        assert_close(pre.numpy(), torch.nn.functional.conv2d(xi[None], w, b)[0].numpy(), 1e-12)
        for r in range(4):
            for c in range(4):
                patch = np.append(xi[0, r:r + 5, c:c + 5].reshape(-1).numpy(), 1.0)
                a_ref += np.outer(patch, patch)
        jac = torch.autograd.functional.jacobian(logits_of, pre).numpy().reshape(10, 3, 16)  # (C, out, T)
        p = torch.softmax(logits_of(pre), -1).numpy()
        for t in range(16):
            s_ref += jac[:, :, t].T @ (np.diag(p) - np.outer(p, p)) @ jac[:, :, t]
    est = KFAC().fit(ctx)
    assert [type(b).__name__ for b in est.blocks_] == ["ConvBlock", "LinearBlock"]
    (a, s), n = est.factors_[0], len(ctx.train)
    assert_close(a.numpy(), a_ref / n, 1e-10)
    assert_close(s.numpy(), s_ref / (n * 16), 1e-10)


def test_ekfac_on_a_cnn_agrees_with_kronfluence(tiny_cnn_context):
    """kronfluence factors the convolution its own way (and samples labels for its Fisher): on the
    tiny CNN at 100·λ_G, measured per-test-point Pearson 0.9996 and scale 1.02 against ours."""
    native = EKFAC(damping=100.0).fit(tiny_cnn_context)
    reference = make_estimator("ekfac-kronfluence", damping=native.describe()["damping"]).fit(tiny_cnn_context)
    ours, theirs = all_scores(native, tiny_cnn_context), all_scores(reference, tiny_cnn_context)
    assert agreement(theirs, ours, "pearson").mean >= 0.99
    assert 0.9 < (ours * theirs).sum() / (theirs ** 2).sum() < 1.1


@pytest.mark.parametrize("fixture", ["tiny_mlp_context", "tiny_cnn_context"])
def test_ekfac_eigenvalues_are_the_diagonal_of_the_rotated_gauss_newton_block(fixture, request):
    """Λ*[k, l] = (Q_S ⊗ Q_A)ᵀ G_layer (Q_S ⊗ Q_A) diagonal, G_layer in row-major (out, in+1) order;
    for the CNN's convolution too (its per-example gradient sums the 16 positions' outer products)."""
    ctx = request.getfixturevalue(fixture)
    gn = loss_part_of_gauss_newton(ctx)
    ekfac, kfac = EKFAC().fit(ctx), KFAC().fit(ctx)
    layers = zip(ekfac.blocks_, ekfac.bases_, ekfac.eigenvalues_, kfac.eigenvalues_)
    for block, (q_s, q_a), corrected, plain in layers:
        order = matrix_order(ctx, block.name)
        q = np.kron(q_s.numpy(), q_a.numpy())
        expected = np.diag(q.T @ gn[np.ix_(order, order)] @ q).reshape(block.n_out, block.width)
        assert_close(corrected.numpy(), expected, 1e-10)
        gap = np.abs(plain.numpy() - expected).max() / np.abs(expected).max()
        assert gap > 1e-3, f"layer {block.name}: K-FAC's eigenvalues should differ from EK-FAC's on an MLP"


@pytest.mark.parametrize("fixture", ["tiny_mlp_context", "tiny_cnn_context"])
@pytest.mark.parametrize("cls", [KFAC, EKFAC])
def test_kronecker_transform_matches_explicit_block_diagonal_inverse(fixture, cls, request):
    """Scores = g_test (C + (λ + l2)I)⁻¹ g_trainᵀ with C block-diagonal, C_layer = S ⊗ A (K-FAC) or
    (Q_S ⊗ Q_A) diag(Λ*) (Q_S ⊗ Q_A)ᵀ (EK-FAC) in row-major (out, in+1) order, built explicitly."""
    ctx = request.getfixturevalue(fixture)
    est = cls(damping=0.5).fit(ctx)
    curvature = np.zeros((ctx.n_params, ctx.n_params))
    for block, (a, s), (q_s, q_a), lam in zip(est.blocks_, est.factors_, est.bases_, est.eigenvalues_):
        order = matrix_order(ctx, block.name)
        q = np.kron(q_s.numpy(), q_a.numpy())
        layer = np.kron(s.numpy(), a.numpy()) if cls is KFAC else q @ np.diag(lam.numpy().ravel()) @ q.T
        curvature[np.ix_(order, order)] = layer
    curvature += (est.damping_ + ctx.l2) * np.eye(ctx.n_params)
    g_train = flat_per_sample_grads(ctx, "loss", ctx.train.x, ctx.train.y).numpy()
    g_test = flat_per_sample_grads(ctx, "target", ctx.test.x, ctx.test.y).numpy()
    expected = g_test @ np.linalg.solve(curvature, g_train.T)
    assert_close(est.score(np.arange(len(ctx.test)), np.arange(len(ctx.train))), expected, 1e-10)


@pytest.mark.parametrize("cls", [KFAC, EKFAC])
def test_kronecker_influence_approximates_gauss_newton_influence(tiny_logreg_context, cls):
    """Two logits: E[ããᵀ ⊗ ssᵀ] ≠ E[ããᵀ] ⊗ E[ssᵀ], so K-FAC is not exact, but it stays close."""
    ctx = tiny_logreg_context
    expected = all_scores(ExplicitInfluence(curvature="gauss-newton", damping=1.0, damping_relative=True), ctx)
    scores = all_scores(cls(damping=1.0, damping_relative=True), ctx)
    assert np.corrcoef(scores.ravel(), expected.ravel())[0, 1] > 0.85
    assert np.abs(scores - expected).max() > 1e-3 * np.abs(expected).max(), "unexpectedly exact"


def test_datainf_matches_explicit_per_layer_inverse(tiny_mlp_context):
    """Reference: Σ_l v_lᵀ [(1/n)Σ_k inv(λ'_l I + g_kl g_klᵀ)] g_il with explicit inverses (numpy)."""
    ctx = tiny_mlp_context
    g_train = flat_per_sample_grads(ctx, "loss", ctx.train.x, ctx.train.y).numpy()
    g_test = flat_per_sample_grads(ctx, "target", ctx.test.x, ctx.test.y).numpy()
    offsets = np.cumsum([0, *(p.numel() for p in ctx.params.values())])
    layers = {"0": np.arange(offsets[0], offsets[2]), "2": np.arange(offsets[2], offsets[4])}
    expected = np.zeros((len(g_test), len(g_train)))
    damping = {}
    for name, idx in layers.items():
        g = g_train[:, idx]
        damping[name] = 0.1 * np.mean(g ** 2)
        eye = np.eye(len(idx)) * (damping[name] + ctx.l2)
        inverse = np.linalg.inv(eye + g[:, :, None] * g[:, None, :]).mean(0)  # one inverse per example
        expected += g_test[:, idx] @ inverse @ g.T
    est = DataInf()
    assert_close(all_scores(est, ctx), expected, 1e-10)
    assert est.describe()["layer_damping"] == pytest.approx(damping, rel=1e-12)
    absolute = all_scores(DataInf(damping=1e-3, damping_relative=False), ctx)
    assert np.abs(absolute - expected).max() > 1e-3 * np.abs(expected).max(), "the damping must matter"


# --- conventions, contract and errors ----------------------------------------------------------------

@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_batch_size_invariance(tiny_mlp_context, name):
    scores = [all_scores(ESTIMATORS[name](damping=1.0, batch_size=b), tiny_mlp_context) for b in (1, 7, 256)]
    assert_close(scores[0], scores[2], 1e-12)
    assert_close(scores[1], scores[2], 1e-12)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_rows_and_columns_follow_the_index_order(tiny_mlp_context, name):
    est = ESTIMATORS[name]().fit(tiny_mlp_context)
    full = est.score(np.arange(20), np.arange(60))
    test_idx, train_idx = np.array([5, 0, 19, 5]), np.array([59, 3, 3, 10, 0])
    assert_close(est.score(test_idx, train_idx), full[np.ix_(test_idx, train_idx)], 1e-12)
    assert est.score([], train_idx).shape == (0, 5)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_check_estimator(name):
    check_estimator(ESTIMATORS[name]())


@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize("params, message", [
    ({"damping": -1.0}, "'damping' must be a finite number >= 0"),
    ({"damping": float("inf")}, "'damping' must be a finite number >= 0"),
    ({"damping": True}, "'damping' must be a finite number >= 0"),
    ({"damping_relative": "yes"}, "'damping_relative' must be true"),  # … or false (, or 'lambda-max')
    ({"batch_size": 0}, "'batch_size' must be a positive integer"),
])
def test_bad_params_raise_on_fit(tiny_logreg_context, name, params, message):
    est = ESTIMATORS[name](**params)  # __init__ never validates
    with pytest.raises(TdabenchError, match=f"{name}: parameter {message}"):
        est.fit(tiny_logreg_context)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_zero_damping_without_l2_is_refused(tiny_logreg_context, name):
    """Two-logit softmax regression is flat along the logit shift: undamped curvature is singular."""
    ctx = tiny_logreg_context
    objective = dataclasses.replace(ctx.spec.objective, l2=0.0)
    unregularised = dataclasses.replace(ctx, spec=dataclasses.replace(ctx.spec, objective=objective))
    with pytest.raises(TdabenchError, match="increase the damping|damping > 0"):
        ESTIMATORS[name](damping=0.0, damping_relative=False).fit(unregularised)
    assert np.isfinite(all_scores(ESTIMATORS[name](damping=1e-3), unregularised)).all()


@pytest.mark.parametrize("cls", [KFAC, EKFAC])
def test_parameters_outside_linear_layers_are_refused(tiny_logreg_context, cls):
    ctx = tiny_logreg_context
    extra = dataclasses.replace(ctx, params={**ctx.params, "scale": torch.ones(1, dtype=torch.float64)})
    with pytest.raises(TdabenchError, match="parameter 'scale' does not belong to a supported layer"):
        cls().fit(extra)
