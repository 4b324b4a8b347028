"""`trak-traker`: TRAK computed by traker (MadryLab's `trak` package), mapped to tdabench's convention.

traker featurises the training set with the final model: φ_i = Pᵀ∇m(z_i)/√P_θ, the gradient of the
margin m = log p_y/(1 − p_y) projected by a Gaussian matrix P (P_θ × k, entries N(0, 1); traker's
`BasicProjector` on CPU) and divided by √P_θ (P_θ: number of parameters); it also stores the
out-to-loss weights Q_i = 1 − p_i. `finalize_features` computes φ_i (ΦᵀΦ + λ_r I)⁻¹ / s, where
s = mean |(ΦᵀΦ + λ_r I)⁻¹| is a positive rescaling that traker applies for float16 safety, and
`finalize_scores` returns the matrix τ of shape (n_train, n_test),

    τ[i, j] = Q_i · φ_iᵀ (ΦᵀΦ + λ_r I)⁻¹ φ_j / s.

Mapping to tdabench. Write u = Pᵀ∇m/√k (the projection scaled to be nearly isometric) and
C̃ = (1/n) Σ_i u_i u_iᵀ, TRAK's Gauss–Newton approximation (margin gradients, without the weights
p(1 − p)). For cross-entropy ∇ℓ = −(1 − p)∇m exactly, so the projected training-loss gradient is
ℓ̃_i = −Q_i u_i. This adapter passes λ_r = λ · n · k / P_θ to traker and returns

    score[j, i] = f̃_jᵀ (C̃ + λI)⁻¹ ℓ̃_i = c_j · n · s · τ[i, j]        (transposed),

with f̃_j = Pᵀ∇f(z_j)/√k the projected target gradient and c_j = Q_j = 1 − p_j (> 0) for target
'loss' (f̃_j = −Q_j u_j), c_j = −1 for target 'margin' (f̃_j = u_j): the sign flips for the margin
because a training instance that raises the test margin makes it fall when removed. So the score is
an influence function (tdabench's sign: positive = removal increases the target) with the curvature
C̃ + λI, computed in the k-dimensional projected space. λ = `damping` (times λ_F, the mean squared
entry of the features u, i.e. the mean eigenvalue of C̃, when `damping_relative`) + the task's l2
(the Hessian l2·I of the risk's (l2/2)||θ||², which traker's curvature lacks, taken as l2·I in the
projected space). With k > min(n, P_θ) C̃ is singular, so λ must be positive. traker computes in
float32 (`use_half_precision=False`; float16 otherwise), so the scores agree with a float64
evaluation of the formula above to about float32 precision times the condition number of C̃ + λI;
a damping that makes it exceed MAX_CONDITION is refused rather than turned into meaningless scores.
On CPU traker's `finalize_features` frees the projection matrix, which its `project` regenerates only
when proj_dim > 100 (more than one block of 100 columns); this adapter regenerates it otherwise.

Only classification with cross-entropy is supported (traker's model output is the margin); a
regression task or another target raises TdabenchError. traker works in a temporary folder
(`save_dir`) that lives as long as the fitted estimator and is removed with it (or by a refit).

Device: traker runs on the fitted context's device (`TRAKer(device=str(context.device))`). On CUDA
traker picks its CUDA projector when `fast_jl` is installed, whose random matrix differs from the
CPU `BasicProjector`'s, so CPU and CUDA scores then agree only as two projection seeds do.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import itertools
import logging
import math
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator
from unittest import mock

import numpy as np
import torch

from tdabench.errors import TdabenchError
from tdabench.estimators.base import Estimator, is_positive_int
from tdabench.task.context import TaskContext

NAME = "trak-traker"
# Largest condition number of C̃ + λI accepted: traker inverts it in float32 (eps 1.2e-7). On the tiny
# tanh MLP of the tests (l2 = 0) the largest relative error of the scores was 2e-6 at condition number
# 7e2, 2e-4 at 7e4, 2 % at 7e6 and meaningless (Pearson -0.5 with the float64 formula) at 7e8.
MAX_CONDITION = 1e7


def _require_traker() -> Any:
    try:
        import trak.traker
    except ImportError as err:
        raise TdabenchError(f"{NAME} needs the package traker (import name 'trak'): "
                            f"pip install traker==0.3.2 ({err})") from None
    return trak.traker


def _check_task(context: TaskContext, name: str) -> None:
    """Refuse what the adapter cannot map: a loss other than cross-entropy, a target other than loss/margin."""
    loss = context.spec.objective.loss
    if loss != "cross-entropy":
        raise TdabenchError(f"{name} supports classification with cross-entropy only (traker's model output "
                            f"is the margin log p_y/(1 - p_y)); task '{context.spec.name}' uses the {loss} loss")
    if context.target_name not in ("loss", "margin"):
        raise TdabenchError(f"{name} supports the targets 'loss' and 'margin', got '{context.target_name}'")


@contextmanager
def _quiet(traker_module: Any) -> Iterator[None]:
    """Silence traker's progress bars, and undo the handler that `TRAKer.__init__` adds to the root
    logger through `logging.basicConfig()`."""
    import tqdm

    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        with mock.patch.object(traker_module, "tqdm", functools.partial(tqdm.tqdm, disable=True)):
            yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)


def _top_eigenvalue(features: np.ndarray, iterations: int = 100) -> float:
    """Largest eigenvalue of FᵀF by power iteration (n × k features; deterministic start)."""
    f = torch.from_numpy(features)
    v = torch.ones(f.shape[1], dtype=f.dtype, device=f.device)
    value = 0.0
    for _ in range(iterations):
        w = f.T @ (f @ v)
        value = float(w.norm())
        if value == 0:
            return 0.0
        v = w / value
    return float(v @ (f.T @ (f @ v)))


def _recording_score_computer(basic: type) -> type:
    """traker's BasicScoreComputer, also recording the positive factor s = mean |(XᵀX + λ_r I)⁻¹| by which
    its `get_x_xtx_inv` divides the inverse: the inverse that traker computes is read as it is returned
    by `torch.linalg.inv` (no second k × k inversion, and exactly the number traker used)."""

    class RecordingScoreComputer(basic):  # type: ignore[misc, valid-type]
        inverse_scale: float = math.nan

        def get_x_xtx_inv(self, grads: torch.Tensor, xtx: torch.Tensor) -> torch.Tensor:
            inv = torch.linalg.inv

            def recording_inv(matrix: torch.Tensor) -> torch.Tensor:
                inverse = inv(matrix)
                self.inverse_scale = float(inverse.abs().mean())  # before traker divides it in place
                return inverse

            with mock.patch.object(torch.linalg, "inv", recording_inv):
                return super().get_x_xtx_inv(grads, xtx)

    return RecordingScoreComputer


class TrakTraker(Estimator):
    """TRAK by traker: score[j, i] = f̃_jᵀ(C̃ + λI)⁻¹ℓ̃_i in a k-dimensional random projection; see the
    module docstring for how traker's τ (n_train × n_test) is transposed, scaled and signed.

    proj_dim: k, columns of the Gaussian projection; seed: traker's `projector_seed`;
    damping: λ (absolute, or relative to λ_F = mean squared entry of the normalised projected margin
    gradients when `damping_relative`); the task's l2 is added to it; batch_size: examples per
    traker `featurize`/`score` call. Default damping 1·λ_F: not tuned, choose it on a validation split.
    """
    family = "random projection"
    uses = "final-model"
    summary = "TRAK computed by the traker library (reference for trak)."
    citation = "Park et al., TRAK: Attributing Model Behavior at Scale, ICML 2023 (traker)"

    adapter_of = "traker"

    def __init__(self, *, proj_dim: int = 2048, seed: int = 0, damping: float = 1.0,
                 damping_relative: bool = True, batch_size: int = 256) -> None:
        self.proj_dim = proj_dim
        self.seed = seed
        self.damping = damping
        self.damping_relative = damping_relative
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        self._check_param(is_positive_int(self.proj_dim), "proj_dim", "a positive integer")
        ok_seed = isinstance(self.seed, (int, np.integer)) and not isinstance(self.seed, bool)
        self._check_param(ok_seed and 0 <= self.seed < 2 ** 32, "seed", "an integer in [0, 2**32)")
        ok = isinstance(self.damping, (int, float)) and not isinstance(self.damping, bool)
        self._check_param(ok and math.isfinite(self.damping) and self.damping >= 0, "damping",
                          "a finite number >= 0")
        self._check_param(isinstance(self.damping_relative, bool), "damping_relative", "true or false")
        self._check_param(is_positive_int(self.batch_size), "batch_size", "a positive integer")

    def _fit(self, context: TaskContext) -> None:
        self._release()
        _check_task(context, NAME)
        traker_module = _require_traker()
        from trak.modelout_functions import ImageClassificationModelOutput
        from trak.projectors import BasicProjector
        from trak.score_computers import BasicScoreComputer

        n, k = len(context.train), int(self.proj_dim)
        workdir = tempfile.TemporaryDirectory(prefix="tdabench-trak-")
        try:
            model = copy.deepcopy(context.model)
            state = {name: t.detach().clone() for name, t in {**context.params, **context.buffers}.items()}
            with _quiet(traker_module):
                traker = traker_module.TRAKer(
                    model=model, task=ImageClassificationModelOutput(), train_set_size=n, save_dir=workdir.name,
                    device=str(context.device), use_half_precision=False, proj_dim=k, projector_seed=int(self.seed),
                    logging_level=logging.WARNING, score_computer=_recording_score_computer(BasicScoreComputer))
                traker.load_checkpoint(state, model_id=0)
                x, y = context.train.x, context.train.y
                for lo in range(0, n, self.batch_size):
                    traker.featurize(batch=(x[lo:lo + self.batch_size], y[lo:lo + self.batch_size]),
                                     num_samples=len(x[lo:lo + self.batch_size]))
                # traker's features g = a·u with a = √k / √P_θ (its normalize_factor is √P_θ in float32)
                scale_sq = k / float(traker.normalize_factor) ** 2
                features = np.asarray(traker.saver.current_store["grads"], dtype=np.float64)
                self.lambda_f_ = float(np.mean(features ** 2) / scale_sq)
                self.damping_ = float(self.damping) * (self.lambda_f_ if self.damping_relative else 1.0)
                self.total_damping_ = self.damping_ + context.l2
                rank_bound = min(n, traker.num_params_for_grad)
                if self.total_damping_ <= 0 and k > rank_bound:
                    raise TdabenchError(
                        f"{NAME}: the projected curvature has rank <= {rank_bound} < proj_dim={k}, so it is "
                        "singular; use a positive damping (or proj_dim <= min(n_train, n_params))")
                self.condition_number_ = (_top_eigenvalue(features) / (n * scale_sq) + self.total_damping_) / \
                    self.total_damping_ if self.total_damping_ > 0 else math.inf
                if self.total_damping_ > 0 and self.condition_number_ > MAX_CONDITION:
                    raise TdabenchError(
                        f"{NAME}: damping + l2 = {self.total_damping_:.3g} is too small for traker's float32 "
                        f"arithmetic: C̃ + λI has condition number {self.condition_number_:.2g} > "
                        f"{MAX_CONDITION:.0e}; increase the damping")
                self.lambda_reg_ = self.total_damping_ * n * scale_sq
                traker.score_computer.lambda_reg = traker.lambda_reg = self.lambda_reg_
                traker.finalize_features()
                if isinstance(traker.projector, BasicProjector) and not traker.projector.proj_matrix_available:
                    # finalize_features frees the projection; with a single block (proj_dim <= 100)
                    # `project` would not regenerate it
                    traker.projector.generate_sketch_matrix(traker.projector.generator_states[0])
            self.inverse_scale_ = float(traker.score_computer.inverse_scale)
            stored = np.asarray(traker.saver.current_store["features"])
            if not (math.isfinite(self.inverse_scale_) and self.inverse_scale_ > 0 and np.isfinite(stored).all()):
                raise TdabenchError(f"{NAME}: traker's (ΦᵀΦ + λI)⁻¹ is not finite in float32 "
                                    f"(damping + l2 = {self.total_damping_:.3g}); increase the damping")
        except BaseException:
            workdir.cleanup()
            raise
        self.workdir_ = workdir
        self.traker_ = traker
        self.checkpoint_ = state
        self.target_ = context.target_name
        self.library_version_ = importlib.metadata.version("traker")
        self.experiments_ = itertools.count()

    def _release(self) -> None:
        """Forget a previous fit and remove its folder (a failed refit leaves nothing behind)."""
        for attr in ("traker_", "checkpoint_"):
            self.__dict__.pop(attr, None)
        old = self.__dict__.pop("workdir_", None)
        if old is not None:
            old.cleanup()

    def _score(self, test_idx: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
        context = self._fitted_context()
        if test_idx.size == 0 or train_idx.size == 0:
            return np.zeros((test_idx.size, train_idx.size))
        # traker scores each distinct test point once, in increasing index order, so a permuted request
        # runs the very same float32 computation
        unique, inverse = np.unique(test_idx, return_inverse=True)
        index = torch.as_tensor(unique, dtype=torch.long, device=context.device)
        x, y = context.test.x[index], context.test.y[index]
        traker = self.traker_
        exp_name = f"tdabench_{next(self.experiments_)}"
        with _quiet(_require_traker()):
            traker.start_scoring_checkpoint(exp_name, self.checkpoint_, model_id=0, num_targets=len(unique))
            for lo in range(0, len(unique), self.batch_size):
                traker.score(batch=(x[lo:lo + self.batch_size], y[lo:lo + self.batch_size]),
                             num_samples=len(x[lo:lo + self.batch_size]))
            tau = np.array(traker.finalize_scores(exp_name=exp_name), dtype=np.float64)  # (n_train, n_unique)
        if self.target_ == "loss":
            q_test = traker.gradient_computer.compute_loss_grad((x, y)).reshape(-1).double().cpu().numpy()  # 1 − p_j
        else:
            q_test = -np.ones(len(unique))
        scores = (len(context.train) * self.inverse_scale_) * q_test[:, None] * tau.T  # (n_unique, n_train)
        return scores[np.ix_(inverse.reshape(-1), train_idx)]

    def describe(self) -> dict[str, Any]:
        context = self._fitted_context()
        return {"library": "traker", "library_version": self.library_version_, "proj_dim": int(self.proj_dim),
                "projection": "normal (traker BasicProjector, float32)", "seed": int(self.seed),
                "damping": self.damping_, "lambda_f": self.lambda_f_, "l2": context.l2,
                "total_damping": self.total_damping_, "traker_lambda_reg": self.lambda_reg_,
                "condition_number": self.condition_number_, "target": self.target_,
                "curvature": "mean outer product of projected margin gradients (TRAK)"}
