"""Matrix functions f(A)v of a symmetric operator by the Lanczos method, for many vectors at once.

For each row v of V (k, P), m Lanczos steps give an orthonormal Krylov basis q_0 … q_{m−1} of
span{v, Av, …, A^{m−1}v} and the tridiagonal T = QᵀAQ. Then f(A)v ≈ ||v|| Q f(T) e_1, which is exact
when f is a polynomial of degree < m, or when the Krylov space becomes invariant (breakdown) before
step m. Two passes keep the memory at a few (k, P) blocks: the first computes T, the second
regenerates the same basis and accumulates Q·c for the coefficients c = f(T)e_1 of every function.
Everything stays on the vectors' device, with no host sync per step (the rows' breakdown tests are
device-side masks).
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from tdabench.progress import bar

MatVec = Callable[[torch.Tensor], torch.Tensor]
BREAKDOWN = 1e-12  # a residual below this fraction of max|α| ends a row's Krylov space


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
                     fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """f_h(A)v for every row v of `vectors` (k, P) and every function h: returns (H, k, P).

    `fn` maps Ritz values θ (k, m) to f_h(θ) (H, k, m). Uses 2·steps products with A.
    """
    alphas, betas = [], []
    for _, alpha, beta in _lanczos_steps(matvec, vectors, steps):
        alphas.append(alpha)
        betas.append(beta)
    alpha, beta = torch.stack(alphas, 1), torch.stack(betas, 1)[:, :-1]  # (k, m), (k, m − 1)
    tridiagonal = torch.diag_embed(alpha) + torch.diag_embed(beta, 1) + torch.diag_embed(beta, -1)
    theta, basis = torch.linalg.eigh(tridiagonal)  # (k, m), (k, m, m)
    values = fn(theta)  # (H, k, m)
    norms = vectors.norm(dim=1)
    coefficients = torch.einsum("kjm,hkm,km,k->hkj", basis, values, basis[:, 0, :], norms)  # ||v|| f(T)e_1
    out = vectors.new_zeros(len(values), *vectors.shape)
    for j, (q, _, _) in enumerate(_lanczos_steps(matvec, vectors, steps)):
        out += coefficients[:, :, j, None] * q
    return out
