"""Dense factorisations (tdabench.estimators.factorization) against numpy's exact answers, and the
regression test of the OpenBLAS crash: a 16,000² factorisation in a subprocess whose environment
lacks OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (scipy's bundled OpenBLAS segfaults there)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from subprocess_helpers import run_python
from tdabench.errors import TdabenchError
from tdabench.estimators.factorization import factorize, inverse_norm1


@pytest.mark.parametrize("shift, expected_kind", [(3.0, "cholesky"), (-0.5, "lu")])
def test_factorize_tries_cholesky_then_lu_of_the_rebuilt_matrix(shift, expected_kind):
    """An indefinite matrix fails Cholesky part-way (which destroys it in place); LU of the rebuilt
    matrix solves exactly. The solve and the condition estimate match numpy's exact ones."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(1100, 1100)))
    eigenvalues = np.linspace(0.1, 2.0, 1100) + np.where(np.arange(1100) == 700, shift - 3.0, 0.0)
    matrix = (q * eigenvalues) @ q.T
    matrix = (matrix + matrix.T) / 2
    rhs = rng.normal(size=(1100, 3))
    rebuilt = []
    factor = factorize(torch.from_numpy(matrix.copy()), positive_definite=None,
                       rebuild=lambda: rebuilt.append(1) or torch.from_numpy(matrix.copy()))
    assert factor.kind == expected_kind
    assert len(rebuilt) == (expected_kind == "lu")
    expected = np.linalg.solve(matrix, rhs)
    np.testing.assert_allclose(factor.solve(torch.from_numpy(rhs)).numpy(), expected, rtol=1e-8,
                               atol=1e-8 * np.abs(expected).max())
    exact_rcond = 1 / (np.abs(matrix).sum(0).max() * np.abs(np.linalg.inv(matrix)).sum(0).max())
    assert exact_rcond * (1 - 1e-9) <= factor.rcond <= 3 * exact_rcond
    if shift < 0:
        with pytest.raises(TdabenchError, match="not positive definite"):
            factorize(torch.from_numpy(matrix.copy()), positive_definite=True)


@pytest.mark.parametrize("condition", [1.0, 1e3, 1e8])
def test_inverse_norm_estimate_is_a_tight_lower_bound(condition):
    """Hager's estimate never exceeds ‖C⁻¹‖₁ and, on these symmetric matrices, is within 3× of it."""
    rng = np.random.default_rng(1)
    for trial in range(5):
        q, _ = np.linalg.qr(rng.normal(size=(60, 60)))
        signs = np.where(rng.random(60) < 0.3, -1.0, 1.0)
        matrix = (q * (signs * np.geomspace(1.0, condition, 60))) @ q.T
        matrix = (matrix + matrix.T) / 2
        exact = np.abs(np.linalg.inv(matrix)).sum(0).max()
        estimate = inverse_norm1(lambda rhs: torch.linalg.solve(torch.from_numpy(matrix), rhs), 60)
        assert exact / 3 <= estimate <= exact * (1 + 1e-9), (trial, estimate, exact)


@pytest.mark.parametrize("positive_definite", [True, False, None])
def test_singular_matrix_is_refused(positive_definite):
    """A rank-deficient PSD matrix: every path refuses it with a one-line TdabenchError."""
    rng = np.random.default_rng(2)
    basis = rng.normal(size=(200, 150))
    matrix = basis @ basis.T
    with pytest.raises(TdabenchError, match="singular|not positive definite"):
        factorize(torch.from_numpy(matrix.copy()), positive_definite,
                  rebuild=lambda: torch.from_numpy(matrix.copy()))


def test_factorization_is_in_place():
    """The factor lives in the matrix's own storage: no second (P, P) buffer."""
    matrix = torch.eye(300, dtype=torch.float64) * 2
    for positive_definite in (True, False):
        factor = factorize(matrix.clone(), positive_definite)
        m = matrix.clone()
        assert factorize(m, positive_definite).factor.data_ptr() == m.data_ptr()
        assert factor.kind == ("cholesky" if positive_definite else "lu")


LARGE_FACTORIZATION = textwrap.dedent("""
    import torch
    from tdabench.estimators.factorization import factorize

    def spd(n, block=2048):
        torch.manual_seed(0)
        a = torch.rand(n, n, dtype=torch.float64)
        for lo in range(0, n, block):  # symmetric, block by block (no second n x n buffer)
            a[lo:lo + block, lo + block:] = a[lo + block:, lo:lo + block].T
            square = a[lo:lo + block, lo:lo + block]
            square.copy_(square.tril() + square.tril(-1).T)
        a.diagonal().add_(n)  # diagonally dominant: symmetric positive definite
        return a

    x = torch.randn({n}, 2, dtype=torch.float64)
    b = spd({n}) @ x
    for positive_definite in (True, False):
        factor = factorize(spd({n}), positive_definite)
        error = float((factor.solve(b) - x).abs().max())
        assert error < 1e-10, (factor.kind, error)
        print(factor.kind, "ok", error, factor.rcond, flush=True)
        del factor
""")


def test_large_factorization_does_not_crash_without_openblas_coretype():
    """Cholesky and LU of a 16,000² SPD matrix, in a subprocess with OPENBLAS_CORETYPE and
    OPENBLAS_L2_SIZE removed: exit 0 and x = C⁻¹(Cx) to 1e-10. scipy's potrf exits 139 here."""
    run = run_python(["-c", LARGE_FACTORIZATION.format(n=16000)], timeout=600)
    assert run.returncode == 0, (run.returncode, run.stdout, run.stderr[-2000:])
    assert run.stdout.count(" ok ") == 2, run.stdout
