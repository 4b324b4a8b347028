"""The derivative mode (docs/method.md, derivative mode): d_t(i, z) = −∂f(z; θ_t(w))/∂w_i at w = 1, every instance at once.

w_i multiplies instance i's loss in every batch that holds it (replay.py); the sign is that of
docs/method.md, "Sign and shape" (d > 0: down-weighting i increases the target), and downweight-mode differences divided
by ε converge to d as ε → 0. Per seed:

1. forward: the reference run, storing every k-th state s_t = (θ_t, optimizer slots) and θ at every
   horizon, and recording the targets f(z; θ_T_h) (the reference);
2. reverse: one sweep t = T−1 … 0 carrying the adjoints λ = ∂f(z_j; θ_T_h)/∂s_{t+1} of every
   (horizon h, test point j) pair, batched (vmap over the pairs of one vjp of the step). When the
   sweep reaches step T_h it injects ∂f(z_j; θ)/∂θ at θ_T_h into the pairs of horizon h; before
   that they are zero and skipped. The vjp of step t gives λ_t and ∂/∂w_b of the batch weights,
   which are added to the instances of batch b_t. The states between two stored ones are
   recomputed from the earlier one (segment by segment), so no number depends on k.

Cost: one forward run plus, per chunk of test points, one reverse sweep (each step a vjp of a
gradient step: Hessian-vector products, vmapped over H × chunk pairs) and the recomputation;
independent of the number of training instances. Memory: ⌈T/k⌉ + k − 1 states plus the adjoints.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch.func import jacrev, vjp, vmap

from tdabench.task.context import TaskContext
from tdabench.task.optim import FunctionalOptimizer
from tdabench.truths.further.config import GoldConfig
from tdabench.truths.further.memory import ACTIVATION_FACTOR, activation_elements, budget_bytes
from tdabench.truths.further.replay import (Step, checkpoint_interval, reference_steps, split_state, state_bytes,
                                            step_fn)

Tensors = dict[str, torch.Tensor]
ADJOINT_TEMPORARIES = 4  # parameter-sized temporaries per adjoint in one vmapped vjp (an estimate)


def bytes_per_test_point(ctx: TaskContext, cfg: GoldConfig) -> int:
    """Estimated bytes that one test point's adjoints (all horizons) need in the reverse sweep."""
    itemsize = torch.finfo(ctx.dtype).bits // 8
    per_pair = (state_bytes(ctx, FunctionalOptimizer(cfg.recipe)) + ADJOINT_TEMPORARIES * ctx.n_params * itemsize
                + cfg.recipe.batch_size * activation_elements(ctx) * itemsize * ACTIVATION_FACTOR)
    return len(cfg.horizons) * per_pair


def derivative_plan(ctx: TaskContext, cfg: GoldConfig, budget: int | None = None) -> tuple[int, int]:
    """(test points per reverse sweep, checkpoint interval k) for a byte budget (default
    $TDABENCH_GOLD_MEMORY_GB): half for the adjoints, half for the states. `cfg.adjoint_chunk` and
    `cfg.checkpoint_every` override the planned values."""
    half = (budget or budget_bytes()) // 2
    per_test = bytes_per_test_point(ctx, cfg)
    chunk = cfg.adjoint_chunk or max(1, min(len(cfg.test_idx), half // max(1, per_test)))
    k = cfg.checkpoint_every or checkpoint_interval(
        cfg.steps[-1], state_bytes(ctx, FunctionalOptimizer(cfg.recipe)), half)
    return min(chunk, len(cfg.test_idx)), k


def n_sweeps(cfg: GoldConfig, chunk: int) -> int:
    return math.ceil(len(cfg.test_idx) / chunk)


class _Replay:
    """The reference run of one seed: its steps, every k-th state and θ at every horizon."""

    def __init__(self, ctx: TaskContext, cfg: GoldConfig, seed: int, k: int,
                 on_step: Callable[[], None] | None) -> None:
        cfg.check_split(len(ctx.train))
        self.ctx, self.cfg, self.k = ctx, cfg, k
        self.optimizer = FunctionalOptimizer(cfg.recipe)
        self.phi = step_fn(ctx, self.optimizer)
        self.steps = reference_steps(cfg, len(ctx.train), seed, ctx.dtype, ctx.device)
        self.ones = torch.ones(cfg.recipe.batch_size, dtype=ctx.dtype, device=ctx.device)
        params = {name: p.detach().clone() for name, p in ctx.params.items()}
        state = self.optimizer.init(params)
        self.stored: dict[int, tuple[Tensors, Tensors]] = {}
        self.at_horizon: dict[int, Tensors] = {}
        marks = set(cfg.steps)
        for t in range(len(self.steps)):
            if t % k == 0:
                self.stored[t] = (params, state)
            params, state = self.advance(params, state, t)
            if t + 1 in marks:
                self.at_horizon[t + 1] = params
            if on_step is not None:
                on_step()

    def advance(self, params: Tensors, state: Tensors, t: int) -> tuple[Tensors, Tensors]:
        """s_{t+1} from s_t (no graph kept)."""
        slots, count = split_state(state)
        with torch.no_grad():
            new_params, new_slots = self.phi(params, slots, count, self.steps[t], self.ones)
        return ({k: v.detach() for k, v in new_params.items()},
                {k: v.detach() for k, v in new_slots.items()} | {"count": count + 1})

    def segment(self, start: int) -> list[tuple[Tensors, Tensors]]:
        """States s_start … s_end−1 of the segment that begins at stored state `start`."""
        states = [self.stored[start]]
        for t in range(start, min(start + self.k, len(self.steps)) - 1):
            states.append(self.advance(*states[-1], t))
        return states


def _target_gradients(ctx: TaskContext, params: Tensors, x: torch.Tensor, y: torch.Tensor) -> Tensors:
    """∂f(z_j; θ)/∂θ for each test point, each tensor (n_points, *shape)."""
    return jacrev(lambda p: ctx.target(p, x, y))(params)


def _flatten(adjoints: Tensors, live: int) -> Tensors:
    """The live horizons' adjoints (n_h − live, n_pts, *shape) as one batch (A, *shape)."""
    return {k: v[live:].reshape(-1, *v.shape[2:]) for k, v in adjoints.items()}


def _pullback(phi: Callable[..., tuple[Tensors, Tensors]], step: Step, params: Tensors, state: Tensors,
              ones: torch.Tensor, cot_params: Tensors, cot_slots: Tensors) -> tuple[Tensors, Tensors, torch.Tensor]:
    """The vjp of step Φ_t at s_t for a batch of A cotangents of s_{t+1}: (∂/∂θ_t, ∂/∂slots_t,
    ∂/∂w_batch (A, B)), one vjp vmapped over the A cotangents."""
    slots, count = split_state(state)
    _, pullback = vjp(lambda p, s, w: phi(p, s, count, step, w), params, slots, ones)
    return vmap(pullback)((cot_params, cot_slots))


def _reverse_sweep(replay: _Replay, test_x: torch.Tensor, test_y: torch.Tensor,
                   on_step: Callable[[], None] | None) -> torch.Tensor:
    """∂f(z_j; θ_T_h)/∂w for the given test points: (n_horizons, n_points, n_train)."""
    ctx, cfg, phi = replay.ctx, replay.cfg, replay.phi
    n_h, n_pts, n = len(cfg.steps), len(test_x), len(ctx.train)
    horizon_of = {s: h for h, s in enumerate(cfg.steps)}
    slots0, _ = split_state(replay.stored[0][1])
    lam_p = {k: v.new_zeros((n_h, n_pts, *v.shape)) for k, v in ctx.params.items()}
    lam_s = {k: v.new_zeros((n_h, n_pts, *v.shape)) for k, v in slots0.items()}
    dw = torch.zeros((n_h, n_pts, n), dtype=ctx.dtype, device=ctx.device)
    live = n_h  # horizons live..n_h−1 carry non-zero adjoints
    for start in sorted(replay.stored, reverse=True):
        states = replay.segment(start)
        for t in range(start + len(states) - 1, start - 1, -1):
            if t + 1 in horizon_of:
                live = horizon_of[t + 1]
                for k, g in _target_gradients(ctx, replay.at_horizon[t + 1], test_x, test_y).items():
                    lam_p[k][live] += g
            step, live_p, live_s = replay.steps[t], _flatten(lam_p, live), _flatten(lam_s, live)
            d_p, d_s, d_w = _pullback(phi, step, *states[t - start], replay.ones, live_p, live_s)
            for k, v in d_p.items():
                lam_p[k][live:] = v.reshape(n_h - live, n_pts, *v.shape[1:])
            for k, v in d_s.items():
                lam_s[k][live:] = v.reshape(n_h - live, n_pts, *v.shape[1:])
            contrib = (d_w * step.mask).reshape(n_h - live, n_pts, -1)
            dw[live:].index_add_(2, step.index, contrib)
            if on_step is not None:
                on_step()
    return dw


def derivatives(ctx: TaskContext, cfg: GoldConfig, seed: int, on_step: Callable[[], None] | None = None,
                budget: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One seed of the derivative mode; same contract as vectorized.paired_differences.

    Returns (d, reference): d[h, j, i] = −∂f(z_j; θ_h(w))/∂w_i at w = 1 for i in cfg.train_idx,
    shape (n_horizons, n_test, n_train_evaluated); reference[h, j] = f(z_j; θ_h), (n_horizons, n_test).
    `on_step` is called once per forward step and once per reverse step of each sweep.
    """
    chunk, k = derivative_plan(ctx, cfg, budget)
    replay = _Replay(ctx, cfg, seed, k, on_step)
    test_idx = torch.as_tensor(cfg.test_idx, device=ctx.test.x.device)
    test_x, test_y = ctx.test.x[test_idx].to(ctx.device), ctx.test.y[test_idx].to(ctx.device)
    with torch.no_grad():
        reference = np.stack([ctx.target(replay.at_horizon[s], test_x, test_y).double().cpu().numpy()
                              for s in cfg.steps])
    parts = [_reverse_sweep(replay, test_x[a:a + chunk], test_y[a:a + chunk], on_step)
             for a in range(0, len(test_idx), chunk)]
    d = -torch.cat(parts, dim=1)[:, :, torch.as_tensor(cfg.train_idx, device=ctx.device)]
    return d.double().cpu().numpy(), reference
