"""The task context: everything an estimator or the gold standard may use, and nothing else.

It holds the final model's parameters θᶠ (detached), the train/test splits and the functional
forms of the model, the per-example loss, the regulariser and the target, so that callers can use
torch.func (grad, vmap) on them. The final model is trained from the spec once and cached.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from tdabench.storage import UnitStore, cache_root, task_entry
from tdabench.task.data import Dataset, Split, load_dataset
from tdabench.task.models import model_for_data
from tdabench.task.objective import OutputFn, l2_penalty, margin, per_example_loss
from tdabench.task.probe import Probe, check_probe_layer, fit_probe, layer_activation
from tdabench.task.targets import is_probe, make_target
from tdabench.errors import TdabenchError
from tdabench.task.spec import TaskSpec
from tdabench.task.training import evaluate, train_module

FINAL_MODEL_FORMAT = 1  # raise when training code changes the numbers a spec produces

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Checkpoint:
    """Parameters saved after `epoch` epochs of the final model's training, and the learning rate
    used in the epochs that led to it (TracIn weights each checkpoint by it)."""

    epoch: int
    params: Tensors
    lr: float


@dataclass(frozen=True)
class TaskContext:
    """Final model + data. Functional helpers take `params` so they can be vmapped and differentiated."""

    spec: TaskSpec
    model: nn.Module
    params: Tensors
    buffers: Tensors
    data: Dataset
    final_metrics: dict[str, dict[str, float]]
    target_name: str
    _target_fn: OutputFn = field(repr=False)
    _loss_fn: OutputFn = field(repr=False)
    checkpoints: tuple[Checkpoint, ...] = ()  # saved during the final model's training; may be empty
    cache_dir: Path | None = None  # where the final model is cached (None: cache_root())
    probe: Probe | None = None  # the frozen concept probe of a 'probe:LAYER' target
    # What estimators compute once per context and share (dense_curvature.curvature_matrix); a
    # context made by dataclasses.replace starts empty.
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def train(self) -> Split:
        return self.data.train

    @property
    def test(self) -> Split:
        return self.data.test

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.spec.dtype)

    @property
    def device(self) -> torch.device:
        """Where the parameters (and so every tensor of a computation) live (task/device.py)."""
        return next(iter(self.params.values())).device

    @property
    def l2(self) -> float:
        return self.spec.objective.l2

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.params.values())

    def outputs(self, params: Tensors, x: torch.Tensor) -> torch.Tensor:
        """Model outputs (B, n_outputs) for inputs x (B, ...)."""
        return functional_call(self.model, (params, self.buffers), (x,))

    def loss(self, params: Tensors, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example training loss ℓ(z; θ), shape (B,), without the regulariser."""
        return self._loss_fn(self.outputs(params, x), y)

    def target(self, params: Tensors, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example attribution target f(z; θ), shape (B,) (targets.py, probe.py)."""
        if self.probe is not None:
            return self.probe.logit(layer_activation(self.model, params, self.buffers, x, self.probe.layer))
        return self._target_fn(self.outputs(params, x), y)

    def model_output(self, params: Tensors, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """TRAK's model-output function, (B,): the margin log p_y/(1 − p_y) for classification, the
        output itself for regression. The loss is a function of it with a derivative of one sign:
        ∇ℓ = −(1 − p_y)∇margin, ∇(out − y)² = 2(out − y)∇out."""
        outputs = self.outputs(params, x)
        if self.spec.objective.loss == "cross-entropy":
            return margin(outputs, y)
        return outputs.squeeze(-1)

    def loss_slope(self, params: Tensors, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """dℓ/dm per example (B,): the loss is a function of the model-output function m alone, so
        ∇ℓ = (dℓ/dm)∇m. Cross-entropy: ℓ = log(1 + e^{−m}), dℓ/dm = −(1 − p_y) = −σ(−m);
        squared loss: ℓ = (m − y)², dℓ/dm = 2(m − y)."""
        m = self.model_output(params, x, y)
        if self.spec.objective.loss == "cross-entropy":
            return -torch.sigmoid(-m)
        return 2 * (m - y)

    def regularizer(self, params: Tensors) -> torch.Tensor:
        """(l2 / 2) ||θ||², the part of the risk that no training instance owns."""
        return l2_penalty(params, self.l2)

    def with_target(self, name: str) -> "TaskContext":
        """The same context attributing target `name` (a probe is fitted on the final model)."""
        fn, probe = _target_parts(name, self.spec, self.model, self.params, self.buffers, self.data)
        return replace(self, target_name=name, _target_fn=fn, probe=probe)


def _target_parts(name: str, spec: TaskSpec, model: nn.Module, params: Tensors, buffers: Tensors,
                  data: Dataset) -> tuple[OutputFn, Probe | None]:
    """(output function, probe): a probe target fits its probe; others have no probe."""
    if not is_probe(name):
        return make_target(name, spec.objective, data.n_outputs), None
    if spec.concept is None:
        raise TdabenchError(f"target '{name}': task '{spec.name}' names no `concept` to probe for")
    probe = fit_probe(model, params, buffers, data.train, name.partition(":")[2], spec.concept)
    return per_example_loss(spec.objective), probe


def final_model_settings(spec: TaskSpec) -> dict[str, Any]:
    """What a cached final model was trained from (the free-text description is left out)."""
    spec_dict = {k: v for k, v in spec.to_dict().items() if k != "description"}
    return {"format": FINAL_MODEL_FORMAT, "spec_hash": spec.spec_hash, "spec": spec_dict}

def load_task_data(spec: TaskSpec, cache_dir: Path | None = None) -> Dataset:
    """The task's train/test splits (no training). For a `minilm` model the inputs are the outputs
    of its frozen layers, computed once and cached (`frozen.py`)."""
    data = load_dataset(spec.data, spec.objective.loss == "squared", getattr(torch, spec.dtype))
    if spec.model.kind == "minilm":
        from tdabench.task.frozen import with_frozen_features

        data = with_frozen_features(spec, data, cache_dir or cache_root())
    return data


def _checkpoint_unit(epoch: int) -> str:
    return f"checkpoint_{epoch:04d}"


def _final_model_store(spec: TaskSpec, root: Path | None) -> UnitStore:
    """Units "model" (the state dict) and "checkpoint_NNNN" (the parameters after epoch NNNN)."""
    return UnitStore(task_entry(root, "final_models", spec), final_model_settings(spec)).open()


def _train_final_model(model: nn.Module, spec: TaskSpec, data: Dataset, store: UnitStore) -> list[Tensors]:
    """Train from the spec, saving the checkpoints of `training.checkpoint_epochs`, then the model;
    returns the checkpoints' tensors (copies, as `_load_final_model` would read them back)."""
    wanted, checkpoints = set(spec.training.checkpoint_epochs), []

    def save_checkpoint(epoch: int) -> None:
        if epoch in wanted:
            checkpoints.append({k: v.detach().clone() for k, v in model.named_parameters()})
            store.save(_checkpoint_unit(epoch), checkpoints[-1])

    train_module(model, data.train, spec.objective, spec.training, on_epoch=save_checkpoint)
    store.save("model", model.state_dict())
    return checkpoints


def _load_final_model(model: nn.Module, spec: TaskSpec, store: UnitStore) -> list[Tensors] | None:
    """Load the cached model into `model` and return its checkpoints' tensors; None when any unit is
    missing or unreadable, or holds other tensors than the model's (then it is trained again)."""
    state = store.load("model")
    checkpoints = [store.load(_checkpoint_unit(e)) for e in spec.training.checkpoint_epochs]
    names = {k for k, _ in model.named_parameters()}
    if state is None or set(state) != set(model.state_dict()) or any(
            c is None or set(c) != names for c in checkpoints):
        return None
    model.load_state_dict(state)
    return checkpoints


def _checkpoints(spec: TaskSpec, loaded: list[Tensors], names: list[str]) -> tuple[Checkpoint, ...]:
    """The saved checkpoints, each with its tensors in the order `names` (that of context.params)."""
    lr = spec.training.lr  # constant learning rate: every checkpoint's epochs used it
    return tuple(Checkpoint(e, {k: tensors[k] for k in names}, lr)
                 for e, tensors in zip(spec.training.checkpoint_epochs, loaded))


def build_context(spec: TaskSpec, cache_dir: Path | None = None, target: str | None = None,
                  data: Dataset | None = None) -> TaskContext:
    """Load the data, train (or load from the cache) the final model, and assemble the context."""
    dtype = getattr(torch, spec.dtype)
    data = data or load_task_data(spec, cache_dir)
    model = model_for_data(spec.model, data, dtype)
    target = target or spec.target
    if is_probe(target):
        check_probe_layer(model, target.partition(":")[2])  # before the final model is trained
    store = _final_model_store(spec, cache_dir)
    loaded = _load_final_model(model, spec, store)
    if loaded is None:
        loaded = _train_final_model(model, spec, data, store)
    metrics = {"train": evaluate(model, data.train, spec.objective),
               "test": evaluate(model, data.test, spec.objective)}
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    target_fn, probe = _target_parts(target, spec, model, params, buffers, data)
    return TaskContext(spec, model, params, buffers, data, metrics, target, target_fn,
                       per_example_loss(spec.objective), _checkpoints(spec, loaded, list(params)),
                       cache_dir, probe)
