"""The derivative mode (docs/method.md, derivative mode): central finite differences of the downweight mode, the closed form
on ridge regression, independence of the checkpoint interval and of the test-point chunks, the
plan's memory, the resumable runner and `tdabench compare --mode derivative`."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gold_helpers import in_cache, small_context, spec_dict, write_small_spec
from test_cli import run_cli
from tdabench.compare import CompareOptions, prepare, run_compare
from tdabench.errors import SpecError, TdabenchError
from tdabench.report import build_leaderboard, write_leaderboard
from tdabench.results import write_results
from tdabench.scoring.metrics import agreement
from tdabench.selection import EstimatorRequest
from tdabench.suite import check_entry, load_suite, parse_suite, results_dir, settings
from tdabench.task import build_context, parse_spec
from tdabench.task.optim import FunctionalOptimizer
from tdabench.task.spec import OptimizerSpec
from tdabench.truths.further import (GoldConfig, config_from_spec, derivatives, gold_entry, paired_differences,
                                     run_gold_standard)
from tdabench.truths.further.derivative import bytes_per_test_point, derivative_plan
from tdabench.truths.further.nonlinearity import removal_config
from tdabench.truths.further.replay import checkpoint_interval, reference_steps, state_bytes

RECIPES = {
    "momentum+wd": OptimizerSpec(lr=0.05, momentum=0.9, weight_decay=0.01, batch_size=7),
    "adam": OptimizerSpec(optimizer="adam", lr=0.01, batch_size=7),
    "adamw": OptimizerSpec(optimizer="adamw", lr=0.01, weight_decay=0.1, batch_size=7),
}
EPS = 1e-5


@pytest.fixture(scope="module")
def mlp_ctx(tmp_path_factory):
    return small_context(tmp_path_factory.mktemp("cache"))


def _config(ctx, recipe: OptimizerSpec, **kw) -> GoldConfig:
    """40 instances in batches of 7 (the last batch of an epoch has 5); horizons across epochs."""
    base = dict(recipe=recipe, train_idx=(0, 5, 17, 34, 39), test_idx=(0, 3, 11), horizons=(1, 4, 13),
                horizon_unit="step", seeds=1, mode="derivative", n_train=len(ctx.train))
    return GoldConfig(**(base | kw))


def _central_difference(ctx, cfg: GoldConfig, seed: int) -> np.ndarray:
    """(diff(ε) − diff(−ε)) / 2ε of the downweight mode: → −∂f/∂w_i as ε → 0, error O(ε²)."""
    up, _ = paired_differences(ctx, dataclasses.replace(cfg, mode="downweight", epsilon=EPS), seed)
    down, _ = paired_differences(ctx, dataclasses.replace(cfg, mode="downweight", epsilon=-EPS), seed)
    return (up - down) / (2 * EPS)


def _relative_error(value: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(value - reference).max() / np.abs(reference).max())


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_derivative_equals_central_differences_of_downweighting(mlp_ctx, recipe):
    cfg = _config(mlp_ctx, RECIPES[recipe])
    d, reference = derivatives(mlp_ctx, cfg, seed=2)
    fd = _central_difference(mlp_ctx, cfg, seed=2)
    assert d.shape == (3, 3, 5) and np.abs(fd).max() > 1e-3, "the derivatives must be far from 0 to mean anything"
    assert _relative_error(d, fd) <= 1e-6
    _, ref_copies = paired_differences(mlp_ctx, dataclasses.replace(cfg, mode="downweight", epsilon=0.5), seed=2)
    np.testing.assert_allclose(reference, ref_copies, rtol=1e-12)


def test_adam_with_a_dead_unit_stays_finite_and_exact(mlp_ctx):
    """A ReLU unit that never fires has v = 0 in Adam: √v must not give ∞ · 0 = NaN in the sweep."""
    params = {k: v.clone() for k, v in mlp_ctx.params.items()}
    params["0.bias"][0] = -1e6
    ctx = dataclasses.replace(mlp_ctx, params=params)
    cfg = _config(ctx, RECIPES["adam"], horizons=(2, 6))
    d, _ = derivatives(ctx, cfg, seed=0)
    assert np.isfinite(d).all()
    assert _relative_error(d, _central_difference(ctx, cfg, seed=0)) <= 1e-6


def _small_float64(task: str, cache, target: str | None = None):
    """The task's `small` variant in float64 (the text tasks train in float32 by default)."""
    raw = spec_dict(task)
    for key, value in raw.pop("variants")["small"].items():
        raw[key] = raw.get(key, {}) | value if isinstance(value, dict) else value
    raw |= {"dtype": "float64", "name": f"{task}-small-float64"}
    return build_context(parse_spec(raw), cache, target)


@pytest.mark.parametrize("task,target", [
    ("mnist-cnn", "probe:4"), pytest.param("mnist-cnn", None, marks=pytest.mark.slow),
    pytest.param("rt-bert-tiny", None, marks=pytest.mark.slow), pytest.param("rt-minilm", None, marks=pytest.mark.slow)])
def test_every_kind_of_built_in_task_is_exact(tmp_path, task, target):
    """CNN, concept-probe target, transformer with AdamW (and MiniLM's trainable top layers)."""
    ctx = _small_float64(task, tmp_path, target)
    cfg = GoldConfig(ctx.spec.gold_standard.further_training, train_idx=(0, 3, 7), test_idx=(0, 1), horizons=(1, 3),
                     horizon_unit="step", seeds=1, mode="derivative", n_train=len(ctx.train))
    # three instances of the first batch (an instance outside the first 3 batches has d = 0 exactly,
    # which would test nothing; the small variants hold up to 1,500 training examples),
    # and the two test points of largest target (the small variants learn: most test losses are near 0)
    first = reference_steps(cfg, len(ctx.train), 0, ctx.dtype)[0].index[:3].tolist()
    with torch.no_grad():
        hardest = torch.topk(ctx.target(ctx.params, ctx.test.x, ctx.test.y), 2).indices.tolist()
    cfg = dataclasses.replace(cfg, train_idx=tuple(first), test_idx=tuple(hardest))
    d, _ = derivatives(ctx, cfg, seed=0)
    fd = _central_difference(ctx, cfg, seed=0)
    assert np.abs(fd).max() > 1e-4
    assert _relative_error(d, fd) <= 1e-6


def _ridge_derivative(ctx, cfg: GoldConfig) -> np.ndarray:
    """−∂f(z; θ_T)/∂w_i for T full-batch GD steps on R_w(θ) = Σ_j w_j (x̃_jᵀθ − y_j)² / n + (l2/2)||θ||².

    θ_{t+1} = θ_t − η(H θ_t − b), H = 2X̃ᵀWX̃/n + l2·I, b = 2X̃ᵀWy/n, so at w = 1
    θ_t = θ* + A^t (θ_0 − θ*) with A = I − ηH, and ∂θ_T/∂w_i = −(2η/n) Σ_{t<T} A^{T−1−t} x̃_i r_i(t) with
    r_i(t) = x̃_iᵀθ_t − y_i. With f(z) = (x̃_zᵀθ_T − y_z)²: d = −2(x̃_zᵀθ_T − y_z) x̃_zᵀ ∂θ_T/∂w. (H, n_test, n)
    """
    theta0 = np.concatenate([ctx.params["0.weight"].numpy()[0], ctx.params["0.bias"].numpy()])
    x = np.hstack([ctx.train.x.numpy(), np.ones((len(ctx.train), 1))])
    xt = np.hstack([ctx.test.x.numpy()[list(cfg.test_idx)], np.ones((len(cfg.test_idx), 1))])
    yt, y, n = ctx.test.y.numpy()[list(cfg.test_idx)], ctx.train.y.numpy(), len(ctx.train)
    eta, eye = cfg.recipe.lr, np.eye(x.shape[1])
    h = 2 * x.T @ x / n + ctx.l2 * eye
    star = np.linalg.solve(h, 2 * x.T @ y / n)
    a = eye - eta * h
    theta = lambda t: star + np.linalg.matrix_power(a, t) @ (theta0 - star)
    out = []
    for steps in cfg.steps:
        jac = sum(np.linalg.matrix_power(a, steps - 1 - t) @ (x.T * (x @ theta(t) - y)) for t in range(steps))
        jac *= -2 * eta / n
        out.append(-2 * (xt @ theta(steps) - yt)[:, None] * (xt @ jac))
    return np.stack(out)[:, :, list(cfg.train_idx)]


def test_ridge_full_batch_matches_closed_form(tmp_path):
    ctx = small_context(tmp_path, task="diabetes-mlp", **{"model.hidden": [], "objective.l2": 0.1})
    n = len(ctx.train)
    cfg = GoldConfig(OptimizerSpec(lr=0.05, batch_size=4 * n), train_idx=tuple(range(n)), test_idx=(0, 4, 7),
                     horizons=(1, 5, 40), horizon_unit="step", seeds=1, mode="derivative", n_train=n)
    expected = _ridge_derivative(ctx, cfg)
    d, _ = derivatives(ctx, cfg, seed=0)
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(d, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max())


def test_numbers_do_not_depend_on_the_checkpoint_interval_or_the_chunks(mlp_ctx):
    cfg = _config(mlp_ctx, RECIPES["adamw"])
    every, _ = derivatives(mlp_ctx, dataclasses.replace(cfg, checkpoint_every=1), seed=1)
    assert np.abs(every).max() > 1e-3
    for k, chunk in ((3, 2), (5, 1), (100, None)):
        other, _ = derivatives(mlp_ctx, dataclasses.replace(cfg, checkpoint_every=k, adjoint_chunk=chunk), seed=1)
        np.testing.assert_allclose(other, every, rtol=0, atol=1e-13 * np.abs(every).max())


def test_checkpoint_interval_fits_the_budget():
    for steps in (1, 7, 50, 1000):
        assert checkpoint_interval(steps, 10, 10 * steps) == 1, "all states fit: store each, recompute none"
        for states in (2 * math.isqrt(steps) + 2, steps // 2 + 1, steps - 1):
            k = checkpoint_interval(steps, 10, 10 * states)
            assert math.ceil(steps / k) + k - 1 <= max(states, 2 * math.isqrt(steps) + 1)
            assert k == 1 or math.ceil(steps / (k - 1)) + k - 2 > states, "k is the smallest that fits"
    assert checkpoint_interval(100, 10, 5) == 10, "nothing fits: k = ceil(sqrt(T)), the fewest states"


def test_plan_follows_the_budget(mlp_ctx):
    cfg = _config(mlp_ctx, RECIPES["adam"], horizons=(1, 40), test_idx=tuple(range(12)))
    per_state = state_bytes(mlp_ctx, FunctionalOptimizer(cfg.recipe))
    assert per_state == mlp_ctx.n_params * 3 * 8  # θ, m and v in float64
    assert derivative_plan(mlp_ctx, cfg, budget=2**30) == (12, 1)
    chunk, k = derivative_plan(mlp_ctx, cfg, budget=2 * 20 * per_state)
    assert chunk == max(1, 20 * per_state // bytes_per_test_point(mlp_ctx, cfg)) < 12
    assert k > 1 and math.ceil(40 / k) + k - 1 <= 20


def test_runner_is_resumable_and_keyed_apart_from_downweighting(tmp_path, mlp_ctx):
    cfg = _config(mlp_ctx, RECIPES["momentum+wd"], seeds=2)
    ctx = in_cache(mlp_ctx, tmp_path)
    gold = run_gold_standard(ctx, cfg, progress=False)
    assert gold.per_seed.shape == (2, 3, 3, 5)
    np.testing.assert_array_equal(gold.per_seed[1], derivatives(mlp_ctx, cfg, seed=1)[0])
    computed = []
    again = run_gold_standard(ctx, dataclasses.replace(cfg, checkpoint_every=2, seeds=3), progress=False,
                              after_seed=computed.append)
    assert computed == [2] and np.array_equal(again.per_seed[:2], gold.per_seed)
    assert gold_entry(ctx, cfg) != gold_entry(ctx, dataclasses.replace(cfg, mode="downweight", epsilon=1e-4))
    assert json.loads((gold_entry(ctx, cfg) / "settings.json").read_text())["mode"] == "derivative"


def test_training_instances_default_to_all_and_may_be_restricted(mlp_ctx):
    spec = mlp_ctx.spec.gold_standard
    n = len(mlp_ctx.train)
    every = config_from_spec(spec, n, len(mlp_ctx.test), mode="derivative", seeds=1, horizons=(2,))
    assert every.train_idx == tuple(range(n))
    some = config_from_spec(spec, n, len(mlp_ctx.test), mode="derivative", seeds=1, horizons=(2,),
                            n_train_evaluated=6)
    full, _ = derivatives(mlp_ctx, every, seed=0)
    part, _ = derivatives(mlp_ctx, some, seed=0)
    np.testing.assert_allclose(part, full[:, :, list(some.train_idx)], rtol=1e-12, atol=1e-15)


def test_bad_derivative_settings_are_user_errors():
    base = dict(recipe=RECIPES["adam"], train_idx=(0, 1), test_idx=(0,), horizons=(1,), n_train=5, mode="derivative")
    for bad in (dict(checkpoint_every=0), dict(adjoint_chunk=0)):
        with pytest.raises(TdabenchError, match=next(iter(bad))):
            GoldConfig(**(base | bad))


def test_compare_mode_derivative_end_to_end(tmp_path):
    spec = write_small_spec(tmp_path, **{"data.max_train": 30, "training.epochs": 2, "training.checkpoint_epochs": [2]})
    options = CompareOptions(task=str(spec), mode="derivative", estimators=(EstimatorRequest("grad-dot"),),
                             cache_dir=tmp_path, progress=False)
    results = run_compare(dataclasses.replace(options, final_models=2))
    write_results(results, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    gold = saved["gold_standard"]
    assert gold["mode"] == "derivative" and gold["epsilon"] is None
    assert gold["n_train_evaluated"] == saved["task"]["n_train"] == 30, "all training instances by default"
    assert {r["estimator"] for r in saved["records"]} == {"grad-dot"}
    assert all(r["mean"] is not None for r in saved["records"])
    assert "derivative" in (tmp_path / "out" / "results.csv").read_text()
    assert saved["seed_noise"]["final_models"] == 2, "the seed-noise analysis accepts it"
    restricted = run_compare(dataclasses.replace(options, n_train=7))
    assert restricted.gold_standard.n_train_evaluated == 7 and restricted.cost["gold_standard_s"] > 0
    removal = dataclasses.replace(results, gold_standard=dataclasses.replace(results.gold_standard, mode="removal"))
    tables = build_leaderboard([results, removal, restricted], "pearson")
    assert sorted((t.gold["mode"], t.gold["n_train_evaluated"]) for t in tables) == [
        ("derivative", 7), ("derivative", 30), ("removal", 30)], "tables never mix modes"
    pages = write_leaderboard(tables, tmp_path / "board")
    assert any(p.suffix == ".png" for p in pages) and "derivative" in (tmp_path / "board" / "README.md").read_text()


def test_removal_against_derivative_in_the_results(tmp_path):
    spec = write_small_spec(tmp_path, **{"data.max_train": 30, "training.epochs": 2, "training.checkpoint_epochs": [2],
                                         "gold_standard.n_train_evaluated": 9})
    options = CompareOptions(task=str(spec), mode="derivative", estimators=(EstimatorRequest("grad-dot"),),
                             cache_dir=tmp_path, progress=False, against_removal=True)
    results = run_compare(options)
    ctx, cfg, _ = prepare(options)
    removal_cfg, positions = removal_config(cfg, 9)
    default = config_from_spec(ctx.spec.gold_standard, len(ctx.train), len(ctx.test), mode="removal")
    assert removal_cfg.key(ctx.spec.spec_hash) == default.key(ctx.spec.spec_hash), "shared with --mode removal"
    computed: list[int] = []
    removal = run_gold_standard(ctx, removal_cfg, progress=False, after_seed=computed.append)
    derivative = run_gold_standard(ctx, cfg, progress=False, after_seed=computed.append)
    linear = results.extra["removal_vs_derivative"]
    assert linear["n_train_evaluated"] == 9 and linear["seeds"] == cfg.seeds
    assert computed == [], "compare left both gold standards in the cache"
    rows = {(r["horizon"], r["metric"]): r["mean"] for r in linear["agreement"]}
    assert len(rows) == len(cfg.horizons) * 3
    for h, horizon in enumerate(cfg.horizons):
        expected = agreement(removal.mean(h), derivative.mean(h)[:, positions], "pearson").mean
        assert rows[(horizon, "pearson")] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(TdabenchError, match="--against-removal goes with --mode derivative"):
        prepare(dataclasses.replace(options, mode="removal"))


def test_epsilon_with_mode_derivative_is_one_line_and_exit_code_2(tmp_path):
    proc = run_cli("compare", "--mode", "derivative", "--epsilon", "0.5", "--out", str(tmp_path))
    assert proc.returncode == 2 and "--epsilon goes with --mode downweight" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_derivative_suite_is_valid_and_keeps_its_results_apart(tmp_path):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "leaderboard_derivative_suite.yaml"
    suite = load_suite(path)
    assert suite.entries and all(e.mode == "derivative" and e.against_removal for e in suite.entries)
    for entry in suite.entries:
        check_entry(suite, entry)
        assert results_dir("board", entry) == Path("board", "results", f"{entry.task}-derivative")
        wanted = settings(entry, [], True)
        assert (wanted["mode"], wanted["against_removal"]) == ("derivative", True)
    plain = settings(dataclasses.replace(suite.entries[0], mode=None, against_removal=False), [], True)
    assert "mode" not in plain and "against_removal" not in plain, "older results files stay current"
    for bad in ({"mode": "exact"}, {"against_removal": "yes"}):
        with pytest.raises(SpecError, match=next(iter(bad))):
            parse_suite({"tasks": [{"task": "digits-mlp", "seeds": 2} | bad]}, "suite.yaml")
