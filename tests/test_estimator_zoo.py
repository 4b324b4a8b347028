"""The iterative, horizon-matched, checkpoint and projection estimators against exact references (float64).

References: the explicit damped inverse (`if-explicit`), closed-form ridge regression, the gold
standard itself (down-weighting, central difference), plain sequential loops over checkpoints and
an explicitly built projection matrix.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from estimator_helpers import all_scores, assert_close, least_squares_spec
from tdabench.estimators import (ArnoldiInfluence, ConjugateGradientInfluence, ExplicitInfluence, GradDot,
                                 HorizonLissa, LissaInfluence, TracIn, Trak)
from tdabench.estimators.curvature import CurvatureOperator
from tdabench.estimators.gradients import flat_per_sample_grads
from tdabench.estimators.trak import CachedProjection, RandomProjection
from tdabench.task import TaskContext, build_context, parse_spec
from tdabench.task.context import Checkpoint
from tdabench.task.ensemble import member_context
from tdabench.task.spec import OptimizerSpec
from tdabench.truths.further import GoldConfig, paired_differences


def at_ridge_optimum(ctx: TaskContext, weight_decay: float = 0.0) -> TaskContext:
    """θ* = argmin mean_i (wᵀx_i + b − y_i)² + ((l2 + weight_decay)/2)||θ||², by the normal equations:
    where further training (with this weight decay) starts at rest."""
    x = torch.cat([ctx.train.x, torch.ones(len(ctx.train), 1, dtype=torch.float64)], dim=1)
    n, l2 = len(x), ctx.l2 + weight_decay
    theta = torch.linalg.solve(2 * x.T @ x / n + l2 * torch.eye(x.shape[1], dtype=torch.float64),
                               2 * x.T @ ctx.train.y / n)
    params = {"0.weight": theta[:-1][None].clone(), "0.bias": theta[-1:].clone()}
    return dataclasses.replace(ctx, params=params)


@pytest.fixture(scope="module")
def ridge_context(least_squares_context) -> TaskContext:
    return at_ridge_optimum(least_squares_context)


# --- iterative inverses equal the explicit one ------------------------------------------------------

ITERATIVE = {
    "if-cg": lambda damping, curvature: ConjugateGradientInfluence(curvature=curvature, damping=damping,
                                                                   damping_relative=False),
    "if-lissa": lambda damping, curvature: LissaInfluence(curvature=curvature, damping=damping,
                                                          damping_relative=False, depth=500),
    "if-arnoldi": lambda damping, curvature: ArnoldiInfluence(curvature=curvature, damping=damping,
                                                              damping_relative=False, rank=62, n_iterations=62),
}


@pytest.mark.parametrize("name", list(ITERATIVE))
@pytest.mark.parametrize("fixture", ["ridge_context", "tiny_logreg_context"])
def test_iterative_inverses_match_if_explicit(name, fixture, request):
    """Ridge (P = 11) and L2 logistic regression (P = 62): CG, full-batch LiSSA and full-rank
    Arnoldi apply the same (C + λI)⁻¹ as the explicit factorisation, to 1e-6 relative."""
    ctx = request.getfixturevalue(fixture)
    for curvature in ("hessian", "gauss-newton"):
        expected = all_scores(ExplicitInfluence(curvature=curvature, damping=0.5, damping_relative=False), ctx)
        assert_close(all_scores(ITERATIVE[name](0.5, curvature), ctx), expected, 1e-6)


@pytest.mark.parametrize("curvature", ["hessian", "gauss-newton"])
def test_curvature_operator_dense_equals_matrix_free(tiny_mlp_context, curvature):
    """The explicit matrix a small model's operator builds gives the matrix-free products (tanh MLP,
    l2 = 0.01, damping 0.3: both added once), in float64; a sampled `rows` product stays matrix-free."""
    vectors = torch.randn(5, tiny_mlp_context.n_params, generator=torch.Generator().manual_seed(0),
                          dtype=torch.float64)
    dense = CurvatureOperator(tiny_mlp_context, curvature, damping=0.3, batch_size=7)
    free = CurvatureOperator(tiny_mlp_context, curvature, damping=0.3, batch_size=7, dense_up_to=0)
    generic = CurvatureOperator(tiny_mlp_context, curvature, damping=0.3, batch_size=7, dense_up_to=0,
                                structured=False, jacobian_up_to=0)  # the vmapped path, not the MLP's GEMMs
    assert_close(dense.matvec(vectors).numpy(), free.matvec(vectors).numpy(), 1e-12)
    assert_close(dense.matvec(vectors).numpy(), generic.matvec(vectors).numpy(), 1e-12)
    assert dense._dense is not None and free._dense is None
    rows = torch.arange(0, len(tiny_mlp_context.train), 3)
    assert_close(dense.matvec(vectors, rows=rows).numpy(), free.matvec(vectors, rows=rows).numpy(), 1e-12)
    assert_close(dense.matvec(vectors, rows=rows).numpy(), generic.matvec(vectors, rows=rows).numpy(), 1e-12)


def test_cg_refuses_an_indefinite_curvature(tiny_mlp_context):
    """Far from an optimum with no damping, C = H − 5I has negative curvature: CG says so."""
    shifted = ConjugateGradientInfluence(damping=0.0, damping_relative=False)
    shifted.fit(tiny_mlp_context)
    shifted.operator_.damping = -5.0
    with pytest.raises(Exception, match="non-positive curvature"):
        shifted.score([0], [0])


def test_stochastic_lissa_is_seeded_and_near_the_full_batch_answer(tiny_logreg_context):
    ctx = tiny_logreg_context
    full = all_scores(LissaInfluence(damping=0.5, damping_relative=False, depth=60), ctx)
    make = lambda seed: LissaInfluence(damping=0.5, damping_relative=False, depth=60, hvp_batch_size=30,
                                       seed=seed)
    first, again, other = all_scores(make(0), ctx), all_scores(make(0), ctx), all_scores(make(1), ctx)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert np.corrcoef(first.ravel(), full.ravel())[0, 1] > 0.95  # measured 0.986 with half the data per product


# --- the horizon-matched response ------------------------------------------------------------------

def gold_derivative(ctx: TaskContext, recipe: OptimizerSpec, steps: tuple[int, ...], eps: float) -> np.ndarray:
    """n · d(gold)/dε by a central difference of the down-weighting gold standard at ±ε."""
    def gold(e: float) -> np.ndarray:
        cfg = GoldConfig(recipe, train_idx=tuple(range(len(ctx.train))), test_idx=tuple(range(len(ctx.test))),
                         horizons=steps, horizon_unit="step", seeds=1, mode="downweight", epsilon=e,
                         n_train=len(ctx.train))
        return paired_differences(ctx, cfg, seed=0)[0]
    return (gold(eps) - gold(-eps)) / (2 * eps) * len(ctx.train)


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 0.05)])
def test_horizon_lissa_equals_the_gold_standard_on_ridge_regression(ridge_context, momentum, weight_decay):
    """Full-batch gradient descent from the ridge optimum: the loss is quadratic, so the linear
    response of the optimizer's recursion is the gold standard's derivative in ε, at every horizon."""
    ctx = at_ridge_optimum(ridge_context, weight_decay)
    recipe = OptimizerSpec(lr=0.05, momentum=momentum, weight_decay=weight_decay, batch_size=len(ctx.train))
    steps = (1, 3, 10, 40, 150)
    expected = gold_derivative(ctx, recipe, steps, eps=1e-4)
    for method in ("recursion", "lanczos"):  # Lanczos: P = 11 < 40 steps, so its Krylov space is exact
        est = HorizonLissa(lr=recipe.lr, momentum=momentum, weight_decay=weight_decay, method=method).fit(ctx)
        actual = est.score_horizons(np.arange(len(ctx.test)), np.arange(len(ctx.train)), list(steps))
        for h in range(len(steps)):
            assert_close(actual[h], expected[h], 1e-8)


def test_lanczos_response_equals_the_recursion_on_an_mlp(tiny_mlp_context):
    """266 parameters, 30 Lanczos steps: exact up to T = 30, and still equal at T = 200 because the
    response is smooth in the eigenvalue (the exactness beyond m is measured, not guaranteed)."""
    ctx, steps = tiny_mlp_context, [1, 7, 30, 200]
    test_idx, train_idx = np.arange(20), np.arange(60)
    make = lambda method: HorizonLissa(method=method, n_iterations=30, lr=0.05, momentum=0.5).fit(ctx)
    recursion = make("recursion").score_horizons(test_idx, train_idx, steps)
    lanczos = make("lanczos").score_horizons(test_idx, train_idx, steps)
    for h in range(len(steps)):
        assert_close(lanczos[h], recursion[h], 1e-8)


def test_lanczos_kept_basis_equals_the_regenerated_one_and_the_eigendecomposition():
    """matrix_functions keeps the Krylov basis when it fits its byte budget and regenerates it
    otherwise: both give bitwise the same result (the same vectors), which equals f(A)v from the
    explicit eigendecomposition of A when the Krylov space is the whole space (m = P), in float64."""
    from tdabench.estimators.krylov import matrix_functions

    rng = np.random.default_rng(3)
    m = rng.normal(size=(12, 12))
    a = torch.tensor(m @ m.T / 12 + 0.1 * np.eye(12))
    v = torch.tensor(rng.normal(size=(5, 12)))
    fn = lambda theta: torch.stack([1 / theta, torch.exp(-theta)])  # noqa: E731  (two functions)
    products = []

    def matvec(x: torch.Tensor) -> torch.Tensor:
        products.append(len(x))
        return x @ a
    kept = matrix_functions(matvec, v, 12, fn)
    assert len(products) == 12  # one pass
    regenerated = matrix_functions(matvec, v, 12, fn, keep_basis_bytes=0)
    assert len(products) == 12 + 24  # two passes
    assert torch.equal(kept, regenerated)
    lam, u = torch.linalg.eigh(a)
    for h, f in enumerate((1 / lam, torch.exp(-lam))):
        expected = v @ (u * f) @ u.T  # measured: 5e-11 (A⁻¹, condition number 39) and 1e-15 (exp) of max|f(A)v|
        assert float((kept[h] - expected).abs().max()) <= 1e-9 * float(expected.abs().max())


def test_horizon_lissa_limits_are_grad_dot_and_the_influence_function(ridge_context):
    """T = 1: η·Grad-Dot exactly. T → ∞ (plain GD, ηλ_max < 1): the undamped influence function;
    the slowest mode decays as (1 − η·l2)^T = e^{−30} at T = 60000."""
    ctx = ridge_context
    est = HorizonLissa(lr=0.05, momentum=0.0, weight_decay=0.0).fit(ctx)
    one, many = est.score_horizons(np.arange(15), np.arange(50), [1, 60000])  # Lanczos: exact, P = 11
    assert_close(one, 0.05 * all_scores(GradDot(), ctx), 1e-12)
    assert_close(many, all_scores(ExplicitInfluence(damping=0.0, damping_relative=False), ctx), 1e-8)
    assert np.array_equal(est.score(np.arange(15), np.arange(50)),
                          est.score_horizons(np.arange(15), np.arange(50), [est.steps_])[0])


def test_horizon_lissa_takes_its_recipe_from_the_task(tiny_mlp_context):
    est = HorizonLissa().fit(tiny_mlp_context)
    recipe = tiny_mlp_context.spec.gold_standard.further_training
    assert (est.lr_, est.momentum_, est.weight_decay_) == (recipe.lr, recipe.momentum, recipe.weight_decay)
    assert est.steps_ == 50 * 2  # longest default horizon (50 epochs) × 2 steps of 32 per epoch of 60


# --- TracIn over checkpoints -----------------------------------------------------------------------

def test_tracin_sums_learning_rate_weighted_grad_dots_over_checkpoints(tiny_mlp_context):
    ctx = tiny_mlp_context
    rng = np.random.default_rng(0)
    checkpoints = tuple(Checkpoint(e, {k: v + 0.05 * torch.from_numpy(rng.normal(size=v.shape)) for k, v in
                                       ctx.params.items()}, lr) for e, lr in ((1, 0.3), (2, 0.2), (4, 0.05)))
    with_ckpts = dataclasses.replace(ctx, checkpoints=checkpoints)
    expected = sum(c.lr * (flat_per_sample_grads(ctx, "target", ctx.test.x, ctx.test.y, c.params)
                           @ flat_per_sample_grads(ctx, "loss", ctx.train.x, ctx.train.y, c.params).T).numpy()
                   for c in checkpoints)
    assert_close(all_scores(TracIn(batch_size=7), with_ckpts), expected, 1e-12)
    final_only = ctx.spec.training.lr * all_scores(GradDot(), ctx)
    assert_close(all_scores(TracIn(use_checkpoints=False), with_ckpts), final_only, 1e-12)
    assert_close(all_scores(TracIn(), ctx), final_only, 1e-12)


def test_checkpoints_are_the_parameters_after_those_epochs(tmp_path):
    """build_context saves training.checkpoint_epochs; each equals a model trained for that many epochs."""
    spec = parse_spec(least_squares_spec(checkpoint_epochs=[2, 5]))
    ctx = build_context(spec, tmp_path)
    assert [c.epoch for c in ctx.checkpoints] == [2, 5] and all(c.lr == 0.05 for c in ctx.checkpoints)
    short = build_context(parse_spec(least_squares_spec(epochs=2)), tmp_path)
    for name in ctx.params:
        assert torch.equal(ctx.checkpoints[0].params[name], short.params[name])
        assert torch.equal(ctx.checkpoints[1].params[name], ctx.params[name])
    assert list(ctx.checkpoints[0].params) == list(ctx.params)
    again = build_context(spec, tmp_path)  # from the cache
    assert all(torch.equal(a.params[k], b.params[k]) for a, b in zip(ctx.checkpoints, again.checkpoints)
               for k in ctx.params)


# --- TRAK ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("proj_dim, projection", [(200, "rademacher"), (40, "gaussian")])
def test_trak_equals_the_formula_with_the_explicit_projection(tiny_mlp_context, proj_dim, projection):
    """k = 200 > n = 60 takes the dual (n × n) solve, k = 40 the primal (k × k) one."""
    ctx = tiny_mlp_context
    est = Trak(proj_dim=proj_dim, projection=projection, damping=1e-3, batch_size=9, dtype="float64").fit(ctx)
    assert est.members_[0]["dual"] == (proj_dim > 60)
    proj = torch.cat([est.projector_.projection.chunk(c) for c in range(-(-ctx.n_params // 1024))]).numpy()
    assert proj.shape == (ctx.n_params, proj_dim)
    grads = lambda fn, split: flat_per_sample_grads(ctx, fn, split.x, split.y).numpy() @ proj
    features = grads("output", ctx.train)
    kernel = features.T @ features / len(features)
    kernel += (1e-3 * np.trace(kernel) / proj_dim + ctx.l2) * np.eye(proj_dim)
    expected = grads("target", ctx.test) @ np.linalg.solve(kernel, grads("loss", ctx.train).T)
    assert_close(est.score(np.arange(20), np.arange(60)), expected, 1e-8)


def test_trak_loss_gradient_is_the_out_to_loss_weighted_margin_gradient(tiny_mlp_context, ridge_context):
    """∇ℓ_i = −(1 − p_i)∇margin_i: the train side is TRAK's Q_i φ_i with the sign of the loss; in
    general ∇ℓ = (dℓ/dm)∇m with the slope of `loss_slope` (regression: 2(out − y))."""
    ctx = tiny_mlp_context
    p = torch.softmax(ctx.outputs(ctx.params, ctx.train.x), -1).gather(1, ctx.train.y[:, None])[:, 0]
    assert_close(ctx.loss_slope(ctx.params, ctx.train.x, ctx.train.y).numpy(), -(1 - p).numpy(), 1e-12)
    for c in (ctx, ridge_context):
        loss_grads = flat_per_sample_grads(c, "loss", c.train.x, c.train.y)
        output_grads = flat_per_sample_grads(c, "output", c.train.x, c.train.y)
        slopes = c.loss_slope(c.params, c.train.x, c.train.y)
        assert_close(loss_grads.numpy(), (slopes[:, None] * output_grads).numpy(), 1e-12)


def test_trak_float32_projection_is_close_to_float64(tiny_mlp_context):
    make = lambda dtype: all_scores(Trak(proj_dim=300, dtype=dtype), tiny_mlp_context)
    assert_close(make("float32"), make("float64"), 1e-5)


def test_projection_is_seeded_and_near_isometric():
    proj = RandomProjection(3000, 4000, "gaussian", seed=3)
    x = torch.randn(5, 3000, dtype=torch.float64)
    assert torch.equal(proj(x), proj(x))
    norms = proj(x).norm(dim=1) / x.norm(dim=1)
    assert ((norms - 1).abs() < 0.1).all()  # Johnson–Lindenstrauss with k = 4000
    rademacher = RandomProjection(3000, 64, "rademacher", seed=3).chunk(2)
    assert set(np.unique(rademacher.numpy() * 8).tolist()) == {-1.0, 1.0} and rademacher.shape == (952, 64)
    assert not torch.equal(RandomProjection(3000, 64, seed=4).chunk(0), RandomProjection(3000, 64, seed=3).chunk(0))


@pytest.mark.parametrize("kind", ["gaussian", "rademacher"])
def test_cached_projection_equals_the_chunk_by_chunk_product(kind):
    """Π held whole and Π regenerated per call (max_bytes=0) are the same matrix, so x Π agrees."""
    proj = RandomProjection(2500, 70, kind, seed=1)
    x = torch.randn(4, 2500, dtype=torch.float64)
    held, regenerated = CachedProjection(proj, torch.float64), CachedProjection(proj, torch.float64, max_bytes=0)
    assert held.matrix is not None and regenerated.matrix is None
    assert_close(held(x).numpy(), regenerated(x).numpy(), 1e-12)
    assert_close(held(x).numpy(), (x @ torch.cat([proj.chunk(c) for c in range(3)])).numpy(), 1e-12)


def test_trak_ensemble_averages_members(tiny_logreg_context):
    ctx = tiny_logreg_context
    both = all_scores(Trak(proj_dim=40, n_models=2), ctx)
    member = member_context(ctx, 1)
    assert not torch.equal(member.params["0.weight"], ctx.params["0.weight"])
    singles = [all_scores(Trak(proj_dim=40), c) for c in (ctx, member)]
    assert_close(both, (singles[0] + singles[1]) / 2, 1e-10)


@pytest.mark.parametrize("make", [lambda: TracIn(), lambda: Trak(proj_dim=50, dtype="float64"), lambda: HorizonLissa(),
                                  lambda: ConjugateGradientInfluence(), lambda: ArnoldiInfluence(rank=5, n_iterations=10),
                                  lambda: LissaInfluence(depth=20)])
def test_batch_size_invariance(tiny_mlp_context, make):
    scores = [all_scores(make().set_params(batch_size=b), tiny_mlp_context) for b in (7, 256)]
    assert_close(scores[0], scores[1], 1e-10)


@pytest.mark.parametrize("fns", [("target", "loss"), ("output", "output"), ("loss", "target")])
def test_factored_gradient_gram_equals_flat_gradients(tiny_mlp_context, fns, monkeypatch):
    """Per-layer (d·d')(ã·ã') inner products equal those of materialised per-sample gradients."""
    from tdabench.estimators import layers

    ctx = tiny_mlp_context.with_target("margin")
    left, right = (ctx.test, np.array([3, 0, 19, 3]), fns[0]), (ctx.train, np.array([59, 1, 2, 40]), fns[1])
    factored = layers.gradient_gram(ctx, left, right, batch_size=3)
    monkeypatch.setattr(layers, "linear_blocks_or_none", lambda context: None)
    flat = layers.gradient_gram(ctx, left, right, batch_size=3)
    expected = (flat_per_sample_grads(ctx, fns[0], left[0].x[left[1]], left[0].y[left[1]])
                @ flat_per_sample_grads(ctx, fns[1], right[0].x[right[1]], right[0].y[right[1]]).T).numpy()
    assert_close(factored.numpy(), expected, 1e-12)
    assert_close(flat.numpy(), expected, 1e-12)
    assert layers.gradient_gram(ctx, (ctx.test, np.array([], dtype=int), "loss"), right).shape == (0, 4)
