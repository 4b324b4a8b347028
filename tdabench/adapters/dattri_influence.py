"""Influence functions computed by dattri's conjugate-gradient attributor (adapter `if-dattri`).

    score[j, i] = ∇f(z_j; θᶠ)ᵀ (H + λI)⁻¹ ∇ℓ(z_i; θᶠ),   H = ∇²R(θᶠ),
    R(θ) = mean_i ℓ(z_i; θ) + (l2/2)||θ||²

the same quantity as tdabench's `if-explicit` with curvature='hessian' (see
tdabench/estimators/influence.py for the sign), solved by dattri's `IFAttributorCG`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.metadata
import math
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from tdabench.errors import TdabenchError
from tdabench.estimators.base import Estimator, is_positive_int
from tdabench.estimators.damped import check_damping
from tdabench.estimators.gradients import Tensors, as_float64, flat_per_sample_grads, training_lambda_g
from tdabench.task.context import TaskContext

EXTRA_ITERATIONS = 10  # CG iterations beyond the number of parameters P tried first (rounding)


def _require_dattri() -> Any:
    """dattri, imported on first use (this module, and the class's `adapter_of`, load without it)."""
    try:
        import dattri.algorithm.base
        import dattri.task
    except ImportError as err:
        raise TdabenchError(f"if-dattri needs the package dattri: pip install --no-deps dattri==0.3.0 "
                            f"({err})") from None
    return dattri


@contextlib.contextmanager
def _dattri_settings(dtype: torch.dtype) -> Iterator[None]:
    """While dattri attributes: torch's default dtype = `dtype` (dattri allocates its score matrix
    with `torch.zeros(...)`, i.e. in the default dtype, float32, and would round float64 scores to
    it), and dattri's progress bars off. Both are restored afterwards."""
    dattri_base = _require_dattri().algorithm.base
    old_dtype, old_tqdm = torch.get_default_dtype(), dattri_base.tqdm
    torch.set_default_dtype(dtype)
    dattri_base.tqdm = functools.partial(old_tqdm, disable=True)
    try:
        yield
    finally:
        torch.set_default_dtype(old_dtype)
        dattri_base.tqdm = old_tqdm


def iteration_counts(first: int, most: int) -> Iterator[int]:
    """first, then first/2, 2·first, first/4, 4·first, … within [1, most], each once."""
    yield first
    seen, k = {first}, 1
    while (first >> k) >= 1 or (first << k) <= most:
        for n in (first >> k, first << k):
            if 1 <= n <= most and n not in seen:
                seen.add(n)
                yield n
        k += 1


class InfluenceDattri(Estimator):
    """Influence functions by dattri's IFAttributorCG: score = ∇f(z)ᵀ(H + λI)⁻¹∇ℓ(z_i), H = ∇²R(θᶠ).

    Equal (up to the CG error) to `ExplicitInfluence(curvature='hessian', damping=λ,
    damping_relative=False)`. Computed in float64 on a deep copy of `context.model` at θᶠ.

    Parameters: damping λ ≥ 0 (absolute, or relative to λ_G = mean squared entry of the per-sample
    training gradients when `damping_relative`, as in if-explicit); max_iter: CG iterations;
    tol: the largest accepted relative residual of each CG solve (checked here, see below);
    batch_size: examples per batch of per-sample gradients (training and test loaders).
    The default damping 0.1 is absolute: on an SGD final model H is indefinite, and CG is only
    guaranteed to converge for a positive definite H + λI (docs/method.md, the unified view: an undamped or barely
    damped Hessian off the optimum gives scores unrelated to further training).

    How dattri's quantities map to tdabench's (read from dattri 0.3.0's source):

    - Curvature. `IFAttributorCG.transform_test_rep` runs CG with the Hessian of the task's
      `loss_func` on *each* batch of the cached full-training loader and **sums the solutions**:
      Σ_b (H_b + ρI)⁻¹v, which is (Σ_b H_b + ρI)⁻¹v only for a single batch. The full-training loader
      is therefore one batch of all n training examples, and `loss_func` returns the *mean* loss of
      its batch, so H_b = ∇²(mean_i ℓ_i). The regulariser (l2/2)||θ||² has Hessian l2·I exactly, so
      it enters through dattri's `regularization` argument (which adds ρ·v to every Hessian-vector
      product): ρ = λ + l2, giving (∇²R + λI)⁻¹. It cannot sit in `loss_func`, which dattri also
      differentiates per example for the training gradients (∇ℓ_i must not include l2·θ).
    - Gradients. Training representations: ∇ of `loss_func` on a batch of one example = ∇ℓ(z_i);
      test representations: ∇ of `target_func` = ∇f(z_j) (context.target, so 'margin' works).
    - Sign and shape. `attribute(train_loader, test_loader)` returns
      tda[i, j] = ∇ℓ(z_i)ᵀ (H + ρI)⁻¹ ∇f(z_j), shape (n_train, n_test), in the loaders' order
      (unshuffled). Positive = removing z_i increases f(z_j) (Koh & Liang's up-weighting influence
      on the test loss is minus this), i.e. tdabench's sign: the adapter only **transposes**.
      With a single checkpoint dattri's average over checkpoints is the identity; no scale factor.
    - CG. dattri 0.3.0's CG starts from x₀ = v, ignores its `tol` argument and always runs exactly
      `max_iter` iterations. Run far past convergence, its recursively updated residual keeps
      shrinking until it underflows, and then the iteration breaks down: 0/0 (NaN scores) or finite
      garbage (seen: NaN after ~150 iterations on a 62-parameter model, scores 1e55 times too large
      with 1000). Too few iterations leave it unconverged, with no warning. So the adapter checks
      every solve: a subclass of IFAttributorCG computes the relative residual ‖(H + ρI)x − v‖/‖v‖ of
      each CG solution x with dattri's own `hvp_at_x` and turns rows above `tol` into NaN. It first
      passes n₀ = min(max_iter, P + 10) iterations (P parameters: CG converges within P iterations in
      exact arithmetic, a few more with rounding); test points whose solve fails are recomputed by
      dattri with n₀/2, 2n₀, n₀/4, 4n₀, … iterations (within [1, max_iter]) until one passes
      (recorded in `describe()['other_max_iter']`), else TdabenchError. The largest accepted
      residual is `describe()['max_relative_residual']`. A test point whose target gradient is
      exactly 0 (a saturated loss) would give 0/0 in dattri's first step; its row is set to 0 (the
      exact value) and not passed to dattri.
    - dattri allocates its score matrix in torch's default dtype (float32); the call runs with the
      default dtype set to float64 (restored afterwards) so no precision is lost.
    - Cost: dattri's loop recomputes the test batch's CG solve inside its loop over training
      batches; the subclass memoises it, so each test batch of `batch_size` is solved once.
    """
    family = "influence function"
    uses = "final-model"
    summary = "Influence function computed by dattri (reference for the if-* estimators)."
    citation = "Koh & Liang, ICML 2017; Deng et al., dattri: A Library for Efficient Data Attribution, NeurIPS 2024"

    adapter_of = "dattri"

    def __init__(self, *, damping: float = 0.1, damping_relative: bool = False, max_iter: int = 100,
                 tol: float = 1e-8, batch_size: int = 256) -> None:
        self.damping = damping
        self.damping_relative = damping_relative
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        check_damping(self)
        self._check_param(is_positive_int(self.max_iter), "max_iter", "a positive integer")
        ok = isinstance(self.tol, (int, float)) and not isinstance(self.tol, bool)
        self._check_param(ok and math.isfinite(self.tol) and self.tol > 0, "tol", "a finite number > 0")
        self._check_param(is_positive_int(self.batch_size), "batch_size", "a positive integer")

    def _fit(self, context: TaskContext) -> None:
        AttributionTask = _require_dattri().task.AttributionTask  # noqa: N806 (dattri's class)
        params, x, y = as_float64(context, context.train.x, context.train.y)
        self.lambda_g_ = training_lambda_g(context, self.batch_size)
        self.damping_ = float(self.damping) * (self.lambda_g_ if self.damping_relative else 1.0)
        self.regularization_ = self.damping_ + float(context.l2)
        model = copy.deepcopy(context.model).double()
        for p in model.parameters():
            p.requires_grad_(True)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        state.update({k: v.detach().clone() for k, v in params.items()})
        self.params64_ = params

        # dattri unflattens θ into a dict named as model.named_parameters() (= context.params).
        def loss_func(theta: Tensors, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            xb, yb = data  # the mean over the batch: one example (gradients) or the training set (Hessian)
            return context.loss(theta, xb, yb).mean()

        def target_func(theta: Tensors, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            xb, yb = data  # one test example
            return context.target(theta, xb, yb).sum()

        self.task_ = AttributionTask(loss_func=loss_func, model=model, checkpoints=state, target_func=target_func)
        # One batch of the whole training set: dattri sums CG solutions over this loader's batches.
        self.full_train_loader_ = DataLoader(TensorDataset(x, y), batch_size=len(x), shuffle=False)
        # CG converges within P iterations in exact arithmetic, a few more with rounding; running far
        # beyond convergence breaks dattri's CG down (see the class docstring).
        self.max_iter_used_ = min(self.max_iter, context.n_params + EXTRA_ITERATIONS)
        self.other_max_iter_: dict[int, int] = {}
        self.max_residual_ = 0.0

    def _attribute(self, max_iter: int, train_loader: DataLoader, x_test: torch.Tensor,
                   y_test: torch.Tensor) -> torch.Tensor:
        """dattri's scores (n_train, n_test) with `max_iter` CG iterations, in float64."""
        from tdabench.adapters.dattri_cg import CheckedCG

        attributor = CheckedCG(self.task_, max_iter, self.regularization_, self.tol,
                               device=str(self._fitted_context().device))
        attributor.cache(self.full_train_loader_)
        test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=self.batch_size, shuffle=False)
        with _dattri_settings(torch.float64):
            scores = attributor.attribute(train_loader, test_loader).detach().double()
        self.max_residual_ = max(self.max_residual_, attributor.max_accepted_residual)
        return scores

    def _score(self, test_idx: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
        context = self._fitted_context()
        out = np.zeros((len(test_idx), len(train_idx)))
        if len(test_idx) == 0 or len(train_idx) == 0:
            return out
        test_i = torch.as_tensor(test_idx, device=context.device)
        train_i = torch.as_tensor(train_idx, device=context.device)
        _, x_test, y_test = as_float64(context, context.test.x[test_i], context.test.y[test_i])
        _, x_train, y_train = as_float64(context, context.train.x[train_i], context.train.y[train_i])
        test_grads = flat_per_sample_grads(context, "target", x_test, y_test, self.params64_, self.batch_size)
        live = torch.nonzero(test_grads.abs().amax(dim=1) > 0).flatten()  # zero target gradient: score 0
        train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=self.batch_size, shuffle=False)
        for max_iter in iteration_counts(self.max_iter_used_, self.max_iter):
            if len(live) == 0:
                break
            if max_iter != self.max_iter_used_:
                self.other_max_iter_.update({int(test_idx[j]): max_iter for j in live.tolist()})
            scores = self._attribute(max_iter, train_loader, x_test[live], y_test[live]).T  # (n_live, n_train)
            finite = torch.isfinite(scores).all(dim=1)
            out[live[finite.to(live.device)].cpu().numpy()] = scores[finite].cpu().numpy()
            live = live[~finite]
        if len(live) > 0:
            raise TdabenchError(
                f"if-dattri: dattri's conjugate gradient did not reach relative residual <= {self.tol:g} "
                f"for test points {test_idx[live.cpu().numpy()].tolist()} with any number of iterations up to "
                f"max_iter = {self.max_iter}; increase max_iter or the damping (CG needs a positive "
                "definite H + damping*I), or loosen tol")
        return out

    def describe(self) -> dict[str, Any]:
        self._fitted_context()
        return {"library": "dattri", "library_version": importlib.metadata.version("dattri"),
                "attributor": "IFAttributorCG", "curvature": "hessian", "damping": self.damping_,
                "lambda_g": self.lambda_g_, "regularization": self.regularization_,
                "max_iter": self.max_iter_used_, "tol": self.tol, "batch_size": self.batch_size,
                "max_relative_residual": self.max_residual_,
                "other_max_iter": {str(k): v for k, v in sorted(self.other_max_iter_.items())}}
