"""Dense symmetric (P, P) float64 factorisations and solves, in place, with torch's LAPACK.

torch's CPU builds carry MKL's LAPACK; tdabench uses it for every large factorisation instead of
scipy. scipy's bundled OpenBLAS (0.3.30, DYNAMIC_ARCH) segfaults in multi-threaded `potrf` on
AVX-512 processors for matrices of 16,000² and larger when `OPENBLAS_CORETYPE` is unset (measured:
exit 139 on a random 16,000² SPD matrix), and breast-cancer-mlp's curvature is 20,738². torch's
MKL factorised the same matrix without a crash, and faster (10.4 s against 14.4 s for OpenBLAS
with OPENBLAS_CORETYPE=Haswell, 2 cores).

In place: the factor overwrites the matrix's storage (the column-major view `matrix.mT` of a
symmetric row-major matrix is the same matrix, so LAPACK needs no copy), and solves use triangular
solves on that view, so a factorisation costs no second (P, P) buffer. A numerically singular
matrix — reciprocal 1-norm condition number below machine epsilon, estimated as LAPACK's
`pocon`/`gecon` do (Hager's method with Higham's extra test vector) — is refused.

Devices: the factor lives where the matrix does (CPU: MKL's LAPACK; CUDA: cuSOLVER). Host syncs
are few and outside hot loops: one per factorisation (LAPACK's `info`), one for the norm, and one
or two per step of the condition estimate (at most 5 steps; its control flow needs them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch

from tdabench.errors import TdabenchError

EPS = torch.finfo(torch.float64).eps


@dataclass(frozen=True)
class Factorization:
    """C = L Lᵀ (`kind` "cholesky": `factor` holds L in its lower triangle) or P C = L U ("lu":
    `factor` holds L and U, `pivots` the row swaps); `factor` is a column-major (P, P) view."""

    kind: Literal["cholesky", "lu"]
    factor: torch.Tensor
    pivots: torch.Tensor | None
    rcond: float = float("nan")  # estimated reciprocal 1-norm condition number of C

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        """X = C⁻¹ rhs, rhs (P, k) float64 → (P, k)."""
        if self.kind == "cholesky":
            y = torch.linalg.solve_triangular(self.factor, rhs, upper=False)
            return torch.linalg.solve_triangular(self.factor.mT, y, upper=True)
        return torch.linalg.lu_solve(self.factor, self.pivots, rhs)


def factorize(matrix: torch.Tensor, positive_definite: bool | None,
              rebuild: Callable[[], torch.Tensor] | None = None) -> Factorization:
    """Factorise the symmetric (P, P) float64 `matrix` in place (its storage is destroyed).

    `positive_definite` True: Cholesky, and a matrix that is not positive definite is refused.
    False: LU with partial pivoting (fine for indefinite matrices). None: Cholesky (half the work of
    LU), and when the matrix turns out indefinite, LU of a fresh copy from `rebuild()` (required
    then), since a failed Cholesky leaves no copy of the matrix behind.
    """
    norm = norm1(matrix)
    a, fac = matrix.mT, None
    if positive_definite is not False:
        info = torch.empty((), dtype=torch.int32, device=matrix.device)
        torch.linalg.cholesky_ex(a, out=(a, info))
        if int(info) == 0:
            fac = Factorization("cholesky", a, None)
        elif positive_definite:
            raise TdabenchError("the damped Gauss-Newton matrix is not positive definite; increase the damping")
        elif rebuild is None:
            raise ValueError("factorize(positive_definite=None) needs `rebuild` for the LU fallback")
        else:
            a = rebuild().mT
    if fac is None:
        fac = _lu(a)
    rcond = 0.0 if fac is None else 1.0 / (norm * inverse_norm1(fac.solve, len(a), device=a.device))
    if not rcond >= EPS:
        raise TdabenchError(f"the damped curvature matrix is numerically singular (reciprocal condition "
                            f"number {rcond:.1e}); increase the damping")
    return Factorization(fac.kind, fac.factor, fac.pivots, rcond)


def _lu(a: torch.Tensor) -> Factorization | None:
    """In-place LU of the column-major view `a`; None when a pivot is exactly zero."""
    info = torch.empty((), dtype=torch.int32, device=a.device)
    pivots = torch.empty(len(a), dtype=torch.int32, device=a.device)
    torch.linalg.lu_factor_ex(a, out=(a, pivots, info))
    return Factorization("lu", a, pivots) if int(info) == 0 else None


def norm1(matrix: torch.Tensor, rows: int = 2048) -> float:
    """‖A‖₁ = max_j Σ_i |A_ij| of a symmetric matrix, in row blocks (no full-size temporary); the
    blocks' maxima stay on the device, one host copy at the end."""
    return float(torch.stack([matrix[lo:lo + rows].abs().sum(1).max() for lo in range(0, len(matrix), rows)]).max())


def inverse_norm1(solve: Callable[[torch.Tensor], torch.Tensor], n: int, max_iter: int = 5,
                  device: torch.device | str = "cpu") -> float:
    """A lower estimate of ‖C⁻¹‖₁ for a symmetric C, from solves X ↦ C⁻¹X only (Hager 1984, with
    Higham's 1988 alternative vector b_i = ±(1 + i/(n−1)), as in LAPACK's dlacn2). Usually exact;
    never above the true norm. Costs 2–2·max_iter + 1 single-column solves, on `device` (the factor's)."""
    x = torch.full((n, 1), 1.0 / n, dtype=torch.float64, device=device)
    alternative = torch.linspace(1.0, 2.0, n, dtype=torch.float64, device=device)  # 1 + i/(n − 1); [1.] when n = 1
    alternative[1::2] *= -1
    both = solve(torch.cat([x, alternative[:, None]], dim=1))
    y, estimate, best = both[:, :1], 0.0, 2 * float(both[:, 1].abs().sum()) / (3 * n)
    for _ in range(max_iter):
        norm = float(y.abs().sum())
        if norm <= estimate:
            break
        estimate = norm
        z = solve(torch.where(y >= 0, 1.0, -1.0).to(torch.float64))  # Cᵀ = C
        j = int(z.abs().argmax())
        if float(z.abs()[j, 0]) <= float((z * x).sum()):
            break
        x = torch.zeros(n, 1, dtype=torch.float64, device=device)
        x[j] = 1.0
        y = solve(x)
    return max(estimate, best)
