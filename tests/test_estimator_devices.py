"""Every native estimator computes on its context's device and makes no tensor without one.

The check: fit and score run inside `torch.device("meta")`, which makes "meta" the default device of
every tensor created without an explicit `device=`, while the context (model, parameters, data)
lives on the device under test. Such a tensor then cannot meet the context's tensors: most
operations raise ("Tensor on device meta is not on the expected device cpu"), and the few that do
not (a CPU tensor indexed by a meta index, or a CPU @ meta product, return values read from no
storage) give scores that differ, so the scores must equal those computed without the meta default
exactly (CPU) or to a float64 tolerance against the CPU scores (CUDA). A random draw on a CPU
generator must name its device too (`device="cpu"`), which is how the estimators keep one stream
of random numbers on every device. CUDA cases are skipped, with the reason, where there is none.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch

from conftest import tiny_spec
from device_helpers import DEVICES
from tdabench.compare import default_requests
from tdabench.estimators import InnerProductEstimator
from tdabench.registry import make_estimator
from tdabench.task import TaskContext, build_context, parse_spec
from tdabench.task.device import context_on

NATIVE = [r.name for r in default_requests()]  # every native estimator that ships (no adapters)
TEST_IDX, TRAIN_IDX = np.array([4, 0, 3, 1]), np.arange(0, 60, 3)

# Relative to the largest CPU score. The float64 estimators differ between devices only by the
# order of floating-point sums; TRAK's projection is float32 by default (as traker's).
CUDA_RTOL = {"trak": 1e-4}
CUDA_RTOL_FLOAT64 = 1e-7


@pytest.fixture(scope="module")
def ctx() -> TaskContext:
    """MLP 30→8→2 (tanh), 266 parameters, with two training checkpoints (so TracIn sums over them)."""
    model = {"kind": "mlp", "hidden": [8], "activation": "tanh", "init_seed": 0}
    training = {"optimizer": "sgd", "lr": 0.1, "batch_size": 16, "epochs": 5, "seed": 0, "checkpoint_epochs": [2, 5]}
    return build_context(parse_spec(tiny_spec("tiny-mlp-checkpoints", model=model, training=training)))


@pytest.fixture(scope="module")
def cpu_scores(ctx) -> Callable[[str], np.ndarray]:
    """name → the estimator's scores on the CPU context without the meta default (computed once)."""
    done: dict[str, np.ndarray] = {}

    def scores(name: str) -> np.ndarray:
        if name not in done:
            done[name] = make_estimator(name).fit(ctx).score(TEST_IDX, TRAIN_IDX)
        return done[name]
    return scores


def _scores_under_meta_default(name: str, context: TaskContext) -> np.ndarray:
    with torch.device("meta"):  # a tensor made without device= lands on "meta" and cannot meet the context's
        return make_estimator(name).fit(context).score(TEST_IDX, TRAIN_IDX)


def test_every_native_estimator_is_covered():
    assert {"grad-dot", "grad-cos", "tracin", "if-explicit", "if-cg", "if-lissa", "if-lissa-horizon",
            "if-arnoldi", "kfac", "ekfac", "datainf", "trak"} <= set(NATIVE)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NATIVE)
def test_estimator_computes_on_the_context_device(ctx, cpu_scores, name, device):
    on = context_on(ctx, torch.device(device))
    assert on.device.type == device
    scores = _scores_under_meta_default(name, on)
    reference = cpu_scores(name)
    assert np.abs(reference).max() > 0
    if device == "cpu":
        np.testing.assert_array_equal(scores, reference)
    else:
        rtol = CUDA_RTOL.get(name, CUDA_RTOL_FLOAT64)
        np.testing.assert_allclose(scores, reference, rtol=rtol, atol=rtol * np.abs(reference).max())


# Branches the defaults on the MLP do not take: convolutions (K-FAC's ConvBlock, the flat-gradient
# fallback of the Gram matrices), sampled curvature products, Gauss-Newton products, the horizon
# recursion, TRAK's Gaussian float64 projection, and matrix-free curvature products (`free`: the
# operator's dense matrix switched off after fit, so CG's products go through vmap/jvp).
# Not here: TRAK with n_models > 1, whose ensemble members are contexts built (and their nn.Module
# made, with parameters on torch's default device by design) by task code before they are moved to
# the fitted context's device (task/ensemble.py); that path is the plain CUDA case's business.
BRANCHES = [("cnn", name, {}) for name in ("grad-dot", "tracin", "kfac", "ekfac", "datainf", "trak", "if-cg")] + [
    ("mlp", "if-lissa", {"hvp_batch_size": 10}), ("mlp", "if-cg", {"curvature": "gauss-newton"}),
    ("mlp", "if-lissa-horizon", {"method": "recursion"}), ("mlp", "if-explicit", {"curvature": "gauss-newton"}),
    ("mlp", "trak", {"projection": "gaussian", "dtype": "float64"}), ("mlp", "if-cg", {"free": True}),
    ("mlp", "if-cg", {"curvature": "gauss-newton", "free": True})]


def _branch_scores(name: str, params: dict, context: TaskContext) -> np.ndarray:
    params = dict(params)
    free = params.pop("free", False)
    estimator = make_estimator(name, **params).fit(context)
    if free:
        estimator.operator_.dense_up_to = 0
    return estimator.score(TEST_IDX[TEST_IDX < len(context.test)], TRAIN_IDX[TRAIN_IDX < len(context.train)])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model, name, params", BRANCHES, ids=[f"{m}-{n}-{'-'.join(map(str, p.values())) or 'defaults'}"
                                                                for m, n, p in BRANCHES])
def test_estimator_branches_compute_on_the_context_device(ctx, tiny_cnn_context, model, name, params, device):
    cpu = tiny_cnn_context if model == "cnn" else ctx
    reference = _branch_scores(name, params, cpu)
    with torch.device("meta"):
        scores = _branch_scores(name, params, context_on(cpu, torch.device(device)))
    assert np.abs(reference).max() > 0
    if device == "cpu":
        np.testing.assert_array_equal(scores, reference)
    else:
        rtol = CUDA_RTOL_FLOAT64 if params.get("dtype") == "float64" else CUDA_RTOL.get(name, CUDA_RTOL_FLOAT64)
        np.testing.assert_allclose(scores, reference, rtol=rtol, atol=rtol * np.abs(reference).max())


class _DevicelessTransform(InnerProductEstimator):
    """Grad-Dot plus a zero vector made without a device: the bug the meta check must catch."""

    def _transform(self, reps: torch.Tensor) -> torch.Tensor:
        return reps + torch.zeros(reps.shape[1], dtype=reps.dtype)


def test_the_meta_check_catches_a_tensor_made_without_a_device(ctx):
    estimator = _DevicelessTransform()
    assert np.abs(estimator.fit(ctx).score(TEST_IDX, TRAIN_IDX)).max() > 0  # fine without the meta default
    with pytest.raises(RuntimeError, match="meta"), torch.device("meta"):
        estimator.fit(ctx).score(TEST_IDX, TRAIN_IDX)
