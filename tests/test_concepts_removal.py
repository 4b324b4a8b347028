"""Issue 16: the removal experiment — ranking by summed attribution, the copies' masks, the stacked
copies' parameters against the output-recording machinery already checked against sequential loops,
the paired summaries, the random control on a tiny task, and concepts.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.func import vmap

from tdabench.concepts.layers import copy_params, layer_activations
from tdabench.concepts.options import ConceptOptions
from tdabench.concepts.probes import layer_probe
from tdabench.concepts.removal import (METRICS, concept_test_points, condition_names, copy_probes, keep_masks,
                                       random_order, removal_order)
from tdabench.concepts.results import read_concepts, write_concepts
from tdabench.concepts.run import run_concepts
from tdabench.concepts.summary import best_layers, summarise
from tdabench.errors import TdabenchError
from tdabench.task import build_context, find_spec
from tdabench.task.concepts import concept_labels
from tdabench.task.context import load_task_data
from tdabench.truths.further.subsets import further_train_params, further_train_subsets
from tdabench.truths.scratch import scratch_outputs, scratch_params


def test_removal_order_sums_over_the_concept_test_points_most_negative_first():
    scores = np.array([[1.0, -2.0, 0.5, 0.0, 0.25],
                       [0.0, -1.0, -3.0, 0.5, 0.25]])  # totals 1, −3, −2.5, 0.5, 0.5
    order = removal_order(scores)
    assert order.tolist() == [1, 2, 3, 4, 0]  # the tie 0.5 = 0.5 keeps the lower column first
    assert set(order[:2].tolist()) == {1, 2}


def test_keep_masks_follow_the_condition_names():
    top, rand = np.array([4, 0, 2, 1, 3]), np.array([1, 3, 0, 4, 2])
    keep = keep_masks(top, rand, [1, 3])
    assert condition_names([1, 3]) == ["none", "top-1", "top-3", "random-1", "random-3"]
    expected = np.ones((5, 5), dtype=bool)
    expected[1, [4]] = expected[2, [4, 0, 2]] = expected[3, [1]] = expected[4, [1, 3, 0]] = False
    np.testing.assert_array_equal(keep, expected)


def test_concept_test_points_and_random_order():
    labels = np.array([True, False, True, True, False, True])
    assert concept_test_points(labels, 10, 0).tolist() == [0, 2, 3, 5]
    drawn = concept_test_points(labels, 2, 0)
    assert len(drawn) == 2 and set(drawn) <= {0, 2, 3, 5} and drawn.tolist() == sorted(drawn.tolist())
    assert sorted(random_order(7, 3).tolist()) == list(range(7))
    np.testing.assert_array_equal(random_order(7, 3), random_order(7, 3))


def test_summaries_are_paired_over_seeds():
    # values (S=3, C=5 of condition_names([2, 4]), L=2, M): accuracy only differs
    conditions, layers = condition_names([2, 4]), ["a", "b"]
    values = np.zeros((3, 5, 2, len(METRICS)))
    acc = METRICS.index("accuracy")
    values[:, 0, :, acc] = np.array([0.9, 0.8, 0.7])[:, None]  # none: seed noise
    values[:, 1, :, acc] = values[:, 0, :, acc] - 0.1  # top-2: exactly 0.1 below none in every seed
    values[:, 3, :, acc] = values[:, 0, :, acc] + np.array([0.01, -0.01, 0.0])[:, None]  # random-2
    out = summarise(values, conditions, layers)
    delta = out["top-2"]["a"]["accuracy"]["delta"]
    assert delta["mean"] == pytest.approx(-0.1) and delta["high"] - delta["low"] == pytest.approx(0, abs=1e-12)
    vs = out["top-2"]["b"]["accuracy"]["vs_random"]
    assert vs["mean"] == pytest.approx(-0.1) and vs["low"] < -0.1 < vs["high"]
    assert out["random-2"]["a"]["accuracy"]["delta"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert "vs_random" not in out["random-2"]["a"]["accuracy"]
    assert out["none"]["a"]["accuracy"]["value"]["mean"] == pytest.approx(0.8)
    values[:, :, 1, acc] += 0.05  # layer b better everywhere
    assert best_layers(values, conditions, layers) == {c: "b" for c in conditions}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return build_context(find_spec("digits-mlp@small"), tmp_path_factory.mktemp("cache"))


def _keep(n: int) -> np.ndarray:
    keep = np.ones((3, n), dtype=bool)
    keep[1, :20] = False
    keep[2, 50:130] = False
    return keep


def test_further_trained_params_give_the_outputs_of_further_train_subsets(digits):
    keep, recipe = _keep(len(digits.train)), digits.spec.gold_standard.further_training
    params = further_train_params(digits, recipe, keep, seed=1, steps=9)
    idx = np.arange(7)
    reference, outputs = further_train_subsets(digits, recipe, keep, 1, [9], idx)
    mine = vmap(lambda p: digits.outputs(p, digits.test.x[:7]))(params).numpy()
    np.testing.assert_allclose(mine[0], reference[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mine, outputs[0], rtol=1e-12, atol=1e-12)


def test_scratch_params_give_the_outputs_of_scratch_outputs(digits):
    keep = _keep(len(digits.train))
    params = scratch_params(digits, keep, seed=2)
    mine = vmap(lambda p: digits.outputs(p, digits.test.x[:5]))(params).numpy()
    np.testing.assert_allclose(mine, scratch_outputs(digits, keep, 2, np.arange(5)), rtol=1e-12, atol=1e-12)


def test_copy_probes_equal_the_probes_of_each_copy_alone(digits):
    keep = _keep(len(digits.train))
    stacked = further_train_params(digits, digits.spec.gold_standard.further_training, keep, 0, 4)
    y_train, y_test = (concept_labels("closed-loop", s) for s in (digits.train, digits.test))
    got = copy_probes(digits, stacked, ["1", "2"], y_train, y_test, {"1": 0.3, "2": 0.1})
    params = copy_params(stacked, 2)
    for layer, c, probe in zip(["1", "2"], [0.3, 0.1], got[2]):
        train = layer_activations(digits.model, params, digits.buffers, digits.train.x, [layer])[layer]
        test = layer_activations(digits.model, params, digits.buffers, digits.test.x, [layer])[layer]
        assert probe == layer_probe(layer, train, test, y_train, y_test, "closed-loop", c)
    assert not torch.equal(stacked["0.weight"][0], stacked["0.weight"][2])  # the copies did differ


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    """digits-mlp@small retrained from scratch, 3 seeds, k = 10 of 200 (no agreement)."""
    options = ConceptOptions(task="digits-mlp@small", estimators=(), removal=("retrain",), fractions=(0.05,),
                             seeds=3, n_concept_test=20, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    return run_concepts(options)


def test_random_removal_leaves_probe_accuracy_within_its_seed_noise(payload):
    """Removing 10 random instances of 200 shifts no layer's probe accuracy beyond the seed noise:
    the t-interval over seeds of the paired change contains 0. (Its test loss does rise a little:
    retraining on 95 % of the data takes 5 % fewer steps.)"""
    entry = payload["removal"]["modes"]["retrain"]
    assert entry["conditions"] == ["none", "top-10", "random-10"]
    for layer in entry["layers"]:
        delta = entry["summary"]["random-10"][layer]["accuracy"]["delta"]
        assert delta["low"] <= 0.0 <= delta["high"], (layer, delta)
        assert abs(delta["mean"]) < 0.05


def test_seed_zero_with_nothing_removed_is_the_final_model(payload):
    final = {p["layer"]: p for p in payload["layers"]}
    for probe in payload["removal"]["modes"]["retrain"]["per_seed"][0][0]:
        assert probe == pytest.approx(final[probe["layer"]])


def test_concepts_json_round_trip(payload, tmp_path):
    path = write_concepts(payload, tmp_path)
    assert read_concepts(tmp_path) == json.loads(json.dumps(payload))
    assert payload["removal"]["ks"] == [10] and len(payload["removal"]["removed"]) == 10
    raw = json.loads(path.read_text())
    path.write_text(json.dumps(raw | {"schema_version": 99}))
    with pytest.raises(TdabenchError, match="schema version 99"):
        read_concepts(path)
    path.write_text(json.dumps(raw | {"kind": "tdabench-downstream"}))
    with pytest.raises(TdabenchError, match="not a tdabench concepts"):
        read_concepts(path)
    with pytest.raises(ValueError):
        write_concepts(payload | {"best_layer": float("nan")}, tmp_path)


def test_removed_concept_share_is_counted_by_hand(payload):
    train = load_task_data(find_spec("digits-mlp@small")).train
    closed = np.isin(train.y.numpy(), (0, 6, 8, 9))
    removed = payload["removal"]["removed"]
    assert payload["removal"]["removed_concept_share"] == [pytest.approx(closed[removed[:10]].mean())]


def test_plot_draws_the_layers_and_one_column_per_removal_mode(payload, tmp_path):
    pytest.importorskip("matplotlib")
    from tdabench.report.concepts_plot import concepts_figure, write_concepts_plot

    fig = concepts_figure(payload)
    assert len(fig.axes) == 2 + 2  # across layers (probes, agreement) + retrain (accuracy, Δ)
    lines = {line.get_label() for line in fig.axes[2].get_lines()}
    assert {"none", "top-10", "random-10"} <= lines
    assert [p.name for p in write_concepts_plot(payload, tmp_path)] == ["concepts.png", "concepts.svg"]
