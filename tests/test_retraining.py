"""Retraining ground truths: vectorised = sequential loops, LDS by hand, cache, compare integration."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import tiny_spec
from gold_helpers import in_cache, sequential_subset_model, write_small_spec
from tdabench.compare import CompareOptions, run_compare
from tdabench.errors import CacheMismatchError, TdabenchError, UnknownNameError
from tdabench.scoring.metrics import METRICS
from tdabench.results import read_results, write_results
from tdabench.task import build_context, parse_spec
from tdabench.task.models import build_model
from tdabench.selection import parse_estimators
from tdabench.task.schedule import TRAINING_STREAM, epoch_batches
from tdabench.task.training import train_module
from tdabench.truths.further import run_gold_standard
from tdabench.truths.names import GROUND_TRUTHS, RETRAINING_GROUND_TRUTHS
from tdabench.truths.registry import FURTHER, GROUND_TRUTH_REGISTRY, RETRAINING
from tdabench.truths.retraining import (RetrainingConfig, lds, lds_rows, random_subsets, retraining_entry,
                                        run_leave_one_out, run_subset_retraining)
from tdabench.truths.scratch import initial_params, subset_batches, train_from_scratch

TRAININGS = {
    "momentum+wd": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.01,
                    "batch_size": 16, "epochs": 3, "seed": 4},
    "adam": {"optimizer": "adam", "lr": 0.01, "batch_size": 16, "epochs": 3, "seed": 0},
}


def _context(tmp_path, training: str = "momentum+wd", max_train: int = 49):
    raw = tiny_spec(f"tiny-retrain-{training}", training=TRAININGS[training],
                    data={"source": "sklearn:load_breast_cancer", "max_train": max_train, "max_test": 10},
                    model={"kind": "mlp", "hidden": [4], "activation": "tanh", "init_seed": 3})
    return build_context(parse_spec(raw), tmp_path)


def _target(ctx, model, test_idx) -> np.ndarray:
    idx = torch.as_tensor(test_idx)
    with torch.no_grad():
        return ctx.target(dict(model.named_parameters()), ctx.test.x[idx], ctx.test.y[idx]).numpy()


def _sequential_loo(ctx, train_idx, test_idx, seed) -> tuple[np.ndarray, np.ndarray]:
    """One model at a time with training.train_module, from the final model's initialisation."""
    def run(removed: int) -> np.ndarray:
        model = build_model(ctx.spec.model, ctx.train.x.shape[1], ctx.data.n_outputs, ctx.dtype)
        train_module(model, ctx.train, ctx.spec.objective, ctx.spec.training, removed=removed,
                     seed=ctx.spec.training.seed + seed, stream=TRAINING_STREAM)
        return _target(ctx, model, test_idx)
    reference = run(-1)
    return np.stack([run(i) - reference for i in train_idx], axis=1), reference


@pytest.mark.parametrize("training", list(TRAININGS))
def test_vectorised_loo_equals_sequential_train_module(tmp_path, training):
    ctx = _context(tmp_path, training)
    cfg = RetrainingConfig(train_idx=(0, 7, 48), test_idx=(0, 3, 9), seeds=2, chunk_size=2)
    loo = run_leave_one_out(in_cache(ctx, tmp_path), cfg, progress=False)
    for s in range(2):
        diff, reference = _sequential_loo(ctx, cfg.train_idx, cfg.test_idx, s)
        assert np.abs(diff).max() > 1e-5, "the removals must change the target"
        np.testing.assert_allclose(loo.per_seed[s], diff, rtol=0, atol=1e-12)
        np.testing.assert_allclose(loo.reference[s], reference, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(loo.mean(), loo.per_seed.mean(0))


def test_seed_zero_reference_is_the_final_model(tmp_path):
    ctx = _context(tmp_path)
    test_idx = (0, 1, 2, 5)
    final = ctx.target(ctx.params, ctx.test.x[list(test_idx)], ctx.test.y[list(test_idx)]).numpy()
    ours = train_from_scratch(ctx, np.ones((1, len(ctx.train)), bool), 0, test_idx)[0]
    np.testing.assert_allclose(ours, final, rtol=1e-12)
    first = initial_params(ctx)
    assert not torch.equal(first["0.weight"], ctx.params["0.weight"])


def test_one_removal_batches_equal_epoch_batches():
    perm = np.random.default_rng(0).permutation(21)
    removed = np.array([-1, 4, 20])
    keep = np.ones((3, 21), bool)
    keep[1, 4] = keep[2, 20] = False
    for ours, theirs in zip(subset_batches(perm, keep, 5), epoch_batches(perm, removed, 5), strict=True):
        for a, b in ((ours.index, theirs.index), (ours.weight, theirs.weight), (ours.mask, theirs.mask)):
            np.testing.assert_array_equal(a, b)


def _sequential_subset(ctx, keep_row, seed, test_idx) -> np.ndarray:
    """A plain torch.optim loop on the shared order restricted to the subset, batch mean + l2."""
    model = sequential_subset_model(ctx, keep_row, seed)
    return _target(ctx, model, test_idx)


@pytest.mark.parametrize("training", list(TRAININGS))
def test_vectorised_subsets_equal_sequential_training_on_the_subset(tmp_path, training):
    ctx = _context(tmp_path, training)
    keep = random_subsets(len(ctx.train), 3, 0.5, seed=1)
    assert (keep.sum(1) == 24).all() and len({tuple(r) for r in keep}) == 3
    ours = train_from_scratch(ctx, keep, 1, (0, 4, 8))
    for row in range(3):
        np.testing.assert_allclose(ours[row], _sequential_subset(ctx, keep[row], 1, (0, 4, 8)),
                                   rtol=1e-12, atol=1e-13)


def test_lds_by_hand():
    """Removed sets {0}, {1, 2}, {3}, {0, 1} with scores 1, 2, 4, 8 predict 1, 6, 8, 3."""
    scores = np.array([[1.0, 2.0, 4.0, 8.0], [1.0, 2.0, 4.0, 8.0]])
    removed = [[0], [1, 2], [3], [0, 1]]
    keep = np.ones((4, 4), bool)
    for m, r in enumerate(removed):
        keep[m, r] = False
    targets = np.array([[10.0, 30.0, 20.0, 40.0],   # ranks 1 3 2 4 vs 1 3 4 2: ρ = 1 − 6·8/60 = 0.2
                        [4.0, 2.0, 1.0, 3.0]])      # reversed ranks: ρ = −1
    np.testing.assert_allclose(lds_rows(scores, keep, targets), [0.2, -1.0], atol=1e-12)
    summary = lds(scores, keep, targets)
    assert summary.mean == pytest.approx(-0.4) and summary.sem == pytest.approx(0.6) and summary.n == 2


def test_lds_of_an_additive_target_is_one():
    rng = np.random.default_rng(0)
    effect = rng.normal(size=(3, 30))  # f(S) − f(D) = Σ_{i∉S} effect(i): exactly what the prediction sums
    keep = random_subsets(30, 20, 0.5, seed=0)
    targets = 5.0 + effect @ (~keep).T
    np.testing.assert_allclose(lds_rows(effect, keep, targets), 1.0)
    assert lds(-effect, keep, targets).mean == pytest.approx(-1.0)


def test_cache_resumes_and_refuses_other_settings(tmp_path):
    ctx = _context(tmp_path)
    cfg = RetrainingConfig(train_idx=(1, 2), test_idx=(0, 1), seeds=3, subsets=4)

    def die_after_first(seed: int) -> None:
        if seed == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_subset_retraining(in_cache(ctx, tmp_path / "a"), cfg, progress=False, after_seed=die_after_first)
    computed = []
    resumed = run_subset_retraining(in_cache(ctx, tmp_path / "a"), cfg, progress=False, after_seed=computed.append)
    assert computed == [1, 2]
    fresh = run_subset_retraining(in_cache(ctx, tmp_path / "b"), cfg, progress=False)
    np.testing.assert_array_equal(resumed.per_seed, fresh.per_seed)
    assert resumed.per_seed.shape == (3, 4, 2) and resumed.targets().shape == (2, 4)
    settings = retraining_entry(in_cache(ctx, tmp_path / "a"), cfg.settings("lds", ctx)) / "settings.json"
    settings.write_text(json.dumps(json.loads(settings.read_text()) | {"fraction": 0.3}))
    with pytest.raises(CacheMismatchError, match="fraction"):
        run_subset_retraining(in_cache(ctx, tmp_path / "a"), cfg, progress=False)


@pytest.mark.parametrize("bad,match", [(dict(seeds=0), "seeds"), (dict(subsets=2), "subsets"),
                                       (dict(fraction=1.0), "fraction")])
def test_bad_retraining_config_is_a_user_error(bad, match):
    with pytest.raises(TdabenchError, match=match):
        RetrainingConfig(**(dict(train_idx=(0,), test_idx=(0,)) | bad))


def test_compare_adds_retraining_and_seed_noise(tmp_path):
    spec = write_small_spec(tmp_path, name="small-retrain")
    options = CompareOptions(task=str(spec), progress=False, cache_dir=tmp_path / "cache",
                             estimators=tuple(parse_estimators("grad-dot,if-lissa-horizon(method=recursion)")),
                             retraining=("loo", "lds"), retraining_seeds=2, lds_subsets=5, final_models=2)
    results = run_compare(options)
    assert not results.errors
    loo = [r for r in results.records if r.ground_truth == "loo"]
    lds_records = [r for r in results.records if r.ground_truth == "lds"]
    assert {(r.estimator, r.metric, r.horizon) for r in loo} == {
        (e, m, 5) for e in ("grad-dot", "if-lissa-horizon(method=recursion)") for m in METRICS}
    assert [r.metric for r in lds_records] == ["lds", "lds"] and all(r.n_test == 8 for r in lds_records)
    extra = results.extra["retraining"]
    assert extra["loo"]["seeds"] == 2 and extra["loo"]["seconds"] > 0 and extra["lds"]["subsets"] == 5
    assert [c["metric"] for c in extra["loo"]["noise_ceiling"]] == list(METRICS) and not extra["errors"]
    assert results.extra["seed_noise"]["final_models"] == 2
    read = read_results(write_results(results, tmp_path / "out")[0])
    assert read.extra == json.loads(json.dumps(results.extra)) and read.records == results.records
    again = run_compare(options)  # everything cached: same records, no retraining time
    assert again.records == results.records and again.extra["retraining"]["loo"]["seconds"] == 0


def test_one_registry_of_ground_truths():
    """Every ground-truth name has its runner in one registry; the retraining ones are those that
    compare and the suite accept."""
    assert tuple(GROUND_TRUTH_REGISTRY) == GROUND_TRUTHS == ("further-training", "loo", "lds")
    assert all(name == truth.name and truth.description for name, truth in GROUND_TRUTH_REGISTRY.items())
    assert tuple(RETRAINING) == RETRAINING_GROUND_TRUTHS and FURTHER.runner is run_gold_standard
    assert {n: t.runner for n, t in RETRAINING.items()} == {"loo": run_leave_one_out, "lds": run_subset_retraining}


def test_unknown_retraining_name_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="lds, loo"):
        run_compare(CompareOptions(retraining=("loo", "tracin-retrain"), progress=False))
    with pytest.raises(TdabenchError, match="final_models"):
        run_compare(CompareOptions(final_models=0, progress=False))
