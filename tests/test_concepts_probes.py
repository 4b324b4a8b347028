"""Issue 16: the layers a concept is probed on, the probe target against its definition by hand, the
L1 probe's sparsity on a planted problem, and the Student-t interval of the removal summaries."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tdabench.concepts.layers import eligible_layers, layer_activations, resolve_layers
from tdabench.concepts.probes import choose_l1_c, l1_fit, layer_probe
from tdabench.errors import TdabenchError, UnknownNameError
from tdabench.scoring.stats import t_interval
from tdabench.task import build_context, find_spec
from tdabench.task.concepts import concept_labels


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """digits-mlp@small: MLP 64→16→10 (tanh) on 200 of scikit-learn's 8×8 digits, float64; concept
    'closed-loop'."""
    return build_context(find_spec("digits-mlp@small"), tmp_path_factory.mktemp("cache"))


def test_eligible_layers_of_a_tiny_mlp_and_cnn(tiny_mlp_context, tiny_cnn_context):
    assert eligible_layers(tiny_mlp_context.model) == ["0", "1", "2"]  # Linear, Tanh, Linear
    # Conv, Tanh, MaxPool, (Flatten left out: a reshaping of the pool), Linear
    assert [type(m).__name__ for m in tiny_cnn_context.model] == ["Conv2d", "Tanh", "MaxPool2d", "Flatten", "Linear"]
    assert eligible_layers(tiny_cnn_context.model) == ["0", "1", "2", "4"]


class _Blocks(nn.Module):
    """A transformer-shaped module: embedding, a ModuleList of blocks, dropout, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Linear(3, 4)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(4, 4), nn.ReLU()) for _ in range(2)])
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        h = self.emb(x)
        for block in self.blocks:
            h = block(h)
        return self.head(self.drop(h))


def test_eligible_layers_expand_a_module_list_and_skip_dropout():
    assert eligible_layers(_Blocks()) == ["emb", "blocks.0", "blocks.1", "head"]
    x = torch.zeros(2, 3)
    assert resolve_layers(_Blocks(), None, x) == ["emb", "blocks.0", "blocks.1", "head"]
    assert resolve_layers(_Blocks(), ["blocks.0.1"], x) == ["blocks.0.1"]  # any submodule by name
    with pytest.raises(UnknownNameError, match="probe layer 'blocks.7'"):
        resolve_layers(_Blocks(), ["blocks.7"], x)


def test_layers_the_forward_pass_skips_are_not_eligible():
    model = _Blocks()
    model.forward = lambda x: model.head(x[:, :4])  # emb and blocks do not run (precomputed features)
    x = torch.zeros(2, 4)
    assert resolve_layers(model, None, x) == ["head"]
    with pytest.raises(TdabenchError, match="not run by the model's forward pass"):
        resolve_layers(model, ["blocks.0"], x)


def test_activations_of_every_layer_in_one_pass_equal_the_forward_by_hand(tiny_cnn_context):
    ctx = tiny_cnn_context
    x = ctx.test.x[:7]
    acts = layer_activations(ctx.model, ctx.params, ctx.buffers, x, ["0", "1", "2", "4"], batch_size=3)
    conv = torch.nn.functional.conv2d(x, ctx.params["0.weight"], ctx.params["0.bias"])
    pool = torch.nn.functional.max_pool2d(torch.tanh(conv), 2)
    logits = pool.flatten(1) @ ctx.params["4.weight"].T + ctx.params["4.bias"]
    for layer, expected in (("0", conv), ("1", torch.tanh(conv)), ("2", pool), ("4", logits)):
        torch.testing.assert_close(acts[layer], expected.flatten(1), rtol=1e-12, atol=1e-12)


def _logistic_by_hand(z: np.ndarray, y: np.ndarray, c: float = 1.0) -> tuple[np.ndarray, float]:
    """argmin_w,b  c·Σ log(1 + exp(−s_i (w·z_i + b))) + ½|w|², s = ±1 (the intercept unpenalised),
    by Newton's method in float64."""
    s = np.where(y, 1.0, -1.0)
    a = np.hstack([z, np.ones((len(z), 1))])
    theta = np.zeros(a.shape[1])
    reg = np.eye(a.shape[1])
    reg[-1, -1] = 0.0
    for _ in range(100):
        m = s * (a @ theta)
        p = 1.0 / (1.0 + np.exp(m))  # σ(−m)
        grad = -c * a.T @ (s * p) + reg @ theta
        hess = c * (a.T * (p * (1 - p))) @ a + reg
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-13:
            break
    return theta[:-1], float(theta[-1])


def test_probe_target_equals_its_definition_by_hand(digits):
    """probe:1 = w·(tanh(x W₁ᵀ + b₁) − μ)/σ + b with (w, b) the L2 (C = 1) logistic regression on the
    standardised hidden activations of the training split, solved here by Newton's method."""
    ctx = digits.with_target("probe:1")
    hidden = lambda x: torch.tanh(x @ ctx.params["0.weight"].T + ctx.params["0.bias"]).numpy()
    h_train, h_test = hidden(ctx.train.x), hidden(ctx.test.x)
    mean, std = h_train.mean(0), h_train.std(0, ddof=1)
    y_train = np.isin(ctx.train.y.numpy(), (0, 6, 8, 9))
    w, b = _logistic_by_hand((h_train - mean) / std, y_train)
    by_hand = ((h_test - mean) / std) @ w + b
    target = ctx.target(ctx.params, ctx.test.x, ctx.test.y).numpy()
    assert np.abs(target - by_hand).max() < 2e-3 * np.abs(by_hand).max()  # lbfgs stops at tol 1e-4
    y_test = concept_labels("closed-loop", ctx.test)
    probe = layer_probe("1", torch.as_tensor(h_train), torch.as_tensor(h_test), y_train, y_test, "closed-loop")
    assert probe.accuracy == pytest.approx(np.mean((by_hand > 0) == y_test), abs=1 / len(y_test))
    sign = np.where(y_test, 1.0, -1.0)
    assert probe.loss == pytest.approx(np.mean(np.log1p(np.exp(-sign * by_hand))), rel=1e-2)


def test_l1_probe_finds_the_two_planted_dimensions():
    """The concept depends on dims 3 and 11 of 20: the L1 probe keeps both and few others."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 20))
    y = x[:, 3] - 0.8 * x[:, 11] + 0.2 * rng.standard_normal(600) > 0
    train, test = torch.as_tensor(x[:400]), torch.as_tensor(x[400:])
    probe = layer_probe("planted", train, test, y[:400], y[400:], "planted")
    assert probe.dim == 20 and probe.nonzero_share <= 0.25, probe
    coef = l1_fit(
        (x[:400] - x[:400].mean(0)) / x[:400].std(0, ddof=1), y[:400], probe.l1_c).coef_[0]
    assert {3, 11} <= set(np.flatnonzero(coef)) and np.count_nonzero(coef) == probe.nonzero
    assert probe.l1_accuracy > 0.85 and probe.accuracy > 0.85  # the noise caps both near 0.92


def test_l1_c_ties_go_to_the_smaller_c():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 5))
    y = x[:, 0] > 0
    z = x * np.array([10.0, 1, 1, 1, 1])  # a wide margin: every C of the grid separates the validation rows
    assert choose_l1_c(z, y, grid=(2.0, 0.5, 1.0)) == 0.5


def test_t_interval_by_hand():
    low, high = t_interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * np.std([1, 2, 3, 4], ddof=1) / 2.0  # t_{0.975, 3} from the tables
    assert low == pytest.approx(2.5 - half, rel=1e-12) and high == pytest.approx(2.5 + half, rel=1e-12)
    assert t_interval([0.7]) is None
    assert t_interval([0.2, 0.2, 0.2]) == (pytest.approx(0.2), pytest.approx(0.2))
    with pytest.raises(ValueError):
        t_interval([1.0, float("nan")])
