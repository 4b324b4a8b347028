"""Progress bars of the long inner steps: drawn only inside progress.shown(True), never otherwise,
and the numbers do not depend on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gold_helpers import write_small_spec
from tdabench import progress
from tdabench.estimators.dense_curvature import hessian_matrix
from tdabench.estimators.iterative import conjugate_gradient, lissa
from tdabench.task import build_context, load_spec
from tdabench.testing import planted_duplicate_context


@pytest.fixture
def no_delay(monkeypatch):
    monkeypatch.setattr(progress, "DELAY_S", 0.0)


def spd_system() -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    m = rng.normal(size=(6, 6))
    a = torch.tensor(m @ m.T + 6 * np.eye(6))
    return a, torch.tensor(rng.normal(size=(2, 6)))


def test_bars_are_off_unless_shown():
    assert progress.bar(3, "x").disable
    with progress.shown(True):
        assert not progress.bar(3, "x").disable
        with progress.shown(False):
            assert progress.bar(3, "x").disable
    assert not progress.is_shown()


def test_solvers_show_bars_only_when_asked_and_give_the_same_numbers(no_delay, capsys):
    a, b = spd_system()
    quiet_cg, _, _ = conjugate_gradient(lambda v: v @ a, b, max_iter=50, tol=1e-12)
    quiet_lissa = lissa(lambda v: v @ a, b, depth=30, scale=float(torch.linalg.eigvalsh(a).max()))
    assert capsys.readouterr().err == ""
    with progress.shown(True):
        shown_cg, _, _ = conjugate_gradient(lambda v: v @ a, b, max_iter=50, tol=1e-12)
        shown_lissa = lissa(lambda v: v @ a, b, depth=30, scale=float(torch.linalg.eigvalsh(a).max()))
    err = capsys.readouterr().err
    assert "conjugate gradients" in err and "LiSSA recursion" in err
    assert torch.equal(quiet_cg, shown_cg) and torch.equal(quiet_lissa, shown_lissa)
    assert torch.allclose(shown_cg, torch.linalg.solve(a, b.T).T, rtol=1e-10, atol=1e-12)


def test_hessian_columns_bar(no_delay, capsys):
    ctx = planted_duplicate_context()
    with progress.shown(True):
        hessian_matrix(ctx)
    assert f"/{ctx.n_params}" in capsys.readouterr().err  # "Hessian columns: ... k/P"


def test_final_model_training_bar(no_delay, capsys, tmp_path):
    spec = load_spec(write_small_spec(tmp_path))
    with progress.shown(True):
        build_context(spec, cache_dir=tmp_path / "cache")
    err = capsys.readouterr().err
    assert f"final model of {spec.name}" in err and f"/{spec.training.epochs}" in err
    build_context(spec, cache_dir=tmp_path / "cache2")  # not shown: no bar
    assert "final model" not in capsys.readouterr().err


def test_minilm_features_bar(no_delay, capsys):
    pytest.importorskip("transformers")
    from tdabench.task.text_models import minilm_features

    ids = torch.tensor([[101, 2023, 102, 0], [101, 2003, 2307, 102], [101, 102, 0, 0]])
    quiet = minilm_features(ids, frozen_layers=1, batch_size=2)
    assert capsys.readouterr().err == ""
    with progress.shown(True):
        shown_features = minilm_features(ids, frozen_layers=1, batch_size=2)
    err = capsys.readouterr().err
    assert "MiniLM features" in err and "/3" in err  # "k/3 texts" (updates closer than 0.1 s are not drawn)
    assert torch.equal(quiet, shown_features)
