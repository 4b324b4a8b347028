"""`ekfac-kronfluence`: EK-FAC influence functions computed by kronfluence, in tdabench's convention.

kronfluence (Grosse et al. 2023) fits, for every `nn.Linear` and `nn.Conv2d` layer ("tracked module"),
the activation covariance A = mean a aᵀ (a with a 1 appended for the bias) and the pseudo-gradient
covariance S = mean g gᵀ (g: gradient of the per-example loss w.r.t. the layer's output), takes
their eigenvectors Q_A, Q_S, and refits the eigenvalues Λ = mean_i (Q_Sᵀ ∇_W ℓ_i Q_A)² on per-example
gradients. Means run over the training set: the train loss returned by the task is *summed* over
the batch (kronfluence's hooks read per-example output gradients off that sum; a batch mean would
scale S by 1/B²). G_EKFAC = (Q_S ⊗ Q_A) diag(Λ) (Q_S ⊗ Q_A)ᵀ per layer, block-diagonal over layers,
is the EK-FAC approximation of the Fisher/Gauss–Newton matrix of the *mean* training loss.
`compute_pairwise_scores` returns, per (query, train) pair, shape (n_query, n_train),

    score[q, i] = ∇f(z_q)ᵀ (G_EKFAC + δI)⁻¹ ∇ℓ(z_i),

f = the task's `compute_measurement` (here tdabench's target, summed over the batch so that each
row's gradient is its own ∇f), ℓ = `compute_train_loss(sample=False)` (tdabench's training loss on
the true labels), δ = `damping_factor` added to every eigenvalue. That is already tdabench's
influence function: same orientation (test rows, train columns; no transposition), same sign (the
score is minus the derivative of f with respect to the weight of z_i, as in Koh & Liang: positive =
removing the training instance increases the target) and scale 1 (G_EKFAC approximates the
curvature of the mean loss, like tdabench's C). The only difference is the curvature: tdabench's
risk adds (l2/2)||θ||², whose Hessian l2·I is not in kronfluence's factors, so this adapter passes
δ = λ + l2: score = ∇f(z)ᵀ(G_EKFAC + l2·I + λI)⁻¹∇ℓ(z_i), i.e. C = G_EKFAC + l2·I, damping λ.

The Fisher (kronfluence's `sample=True`, unless `use_empirical_fisher`):
- cross-entropy: labels are sampled from the model's predictive distribution softmax(f(x)) with a
  torch.Generator seeded by `seed` (the true Fisher, which for softmax outputs equals the
  Gauss–Newton matrix in expectation; one draw per example, so the factors carry Monte-Carlo noise);
- squared loss (f − y)²: the model's predictive distribution is N(f(x), 1/2) (its negative
  log-likelihood is the loss up to a constant), and E[∇ℓ∇ℓᵀ] over it is the Gauss–Newton matrix
  (∇²_out ℓ = 2). Only the second moment of the output gradient g = 2(f − y) enters the factors, so
  the pseudo-labels are drawn from the two-point distribution f ± 1/√2 (same mean and variance 1/2):
  g² = 2 exactly, and with one output the factors equal the Gauss–Newton ones with no sampling noise;
- `use_empirical_fisher=True`: kronfluence uses the true labels (empirical Fisher, mean ∇ℓ∇ℓᵀ).
Everything is computed in float64 (covariances, eigendecomposition, Λ, per-sample gradients,
preconditioning, scores). Damping: `damping` is absolute; None means kronfluence's heuristic
0.1 × mean(Λ) per layer. With l2 > 0 that heuristic is resolved here from the fitted Λ so that l2
can be added: for a model with one layer it is kronfluence's number exactly; with several layers the
mean runs over all layers together (0.1 × the mean eigenvalue of the whole G_EKFAC), since
kronfluence takes one damping for all layers. kronfluence writes its factors and scores under a
temporary folder that lives as long as the fitted estimator and is removed with it (or by a refit).

Device: kronfluence runs where the fitted context lives, `Analyzer(cpu=(device.type == "cpu"))`;
with cpu=False it uses its own choice of CUDA device (the current one), so a context on `cuda:k`
needs `torch.cuda.set_device(k)` (the pseudo-labels are drawn on the CPU, then moved).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata
import math
import tempfile
import warnings
from contextlib import contextmanager
from typing import Any, Iterator
from unittest import mock

import numpy as np
import torch
from torch.utils.data import TensorDataset

from tdabench.errors import TdabenchError
from tdabench.estimators.base import Estimator, is_positive_int
from tdabench.task.context import TaskContext
from tdabench.task.targets import make_target

NAME = "ekfac-kronfluence"
F64 = torch.float64


# kronfluence modules that call `kronfluence.utils.state.release_memory` between passes
RELEASE_MEMORY_CALLERS = ("kronfluence.computer.computer", "kronfluence.score.dot_product")


@contextmanager
def _quiet(cpu: bool) -> Iterator[None]:
    """Run kronfluence without its FutureWarning (kronfluence 1.0.1 builds `torch.cuda.amp.GradScaler`)
    and, on CPU, without `release_memory()` between passes: that is gc.collect + torch.compiler.reset,
    which frees nothing on CPU and took ~0.5 s per call (about 20 calls per fit and score) in a process
    that has imported torch and scikit-learn."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"kronfluence\b")
        if cpu:
            for module in RELEASE_MEMORY_CALLERS:
                stack.enter_context(mock.patch(f"{module}.release_memory", lambda: None))
        yield


def _make_task(context: TaskContext, generator: torch.Generator) -> Any:
    """A kronfluence Task computing tdabench's training loss and target (both summed over the batch)."""
    from kronfluence.task import Task

    objective = context.spec.objective
    loss_fn = context.output_loss
    target_fn = make_target(context.target_name, objective)
    squared = objective.loss == "squared"

    class TdabenchTask(Task):
        def compute_train_loss(self, batch: Any, model: torch.nn.Module, sample: bool = False) -> torch.Tensor:
            x, y = batch
            out = model(x)
            if sample:
                with torch.no_grad():
                    if squared:  # two-point pseudo-labels f ± 1/√2: mean f, variance 1/2 (see module docstring)
                        signs = torch.randint(0, 2, (len(x),), generator=generator, device="cpu").to(out) * 2 - 1
                        y = out.detach().squeeze(-1) - signs / math.sqrt(2.0)
                    else:
                        probs = torch.softmax(out.detach().cpu().double(), dim=-1)
                        y = torch.multinomial(probs, 1, generator=generator).squeeze(-1).to(out.device)
            return loss_fn(out, y).sum()

        def compute_measurement(self, batch: Any, model: torch.nn.Module) -> torch.Tensor:
            x, y = batch
            return target_fn(model(x), y).sum()

    return TdabenchTask()


class EkfacKronfluence(Estimator):
    """EK-FAC influence by kronfluence: score[j, i] = ∇f(z_j)ᵀ(G_EKFAC + l2·I + λI)⁻¹∇ℓ(z_i).

    damping: λ, absolute (None: kronfluence's heuristic 0.1·mean eigenvalue; see the module docstring);
    use_empirical_fisher: factors from the true labels instead of labels sampled from the model;
    seed: the label sampling; batch_size: examples per batch in every kronfluence pass.
    """
    family = "per-layer curvature"
    uses = "final-model"
    summary = "EK-FAC influence computed by kronfluence (reference for ekfac)."
    citation = ("Grosse et al., Studying Large Language Model Generalization with Influence Functions, 2023 "
                "(kronfluence)")

    adapter_of = "kronfluence"

    def __init__(self, *, damping: float | None = None, use_empirical_fisher: bool = False, seed: int = 0,
                 batch_size: int = 256) -> None:
        self.damping = damping
        self.use_empirical_fisher = use_empirical_fisher
        self.seed = seed
        self.batch_size = batch_size

    def _validate_params(self) -> None:
        ok = self.damping is None or (isinstance(self.damping, (int, float)) and not isinstance(self.damping, bool)
                                      and math.isfinite(self.damping) and self.damping >= 0)
        self._check_param(ok, "damping", "null (kronfluence's heuristic) or a finite number >= 0")
        self._check_param(isinstance(self.use_empirical_fisher, bool), "use_empirical_fisher", "true or false")
        ok_seed = isinstance(self.seed, (int, np.integer)) and not isinstance(self.seed, bool)
        self._check_param(ok_seed and self.seed >= 0, "seed", "an integer >= 0")
        self._check_param(is_positive_int(self.batch_size), "batch_size", "a positive integer")

    def _fit(self, context: TaskContext) -> None:
        self._release()
        try:
            from kronfluence.analyzer import Analyzer, prepare_model
            from kronfluence.arguments import FactorArguments
        except ImportError as err:
            raise TdabenchError(f"{NAME} needs the package kronfluence: pip install kronfluence==1.0.1 "
                                f"({err})") from None
        if context.spec.objective.loss == "squared" and context.data.n_outputs != 1:
            raise TdabenchError(f"{NAME}: squared loss is supported with one output, got {context.data.n_outputs}")
        kinds = (torch.nn.Linear, torch.nn.Conv2d)
        tracked = sum(p.numel() for m in context.model.modules() if isinstance(m, kinds)
                      for p in m.parameters(recurse=False))
        if tracked != context.n_params:
            raise TdabenchError(f"{NAME}: kronfluence factors nn.Linear and nn.Conv2d layers only, which hold "
                                f"{tracked} of the model's {context.n_params} parameters; the others would be ignored")
        workdir = tempfile.TemporaryDirectory(prefix="tdabench-kronfluence-")
        try:
            generator = torch.Generator().manual_seed(int(self.seed))
            task = _make_task(context, generator)
            model = copy.deepcopy(context.model)
            model.load_state_dict({**context.params, **context.buffers})
            model = prepare_model(model, task)
            factor_args = FactorArguments(
                strategy="ekfac", use_empirical_fisher=self.use_empirical_fisher,
                activation_covariance_dtype=F64, gradient_covariance_dtype=F64, eigendecomposition_dtype=F64,
                per_sample_gradient_dtype=F64, lambda_dtype=F64)
            with _quiet(cpu=False):
                analyzer = Analyzer(analysis_name="tdabench", model=model, task=task, cpu=context.device.type == "cpu",
                                    disable_tqdm=True, output_dir=workdir.name)
            with _quiet(cpu=analyzer.state.device.type == "cpu"):
                analyzer.fit_all_factors(factors_name="ekfac", dataset=TensorDataset(context.train.x, context.train.y),
                                         per_device_batch_size=self.batch_size, factor_args=factor_args)
            self._resolve_damping(analyzer, context.l2)
        except BaseException:
            workdir.cleanup()
            raise
        self.workdir_ = workdir
        self.analyzer_ = analyzer
        self.library_version_ = importlib.metadata.version("kronfluence")

    def _resolve_damping(self, analyzer: Any, l2: float) -> None:
        """Set `heuristic_` (kronfluence's 0.1·mean(Λ) per layer), `damping_` (λ: `damping`, or the
        heuristic: per layer as a dict, or one number) and `damping_factor_` (kronfluence's δ = λ + l2;
        None lets kronfluence apply its own per-layer heuristic)."""
        from kronfluence.utils.constants import HEURISTIC_DAMPING_SCALE  # 0.1 in kronfluence 1.0.1

        factors = analyzer.load_lambda_matrices(factors_name="ekfac")
        lambdas = {m: (lam.to(F64) / factors["num_lambda_processed"][m].to(F64))
                   for m, lam in factors["lambda_matrix"].items()}
        self.heuristic_ = {m: HEURISTIC_DAMPING_SCALE * float(lam.mean()) for m, lam in lambdas.items()}
        if self.damping is not None:
            self.damping_: float | dict[str, float] = float(self.damping)
        elif l2 == 0:
            self.damping_ = dict(self.heuristic_)
        elif len(lambdas) == 1:
            self.damping_ = next(iter(self.heuristic_.values()))
        else:  # one damping for all layers: 0.1 × the mean eigenvalue of the whole G_EKFAC
            pooled = torch.cat([lam.reshape(-1) for lam in lambdas.values()])
            self.damping_ = HEURISTIC_DAMPING_SCALE * float(pooled.mean())
        self.damping_factor_ = None if isinstance(self.damping_, dict) else self.damping_ + l2

    def _release(self) -> None:
        """Forget a previous fit and remove its folder."""
        self.__dict__.pop("analyzer_", None)
        old = self.__dict__.pop("workdir_", None)
        if old is not None:
            old.cleanup()

    def _score(self, test_idx: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
        context = self._fitted_context()
        if test_idx.size == 0 or train_idx.size == 0:
            return np.zeros((test_idx.size, train_idx.size))
        from kronfluence.arguments import ScoreArguments

        score_args = ScoreArguments(damping_factor=self.damping_factor_, per_sample_gradient_dtype=F64,
                                    precondition_dtype=F64, score_dtype=F64, query_gradient_svd_dtype=F64)
        with _quiet(cpu=self.analyzer_.state.device.type == "cpu"):
            self.analyzer_.compute_pairwise_scores(
                scores_name="scores", factors_name="ekfac",
                query_dataset=TensorDataset(context.test.x, context.test.y),
                train_dataset=TensorDataset(context.train.x, context.train.y),
                per_device_query_batch_size=self.batch_size, per_device_train_batch_size=self.batch_size,
                query_indices=[int(i) for i in test_idx], train_indices=[int(i) for i in train_idx],
                score_args=score_args, overwrite_output_dir=True)
            scores = self.analyzer_.load_pairwise_scores(scores_name="scores")["all_modules"]
        return scores.double().cpu().numpy()  # (n_test, n_train): kronfluence's orientation and sign

    def describe(self) -> dict[str, Any]:
        context = self._fitted_context()
        fisher = "empirical (true labels)" if self.use_empirical_fisher else (
            "true, labels sampled from the model" if context.spec.objective.loss == "cross-entropy"
            else "true, two-point pseudo-labels f ± 1/√2 (Gauss–Newton, no sampling noise)")
        return {"library": "kronfluence", "library_version": self.library_version_, "strategy": "ekfac",
                "fisher": fisher, "seed": int(self.seed), "target": context.target_name,
                "damping": self.damping_,  # λ; a dict: kronfluence's heuristic per layer (module name)
                "damping_heuristic": self.damping is None, "l2": context.l2,
                "damping_factor": self.damping_factor_}  # kronfluence's δ = λ + l2; null: its heuristic
