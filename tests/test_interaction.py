"""Interaction targets 'interaction:S' (Harsanyi AND-interaction) and `tdabench interactions`, against
closed forms, an explicit numpy loop over subsets, finite differences and flat per-sample gradients."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from torch.func import grad

from estimator_helpers import least_squares_spec
from gold_helpers import write_small_spec
from subprocess_helpers import scrubbed_environment
from tdabench.compare import check_target
from tdabench.errors import TdabenchError
from tdabench.estimators.gradients import flat_per_sample_grads
from tdabench.estimators.layers import gradient_gram, linear_blocks_or_none
from tdabench.interactions import InteractionOptions, read_interactions, salient_interactions, write_interactions
from tdabench.interactions.salient import coalitions, mobius_matrix
from tdabench.task import build_context, find_spec
from tdabench.task.interaction import Interaction, Masker, make_interaction, value_target
from tdabench.task.spec import ObjectiveSpec
from tdabench.task.targets import check_target_name, make_target
from tdabench.truths.further import config_from_spec, paired_differences, paired_differences_sequential

OUTPUT = lambda out, y: out[..., 0]  # noqa: E731  v for regression: the model output


def _regression(features, baseline, model) -> Interaction:
    return Interaction(tuple(features), Masker(len(baseline), baseline), OUTPUT, "output")


def test_product_model_has_the_closed_form_interactions():
    """f = a·x1·x2 + b·x3 at baseline 0: I({1,2}) = a·x1·x2, I({3}) = b·x3, every other S gives 0."""
    a, b = 1.7, -0.6
    x = torch.tensor([[0.3, -1.2, 2.5, 0.8], [1.0, 0.4, -0.7, -2.0]], dtype=torch.float64)
    f = lambda xs: (a * xs[:, 1] * xs[:, 2] + b * xs[:, 3]).unsqueeze(-1)  # noqa: E731
    zero, y = torch.zeros(4, dtype=torch.float64), torch.zeros(2)
    value = lambda s: _regression(s, zero, f).evaluate(f, x, y)  # noqa: E731
    torch.testing.assert_close(value([1, 2]), a * x[:, 1] * x[:, 2], rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(value([2, 1]), a * x[:, 1] * x[:, 2], rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(value([3]), b * x[:, 3], rtol=1e-14, atol=1e-14)
    for s in ([1], [2], [0], [1, 3], [0, 1, 2], [1, 2, 3]):
        assert value(s).abs().max() < 1e-14, s
    # the helper's memoised Möbius transform over all coalitions gives the same table
    sets = coalitions(4, 4)
    masks = torch.tensor([[i in t for i in range(4)] for t in sets])
    v = f(torch.where(masks, x[0], zero))[:, 0].numpy()
    table = dict(zip(sets, mobius_matrix(sets) @ v))
    expected = {(1, 2): a * x[0, 1] * x[0, 2], (3,): b * x[0, 3], (): 0.0}
    for s, i_s in table.items():
        assert i_s == pytest.approx(float(expected.get(s, 0.0)), abs=1e-14), s


def test_interactions_of_all_subsets_sum_to_the_change_from_the_baseline():
    """Efficiency: Σ_{∅ ≠ S ⊆ N} I(S | x) = v(x) − v(b), on a random MLP with a nonzero baseline."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    x, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    with torch.no_grad():
        total = sum(_regression(s, b, model).evaluate(model, x, torch.zeros(3))
                    for k in range(1, 5) for s in itertools.combinations(range(4), k))
        torch.testing.assert_close(total, model(x)[:, 0] - model(b[None])[:, 0], rtol=1e-12, atol=1e-12)


def _numpy_interaction(ctx, features, x: np.ndarray, y: int) -> float:
    """I(S | x) by hand: a loop over T ⊆ S, masking in numpy, v = log p_y − log(1 − p_y) in numpy."""
    baseline = ctx.train.x.numpy().mean(0)
    total = 0.0
    for k in range(len(features) + 1):
        for t in itertools.combinations(features, k):
            masked = baseline.copy()
            masked[list(t)] = x[list(t)]
            with torch.no_grad():
                logits = ctx.outputs(ctx.params, torch.as_tensor(masked[None]))[0].numpy()
            p = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
            total += (-1.0) ** (len(features) - k) * (np.log(p[y]) - np.log(1 - p[y]))
    return total


def test_classification_target_is_its_definition(tiny_mlp_context):
    ctx = tiny_mlp_context.with_target("interaction:0,3,7")
    x, y = ctx.test.x[:4], ctx.test.y[:4]
    with torch.no_grad():
        got = ctx.target(ctx.params, x, y).numpy()
    expected = [_numpy_interaction(ctx, (0, 3, 7), x[j].numpy(), int(y[j])) for j in range(4)]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert ctx.interaction.describe()["value"] == "margin"
    assert ctx.interaction.describe()["baseline"] == pytest.approx(ctx.train.x.mean(0).tolist(), abs=1e-15)


def test_target_gradient_matches_central_differences(tiny_mlp_context):
    ctx = tiny_mlp_context.with_target("interaction:1,4")
    x, y = ctx.test.x[2:3], ctx.test.y[2:3]
    f = lambda p: ctx.target(p, x, y)[0]  # noqa: E731
    g = grad(f)(ctx.params)
    gen = torch.Generator().manual_seed(1)
    u = {k: torch.randn(v.shape, generator=gen, dtype=torch.float64) for k, v in ctx.params.items()}
    h = 1e-5
    shifted = lambda s: f({k: v + s * h * u[k] for k, v in ctx.params.items()})  # noqa: E731
    fd = (shifted(1) - shifted(-1)) / (2 * h)
    analytic = sum((g[k] * u[k]).sum() for k in g)
    assert float(analytic) == pytest.approx(float(fd), rel=1e-7, abs=1e-10)


def test_factored_gradient_gram_sums_the_masked_rows(tiny_mlp_context):
    """estimators/layers.py: an example evaluated on 2^|S| masked inputs owns 2^|S| factor rows."""
    ctx = tiny_mlp_context.with_target("interaction:0,2,5")
    assert linear_blocks_or_none(ctx) is not None
    test_idx, train_idx = np.arange(5), np.arange(7)
    gram = gradient_gram(ctx, (ctx.test, test_idx, "target"), (ctx.train, train_idx, "loss"), batch_size=3)
    left = flat_per_sample_grads(ctx, "target", ctx.test.x[:5], ctx.test.y[:5])
    right = flat_per_sample_grads(ctx, "loss", ctx.train.x[:7], ctx.train.y[:7])
    torch.testing.assert_close(gram, left @ right.T, rtol=1e-12, atol=1e-14)


def test_vectorised_gold_standard_matches_the_sequential_loop(tiny_mlp_context):
    ctx = tiny_mlp_context.with_target("interaction:0,1")
    cfg = config_from_spec(ctx.spec.gold_standard, len(ctx.train), len(ctx.test), seeds=1, horizons=(1, 2),
                           n_train_evaluated=3, n_test_evaluated=4)
    vec, ref = paired_differences(ctx, cfg, seed=0)
    seq, ref_seq = paired_differences_sequential(ctx, cfg, seed=0)
    np.testing.assert_allclose(ref, ref_seq, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(vec, seq, rtol=1e-6, atol=1e-10)
    assert np.abs(vec).max() > 0


def test_token_masking_keeps_special_tokens():
    """Word tokens outside the coalition → [PAD] (0); [CLS] (2), [SEP] (3), [PAD] stay."""
    x = torch.tensor([[2, 57, 88, 41, 3, 0]])
    keep = torch.tensor([[False, True, False, False, False, False]])
    assert Masker(6).apply(x, keep).tolist() == [[2, 57, 0, 0, 3, 0]]


def test_token_interaction_on_bert_is_its_definition():
    """rt-bert-tiny@plumbing (any parameters will do): I(S) of token positions by an explicit loop
    that replaces every word token outside T by [PAD] (ids 0, 2, 3 = [PAD], [CLS], [SEP] kept)."""
    ctx = build_context(find_spec("rt-bert-tiny@plumbing"), target="interaction:1,3")
    margin = ctx.with_target("margin")
    x, y = ctx.test.x[:2], ctx.test.y[:2]
    with torch.no_grad():
        got = ctx.target(ctx.params, x, y)
        hand = []
        for j in range(2):
            total = 0.0
            for k in range(3):
                for t in itertools.combinations((1, 3), k):
                    masked = [int(v) if p in t or int(v) in (0, 2, 3) else 0 for p, v in enumerate(x[j])]
                    total += (-1) ** (2 - k) * float(margin.target(ctx.params, torch.tensor([masked]), y[j:j + 1])[0])
            hand.append(total)
    np.testing.assert_allclose(got.numpy(), hand, rtol=1e-4, atol=1e-6)  # float32 task
    assert flat_per_sample_grads(ctx, "target", x, y).norm(dim=1).min() > 0


@pytest.mark.parametrize("name,needle", [
    ("interaction:", "comma-separated feature indices"),
    ("interaction:a,1", "comma-separated feature indices"),
    ("interaction:1,-2", "comma-separated feature indices"),
    ("interaction:1,1", "distinct"),
    ("interaction:0,1,2,3,4", "at most 4 features"),
])
def test_malformed_sets_are_refused(name, needle):
    with pytest.raises(TdabenchError, match=needle):
        check_target_name(name, ObjectiveSpec(loss="cross-entropy"), 2, None)


def test_data_dependent_checks(tiny_mlp_context, tiny_cnn_context):
    with pytest.raises(TdabenchError, match=r"out of range: the inputs have 30 players"):
        check_target("interaction:3,30", tiny_mlp_context.spec, tiny_mlp_context.data)
    check_target("interaction:3,29", tiny_mlp_context.spec, tiny_mlp_context.data)
    with pytest.raises(TdabenchError, match=r"need tabular features or wordpiece token ids; .* inputs of shape \(1, 8, 8\)"):
        make_interaction("interaction:0", tiny_cnn_context.spec, tiny_cnn_context.data)
    with pytest.raises(TdabenchError, match="cross-entropy or squared loss"):
        value_target(ObjectiveSpec(loss="custom"))
    with pytest.raises(TdabenchError, match="interaction target .* not a function of the model outputs"):
        make_target("interaction:0,1", ObjectiveSpec(loss="cross-entropy"))


def test_salient_interactions_agree_with_the_target(tmp_path):
    """The helper's memoised table at the final model = the target I(S | x) of the same S."""
    spec = write_small_spec(tmp_path)
    options = InteractionOptions(task=str(spec), test_indices=(1, 4), max_order=2, horizons=(1,), progress=False)
    payload = salient_interactions(options)
    assert payload["schema_version"] == 1 and [s["horizon"] for s in payload["states"]] == [0, 1]
    ctx = build_context(find_spec(str(spec)))
    for point in payload["points"]:
        assert len(point["interactions"]) == 30 + 435
        for entry in point["interactions"][:3] + point["interactions"][-2:]:
            target = ctx.with_target("interaction:" + ",".join(map(str, entry["features"])))
            j = point["test_index"]
            with torch.no_grad():
                i_s = float(target.target(ctx.params, ctx.test.x[j:j + 1], ctx.test.y[j:j + 1])[0])
            assert entry["values"][0] == pytest.approx(i_s, rel=1e-9, abs=1e-12)
        magnitudes = [abs(e["values"][0]) for e in point["interactions"]]
        assert magnitudes == sorted(magnitudes, reverse=True)
        state = point["states"][0]
        assert state["sparsity"]["threshold"] == pytest.approx(0.05 * magnitudes[0])
    # the file: written with its kind and schema version, read back equal; another kind is refused
    path = write_interactions(payload, tmp_path / "out")
    assert read_interactions(tmp_path / "out") == read_interactions(path) == json.loads(json.dumps(payload))
    with pytest.raises(TdabenchError, match="not a tdabench interactions results file"):
        read_interactions(_write_other_kind(tmp_path / "bad" / "interactions.json"))


def _write_other_kind(path):
    path.parent.mkdir(parents=True)
    path.write_text('{"schema_version": 1, "kind": "tdabench-downstream"}')
    return path


def test_a_linear_model_has_only_first_order_interactions(tmp_path):
    """Ridge regression f = wᵀx + c, every S ⊆ N (d = 10): I({i}) = w_i (x_i − b_i), I(S) = 0 for
    |S| ≥ 2, and Σ_S I(S) = v(x) − v(b), at the final model and after further training."""
    spec = tmp_path / "linear.yaml"
    spec.write_text(yaml.safe_dump(least_squares_spec("tiny-linear-interactions")))
    payload = salient_interactions(InteractionOptions(task=str(spec), test_indices=(2,), max_order=99,
                                                      horizons=(1,), progress=False))
    ctx = build_context(find_spec(str(spec)))
    (w,), b = [p for k, p in ctx.params.items() if k.endswith("weight")], ctx.train.x.mean(0)
    point, x = payload["points"][0], ctx.test.x[2]
    assert payload["max_order"] == 10 and len(point["interactions"]) == 2 ** 10 - 1
    first = {e["features"][0]: e["values"][0] for e in point["interactions"] if len(e["features"]) == 1}
    np.testing.assert_allclose([first[i] for i in range(10)], (w[0] * (x - b)).numpy(), rtol=1e-10, atol=1e-13)
    for state, stats in enumerate(point["states"]):
        assert max(abs(e["values"][state]) for e in point["interactions"] if len(e["features"]) > 1) < 1e-12
        assert stats["sum_interactions"] == pytest.approx(stats["v_x"] - stats["v_baseline"], abs=1e-12)
        assert stats["sparsity"]["by_order"]["2"] == 0.0
    assert point["interactions"][0]["values"][1] != point["interactions"][0]["values"][0]  # training moved w


@pytest.mark.slow
def test_cli_interactions_and_bad_target(tmp_path):
    """End to end in subprocesses (about 20 s on 2 idle cores): `tdabench interactions`, a bad
    interaction target (exit 2 before training) and `compare --target interaction:3,0`."""
    spec = write_small_spec(tmp_path)
    run = lambda *args: subprocess.run([sys.executable, "-m", "tdabench.cli", *args], capture_output=True,  # noqa: E731
                                       text=True, env=scrubbed_environment(), timeout=300)
    proc = run("interactions", "--task", str(spec), "--test-index", "0", "--max-order", "1", "--horizons", "1",
               "--out", str(tmp_path / "out"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "test point 0" in proc.stdout and read_interactions(tmp_path / "out")["points"]
    proc = run("compare", "--task", str(spec), "--target", "interaction:0,31", "--out", str(tmp_path / "c"))
    assert proc.returncode == 2 and "out of range" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("compare", "--task", str(spec), "--target", "interaction:3,0", "--estimators", "grad-dot",
               "--out", str(tmp_path / "c"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "c" / "results.json").read_text())
    assert results["task"]["target"] == "interaction:3,0" and results["task"]["interaction"]["features"] == [3, 0]
    assert len(results["task"]["interaction"]["baseline"]) == 30 and not results.get("errors")
    assert {r["estimator"] for r in results["records"]} == {"grad-dot"}
