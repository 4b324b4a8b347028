"""Devices: the word is checked before training; the gold standard and retraining give the same
numbers on every available device (CUDA cases are listed and skipped, with the reason, without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from device_helpers import DEVICES, NO_CUDA
from gold_helpers import small_context
from tdabench.compare import CompareOptions
from tdabench.errors import TdabenchError
from tdabench.task.device import context_on, resolve_device
from tdabench.task.spec import OptimizerSpec
from tdabench.truths.further import GoldConfig, paired_differences
from tdabench.truths.scratch import leave_one_out


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return small_context(tmp_path_factory.mktemp("cache"))


def test_device_words(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", "", "CPU"):
        with pytest.raises(TdabenchError, match="device must be one of"):
            resolve_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TdabenchError, match="no CUDA device"):
        resolve_device("cuda:0")
    with pytest.raises(TdabenchError, match="no CUDA device"):
        CompareOptions(device="cuda")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("recipe", [OptimizerSpec(lr=0.05, momentum=0.9, batch_size=8),
                                    OptimizerSpec(optimizer="adam", lr=0.01, batch_size=8)], ids=["sgd", "adam"])
def test_gold_standard_on_device_equals_cpu(ctx, device, recipe):
    on = context_on(ctx, torch.device(device))
    assert on.device.type == device and on.train.x.device.type == device
    cfg = GoldConfig(recipe, train_idx=(0, 5, 17), test_idx=(0, 3), horizons=(1, 2), seeds=1,
                     n_train=len(ctx.train))
    here, ref_here = paired_differences(on, cfg, seed=1)
    cpu, ref_cpu = paired_differences(ctx, cfg, seed=1)
    assert np.abs(cpu).max() > 1e-4
    np.testing.assert_allclose(here, cpu, rtol=0, atol=1e-9 * np.abs(cpu).max())
    np.testing.assert_allclose(ref_here, ref_cpu, rtol=1e-9)


@pytest.mark.parametrize("device", DEVICES)
def test_retraining_on_device_equals_cpu(ctx, device):
    here, _ = leave_one_out(context_on(ctx, torch.device(device)), (1, 4), (0, 2), seed=0)
    cpu, _ = leave_one_out(ctx, (1, 4), (0, 2), seed=0)
    assert np.abs(cpu).max() > 0
    np.testing.assert_allclose(here, cpu, rtol=0, atol=1e-9 * np.abs(cpu).max())


def test_summary_line_says_which_devices_ran():
    from types import SimpleNamespace

    from conftest import devices_line

    report = lambda nodeid, reason="": SimpleNamespace(nodeid=nodeid, when="call",
                                                       longrepr=("test_x.py", 1, f"Skipped: {reason}"))
    stats = {"passed": [report("t.py::test_a[cpu]"), report("t.py::test_a[cuda]"), report("t.py::test_b[sgd-cuda]")],
             "skipped": [report("t.py::test_a[cuda]", NO_CUDA), report("t.py::test_c", "needs captum")]}
    assert devices_line(stats, None) == "devices: cpu (cuda not available: 1 device tests skipped)"
    assert devices_line(stats, "NVIDIA H200") == "devices: cpu, cuda (NVIDIA H200: 2 device tests ran)"
