"""Shared fixtures. The cache goes to a session temp dir; torch uses 2 threads; tiny float64 tasks."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Any

import pytest
import torch

from estimator_helpers import Raises
from tdabench.registry import estimators
from tdabench.task import TaskContext, build_context, parse_spec

_CACHE_DIR: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _CACHE_DIR
    _CACHE_DIR = tempfile.mkdtemp(prefix="tdabench-test-cache-")
    os.environ["TDABENCH_CACHE"] = _CACHE_DIR
    torch.set_num_threads(2)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _CACHE_DIR is not None:
        shutil.rmtree(_CACHE_DIR, ignore_errors=True)


def tiny_spec(name: str, **sections: dict[str, Any]) -> dict[str, Any]:
    """A small float64 task spec on 60 training and 20 test points; `sections` override whole sections."""
    raw: dict[str, Any] = {
        "name": name, "version": 1, "modality": "tabular",
        "data": {"source": "sklearn:load_breast_cancer", "max_train": 60, "max_test": 20},
        "model": {"kind": "mlp", "hidden": [], "init_seed": 0},
        "objective": {"loss": "cross-entropy", "l2": 0.01},
        "training": {"optimizer": "sgd", "lr": 0.1, "batch_size": 16, "epochs": 5, "seed": 0},
        "gold_standard": {}, "target": "loss", "dtype": "float64",
    }
    return raw | sections


@pytest.fixture(scope="session")
def tiny_logreg_context() -> TaskContext:
    """L2-regularised (l2 = 0.01) logistic regression with 2 output logits, 62 parameters."""
    return build_context(parse_spec(tiny_spec("tiny-logreg")))


@pytest.fixture(scope="session")
def tiny_mlp_context() -> TaskContext:
    """MLP 30→8→2 (tanh, so the Hessian differs from Gauss–Newton), l2 = 0.01, 266 parameters."""
    model = {"kind": "mlp", "hidden": [8], "activation": "tanh", "init_seed": 0}
    return build_context(parse_spec(tiny_spec("tiny-mlp", model=model)))


@pytest.fixture(scope="session")
def tiny_cnn_context() -> TaskContext:
    """5×5 conv (1→3 channels, tanh, 2×2 max-pool) and a linear head on scikit-learn's 8×8 digits,
    l2 = 0.01, 208 parameters: 16 positions per convolution output."""
    data = {"source": "sklearn:load_digits", "max_train": 60, "max_test": 20, "standardize": False,
            "pixel_scale": 16, "image_shape": [1, 8, 8]}
    model = {"kind": "cnn", "channels": [3], "hidden": [], "activation": "tanh", "init_seed": 0}
    return build_context(parse_spec(tiny_spec("tiny-cnn", data=data, model=model)))


@pytest.fixture(scope="session")
def least_squares_context() -> TaskContext:
    """Ridge regression (l2 = 0.01), squared loss, one output (M = 2): K-FAC is exact, IF closed-form."""
    from estimator_helpers import least_squares_spec

    return build_context(parse_spec(least_squares_spec()))


def pytest_report_header(config):
    """Say in the header (shown without -q) which devices the device-parametrised tests run on."""
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CUDA cases skipped)"
    return f"tdabench devices: cpu; cuda: {cuda}"


_CUDA_CASE = re.compile(r"[\[-]cuda(:\d+)?[\]-]")  # a test id's "cuda" parameter (device_helpers.DEVICES)


def devices_line(reports: dict[str, list[Any]], cuda_name: str | None) -> str:
    """The summary's devices line, from the session's reports by outcome: which devices ran, and
    how many CUDA cases ran (with CUDA) or were skipped for want of it (without)."""
    if cuda_name is None:
        skipped = sum(1 for r in reports.get("skipped", []) if "CUDA" in _skip_reason(r))
        return f"devices: cpu (cuda not available: {skipped} device tests skipped)"
    ran = sum(1 for outcome in ("passed", "failed") for r in reports.get(outcome, [])
              if r.when == "call" and _CUDA_CASE.search(r.nodeid))
    return f"devices: cpu, cuda ({cuda_name}: {ran} device tests ran)"


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line under -q too (what `make test` and CI show): which devices the tests ran on."""
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    terminalreporter.write_line(devices_line(terminalreporter.stats, cuda))


@pytest.fixture
def raising_registered(monkeypatch):
    """`Raises` registered as "test-raises" for one test (the registry restored after it)."""
    estimators.names()
    monkeypatch.setattr(estimators, "_entries", dict(estimators._entries))
    estimators.register("test-raises")(Raises)
