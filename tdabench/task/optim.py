"""Functional SGD and Adam(W) on dicts of tensors, with PyTorch's update rules.

Works on one model's parameters or on K stacked copies (leading dimension K): every update is
elementwise, and `active` (shape (K,), or a scalar) freezes the copies whose batch was empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tdabench.task.spec import OptimizerSpec

Tensors = dict[str, torch.Tensor]


def _blend(active: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    if bool(active.all()):
        return new
    mask = active.reshape(active.shape + (1,) * (new.dim() - active.dim()))
    return torch.where(mask, new, old)


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    """√x, with derivative 0 instead of ∞ where x = 0 (same values). Adam's v is 0 only where every
    gradient so far was exactly 0 (a dead unit), so its derivative there is 0 and ∞ · 0 = NaN would
    poison the reverse sweep of the derivative mode (truths/further/derivative.py)."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, 1.0).sqrt(), 0.0)


@dataclass(frozen=True)
class FunctionalOptimizer:
    """`init(params)` gives the state; `step(params, grads, state, active)` gives new params and state."""

    spec: OptimizerSpec

    def init(self, params: Tensors) -> Tensors:
        state = {f"m.{k}": torch.zeros_like(v) for k, v in params.items()}
        if self.spec.optimizer in ("adam", "adamw"):
            state |= {f"v.{k}": torch.zeros_like(v) for k, v in params.items()}
        first = next(iter(params.values()))
        return state | {"count": torch.zeros((), dtype=first.dtype, device=first.device)}

    def step(self, params: Tensors, grads: Tensors, state: Tensors,
             active: torch.Tensor) -> tuple[Tensors, Tensors]:
        count = state["count"] + active.to(state["count"].dtype)
        new_params, new_state = {}, {"count": count}
        for k, p in params.items():
            update = self._sgd if self.spec.optimizer == "sgd" else self._adam
            p_new, slots = update(k, p, grads[k], state, count)
            new_params[k] = _blend(active, p_new, p)
            new_state |= {s: _blend(active, v, state[s]) for s, v in slots.items()}
        return new_params, new_state

    def step_(self, params: Tensors, grads: Tensors, state: Tensors, active: torch.Tensor | bool) -> None:
        """`step`, in place on `params` and `state` (`grads` are consumed: they may be overwritten).

        `active` may be a host bool (True: every copy takes the step); when some copies are
        frozen it falls back to `step` and copies the result in. The common case is a handful of
        fused `torch._foreach_*` updates with no new parameter-sized tensors."""
        if not (active is True or bool(torch.as_tensor(active).all())):
            new_params, new_state = self.step(params, grads, state, torch.as_tensor(active))
            torch._foreach_copy_(list(params.values()), [new_params[k] for k in params])
            state["count"] = new_state["count"]
            torch._foreach_copy_([state[k] for k in new_state if k != "count"],
                                 [new_state[k] for k in new_state if k != "count"])
            return
        state["count"] = state["count"] + 1
        names = list(params)
        p, g = [params[k] for k in names], [grads[k] for k in names]
        if self.spec.optimizer == "sgd":
            self._sgd_(p, g, [state[f"m.{k}"] for k in names])
        else:
            self._adam_(p, g, [state[f"m.{k}"] for k in names], [state[f"v.{k}"] for k in names],
                        state["count"])

    def _sgd_(self, p: list[torch.Tensor], g: list[torch.Tensor], buf: list[torch.Tensor]) -> None:
        s = self.spec
        if s.weight_decay:
            torch._foreach_add_(g, p, alpha=s.weight_decay)
        if s.momentum:
            torch._foreach_mul_(buf, s.momentum)
            torch._foreach_add_(buf, g)
            g = buf
        torch._foreach_add_(p, g, alpha=-s.lr)

    def _adam_(self, p, g, m, v, count, beta1=0.9, beta2=0.999, eps=1e-8) -> None:
        s = self.spec
        if s.optimizer == "adamw":
            torch._foreach_mul_(p, 1 - s.lr * s.weight_decay)
        elif s.weight_decay:
            torch._foreach_add_(g, p, alpha=s.weight_decay)
        torch._foreach_mul_(m, beta1)
        torch._foreach_add_(m, g, alpha=1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, g, g, value=1 - beta2)
        for p_k, m_k, v_k in zip(p, m, v):
            c = count.reshape(count.shape + (1,) * (p_k.dim() - count.dim())).clamp(min=1)
            denom = (v_k / (1 - beta2 ** c)).sqrt_().add_(eps)
            p_k.sub_(s.lr * (m_k / (1 - beta1 ** c)) / denom)

    def _sgd(self, k: str, p, g, state, count):
        s = self.spec
        if s.weight_decay:
            g = g + s.weight_decay * p
        if not s.momentum:
            return p - s.lr * g, {f"m.{k}": state[f"m.{k}"]}
        buf = s.momentum * state[f"m.{k}"] + g  # first step: buf = g, as in torch.optim.SGD
        return p - s.lr * buf, {f"m.{k}": buf}

    def _adam(self, k: str, p, g, state, count, beta1=0.9, beta2=0.999, eps=1e-8):
        s = self.spec
        if s.optimizer == "adamw":
            p = p * (1 - s.lr * s.weight_decay)
        elif s.weight_decay:
            g = g + s.weight_decay * p
        m = beta1 * state[f"m.{k}"] + (1 - beta1) * g
        v = beta2 * state[f"v.{k}"] + (1 - beta2) * g * g
        c = count.reshape(count.shape + (1,) * (p.dim() - count.dim())).clamp(min=1)
        m_hat, v_hat = m / (1 - beta1 ** c), v / (1 - beta2 ** c)
        return p - s.lr * m_hat / (_sqrt(v_hat) + eps), {f"m.{k}": m, f"v.{k}": v}


def torch_optimizer(spec: OptimizerSpec, parameters) -> torch.optim.Optimizer:
    """The torch.optim equivalent of `FunctionalOptimizer(spec)` (the sequential reference uses it)."""
    if spec.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    cls = torch.optim.AdamW if spec.optimizer == "adamw" else torch.optim.Adam
    return cls(parameters, lr=spec.lr, weight_decay=spec.weight_decay)
