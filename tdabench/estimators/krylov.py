"""Matrix functions f(A)v of a symmetric operator by the Lanczos method, for many vectors at once.

For each row v of V (k, P), m Lanczos steps give an orthonormal Krylov basis q_0 … q_{m−1} of
span{v, Av, …, A^{m−1}v} and the tridiagonal T = QᵀAQ. Then f(A)v ≈ ||v|| Q f(T) e_1, which is exact
when f is a polynomial of degree < m, or when the Krylov space becomes invariant (breakdown) before
step m. The first pass computes T and, when the basis Q (k × m × P values) fits `KEEP_BASIS_BYTES`,
keeps it; otherwise a second pass regenerates the same basis (the same operations in the same order,
so bitwise the same vectors) and the memory stays at a few (k, P) blocks. Then Q·c accumulates for
the coefficients c = f(T)e_1 of every function.
Everything stays on the vectors' device, with no host sync per step (the rows' breakdown tests are
device-side masks).
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from tdabench.progress import bar

MatVec = Callable[[torch.Tensor], torch.Tensor]
BREAKDOWN = 1e-12  # a residual below this fraction of max|α| ends a row's Krylov space
# The Krylov basis is kept (one pass of products instead of two) when it takes at most this many bytes:
# breast-cancer-mlp's if-lissa-horizon (100 test gradients, 20,738 parameters, 40 steps) keeps 0.66 GB
# and saves 40 products, below the memory if-explicit needs for the same task (4.2 GB).
KEEP_BASIS_BYTES = 2**30


def _lanczos_steps(matvec: MatVec, vectors: torch.Tensor, steps: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Yield (q_j, α_j, β_j) for j < steps, rows independent; a row whose space is exhausted
    continues with q = 0, α = β = 0 (its tridiagonal decouples and f(T)e_1 ignores the rest)."""
    norms = vectors.norm(dim=1, keepdim=True)
    q = vectors / norms.clamp(min=1e-300)
    q_prev, beta_prev = torch.zeros_like(q), q.new_zeros(len(q))
    scale = q.new_zeros(len(q))
    with bar(steps, "Lanczos", "step") as shown_bar:
        for _ in range(steps):
            shown_bar.update()
            w = matvec(q) - beta_prev[:, None] * q_prev
            alpha = (q * w).sum(1)
            w = w - alpha[:, None] * q
            beta = w.norm(dim=1)
            scale = torch.maximum(scale, alpha.abs())
            alive = beta > BREAKDOWN * scale
            beta = torch.where(alive, beta, torch.zeros_like(beta))
            yield q, alpha, beta
            q_prev, q = q, torch.where(alive[:, None], w / beta.clamp(min=1e-300)[:, None], torch.zeros_like(w))
            beta_prev = beta


def matrix_functions(matvec: MatVec, vectors: torch.Tensor, steps: int,
                     fn: Callable[[torch.Tensor], torch.Tensor], keep_basis_bytes: int | None = None) -> torch.Tensor:
    """f_h(A)v for every row v of `vectors` (k, P) and every function h: returns (H, k, P).

    `fn` maps Ritz values θ (k, m) to f_h(θ) (H, k, m). Uses `steps` products with A when the basis
    fits `keep_basis_bytes` (None: `KEEP_BASIS_BYTES`), else 2·steps; the result is the same either way.
    """
    budget = KEEP_BASIS_BYTES if keep_basis_bytes is None else keep_basis_bytes
    keep = vectors.numel() * steps * vectors.element_size() <= budget
    alphas, betas, kept = [], [], []
    for q, alpha, beta in _lanczos_steps(matvec, vectors, steps):
        alphas.append(alpha)
        betas.append(beta)
        if keep:
            kept.append(q)
    alpha, beta = torch.stack(alphas, 1), torch.stack(betas, 1)[:, :-1]  # (k, m), (k, m − 1)
    tridiagonal = torch.diag_embed(alpha) + torch.diag_embed(beta, 1) + torch.diag_embed(beta, -1)
    theta, basis = torch.linalg.eigh(tridiagonal)  # (k, m), (k, m, m)
    values = fn(theta)  # (H, k, m)
    norms = vectors.norm(dim=1)
    coefficients = torch.einsum("kjm,hkm,km,k->hkj", basis, values, basis[:, 0, :], norms)  # ||v|| f(T)e_1
    out = vectors.new_zeros(len(values), *vectors.shape)
    basis_vectors = kept if keep else (q for q, _, _ in _lanczos_steps(matvec, vectors, steps))
    for j, q in enumerate(basis_vectors):
        out += coefficients[:, :, j, None] * q
    return out
