"""The task context: everything an estimator or the gold standard may use, and nothing else.

It holds the final model's parameters θᶠ (detached), the train/test splits and the functional
forms of the model, the per-example loss, the regulariser and the target, so that callers can use
torch.func (grad, vmap) on them. The final model is trained from the spec once and cached.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.func import functional_call

from tdabench.errors import SpecError, TdabenchError, UnknownNameError
from tdabench.progress import bar
from tdabench.storage import UnitStore, cache_root, task_entry
from tdabench.task.content import with_content
from tdabench.task.data import Dataset, Split, load_dataset
from tdabench.task.interaction import Interaction, make_interaction
from tdabench.task.models import model_for_data
from tdabench.task.objective import OutputFn, l2_penalty, margin, per_example_loss
from tdabench.task.probe import Probe, check_probe_layer, fit_probe, layer_activation
from tdabench.task.spec import TaskSpec, canonical_settings
from tdabench.task.targets import is_interaction, is_probe, make_target
from tdabench.task.training import evaluate, train_module
from tdabench.task.user_models import attributed_names, load_weights, read_weights

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
    """Final model + data. Functional helpers take `params` so they can be vmapped and differentiated.

    `params` are the attributed parameters (the spec's `model.attributed` patterns; all by default):
    the only ones that further training and retraining update. The model's other parameters are
    frozen and held with the buffers. `init_model()` builds a freshly initialised model (retraining
    from scratch starts there); None when the Python API was given only a final model.
    """

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
    init_model: Callable[[], nn.Module] | None = field(default=None, repr=False, compare=False)
    interaction: Interaction | None = None  # the S, baseline and v of an 'interaction:S' target
    # What estimators compute once per context and share (dense_curvature.curvature_matrix,
    # damped.lambda_max), keyed with `params_state()`; a
    # context made by dataclasses.replace starts empty.
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def params_state(self) -> tuple:
        """The identity and in-place version of each parameter tensor: part of every `memo` key, so
        that a value memoised for these parameters is not reused once one of them has changed."""
        return tuple((id(p), p._version) for p in self.params.values())

    @property
    def train(self) -> Split:
        return self.data.train

    @property
    def test(self) -> Split:
        return self.data.test

    @property
    def dtype(self) -> torch.dtype:
        """The computation's precision: the parameters' dtype (the spec's `dtype`, unless the context
        was cast by task/device.py's `context_as`)."""
        return next(iter(self.params.values())).dtype

    @property
    def output_loss(self) -> OutputFn:
        """The per-example loss as a function of the outputs: loss(outputs (B, C), y (B,)) -> (B,)
        (the objective's, or the callable given to the Python API)."""
        return self._loss_fn

    @property
    def final_lr(self) -> float:
        """The learning rate that weighs the final model when TracIn has no checkpoints: that of
        the final model's recipe, or, for the user's final model without one, the further-training one."""
        recipe = self.spec.training or self.spec.gold_standard.further_training
        return recipe.lr

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
        """Per-example attribution target f(z; θ), shape (B,) (targets.py, probe.py, interaction.py)."""
        if self.interaction is not None:
            return self.interaction.evaluate(lambda masked: self.outputs(params, masked), x, y)
        if self.probe is not None:
            return self.probe.logit(layer_activation(self.model, params, self.buffers, x, self.probe.layer))
        return self._target_fn(self.outputs(params, x), y)

    def model_output(self, params: Tensors, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """TRAK's model-output function, (B,): the margin log p_y/(1 − p_y) for classification, the
        output itself for regression. The loss is a function of it with a derivative of one sign:
        ∇ℓ = −(1 − p_y)∇margin, ∇(out − y)² = 2(out − y)∇out."""
        if self.spec.objective.loss == "custom":  # no closed form: the negative loss itself
            return -self.loss(params, x, y)
        outputs = self.outputs(params, x)
        if self.spec.objective.loss == "cross-entropy":
            return margin(outputs, y)
        return outputs.squeeze(-1)

    def loss_slope(self, params: Tensors, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """dℓ/dm per example (B,): the loss is a function of the model-output function m alone, so
        ∇ℓ = (dℓ/dm)∇m. Cross-entropy: ℓ = log(1 + e^{−m}), dℓ/dm = −(1 − p_y) = −σ(−m);
        squared loss: ℓ = (m − y)², dℓ/dm = 2(m − y); a custom loss: m = −ℓ, dℓ/dm = −1."""
        m = self.model_output(params, x, y)
        if self.spec.objective.loss == "custom":
            return -torch.ones_like(m)
        if self.spec.objective.loss == "cross-entropy":
            return -torch.sigmoid(-m)
        return 2 * (m - y)

    def regularizer(self, params: Tensors) -> torch.Tensor:
        """(l2 / 2) ||θ||², the part of the risk that no training instance owns."""
        return l2_penalty(params, self.l2)

    def with_target(self, name: str) -> "TaskContext":
        """The same context attributing target `name` (a probe is fitted on the final model)."""
        fn, probe, interaction = _target_parts(name, self.spec, self.model, self.params, self.buffers, self.data,
                                               self._loss_fn)
        return replace(self, target_name=name, _target_fn=fn, probe=probe, interaction=interaction)


def _target_parts(name: str, spec: TaskSpec, model: nn.Module, params: Tensors, buffers: Tensors,
                  data: Dataset, loss_fn: OutputFn) -> tuple[OutputFn, Probe | None, Interaction | None]:
    """(output function, probe, interaction): a probe target fits its probe, an interaction target
    takes its baseline from the data; others have neither (the output function is unused then)."""
    if name == "loss":
        return loss_fn, None, None
    if is_interaction(name):
        return loss_fn, None, make_interaction(name, spec, data)
    if not is_probe(name):
        return make_target(name, spec.objective, data.n_outputs), None, None
    if spec.concept is None:
        raise TdabenchError(f"target '{name}': task '{spec.name}' names no `concept` to probe for")
    probe = fit_probe(model, params, buffers, data.train, name.partition(":")[2], spec.concept)
    return loss_fn, probe, None


def final_model_settings(spec: TaskSpec) -> dict[str, Any]:
    """What a cached final model was trained from (the free-text description is left out)."""
    return {"format": FINAL_MODEL_FORMAT, "spec_hash": spec.spec_hash, "spec": spec.settings_dict()}


def _canonical_final_model_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings of a final model as compared: the spec without fields added (at their defaults)
    after the cache entry was written (`canonical_settings`), so a new tdabench reuses it."""
    return {**settings, "spec": canonical_settings(settings["spec"])} if "spec" in settings else settings

def load_task_data(spec: TaskSpec, cache_dir: Path | None = None) -> Dataset:
    """The task's train/test splits (no training). For a `minilm` model the inputs are the outputs
    of its frozen layers, computed once and cached (`frozen.py`)."""
    try:
        data = load_dataset(spec.data, spec.objective.loss == "squared", getattr(torch, spec.dtype))
    except UnknownNameError as err:  # name the spec file and the field
        raise SpecError(spec.spec_file or f"task '{spec.name}'", "data.source", "one of " + ", ".join(err.valid),
                        spec.data.source) from None
    if spec.model.kind == "minilm":
        from tdabench.task.frozen import with_frozen_features

        data = with_frozen_features(spec, data, cache_dir or cache_root())
    return data


def _checkpoint_unit(epoch: int) -> str:
    return f"checkpoint_{epoch:04d}"


def _final_model_store(spec: TaskSpec, root: Path | None) -> UnitStore:
    """Units "model" (the state dict) and "checkpoint_NNNN" (the parameters after epoch NNNN)."""
    return UnitStore(task_entry(root, "final_models", spec), final_model_settings(spec),
                     normalise=_canonical_final_model_settings).open()


def _train_final_model(model: nn.Module, spec: TaskSpec, data: Dataset, store: UnitStore,
                       loss_fn: OutputFn) -> list[Tensors]:
    """Train from the spec, saving the checkpoints of `training.checkpoint_epochs`, then the model;
    returns the checkpoints' tensors (copies, as `_load_final_model` would read them back)."""
    wanted, checkpoints = set(spec.training.checkpoint_epochs), []

    def save_checkpoint(epoch: int) -> None:
        if epoch in wanted:
            checkpoints.append({k: v.detach().clone() for k, v in model.named_parameters()})
            store.save(_checkpoint_unit(epoch), checkpoints[-1])

    with bar(spec.training.epochs, f"final model of {spec.name}", "epoch") as epochs:
        def on_epoch(epoch: int) -> None:
            save_checkpoint(epoch)
            epochs.update()

        train_module(model, data.train, spec.objective, spec.training, on_epoch=on_epoch, loss_fn=loss_fn)
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


def _trained_checkpoints(spec: TaskSpec, loaded: list[Tensors]) -> list[Checkpoint]:
    lr = spec.training.lr  # constant learning rate: every checkpoint's epochs used it
    return [Checkpoint(e, tensors, lr) for e, tensors in zip(spec.training.checkpoint_epochs, loaded)]


def _user_checkpoints(spec: TaskSpec) -> list[Checkpoint]:
    """The user's checkpoints (`model.checkpoints`), read from their weights files."""
    return [Checkpoint(c.epoch, read_weights(c.weights, f"model.checkpoints[{i}].weights"), c.lr)
            for i, c in enumerate(spec.model.checkpoints)]


def _final_model(spec: TaskSpec, data: Dataset, cache_dir: Path | None, init: Callable[[], nn.Module] | None,
                 given: nn.Module | None, loss_fn: OutputFn, target: str) -> tuple[nn.Module, list[Checkpoint]]:
    """The final model and its checkpoints: the Python API's module, the user's weights, the
    pretrained folder as it is, or trained from the spec (cached)."""
    if given is not None:
        return copy.deepcopy(given).to(getattr(torch, spec.dtype)), []
    model = init()
    if is_probe(target):
        check_probe_layer(model, target.partition(":")[2])  # before the final model is trained
    _freeze(model, spec)
    if spec.model.weights is not None:
        load_weights(model, read_weights(spec.model.weights), "model.weights")
    if not spec.trains_final_model:
        return model, _user_checkpoints(spec)
    store = _final_model_store(spec, cache_dir)
    loaded = _load_final_model(model, spec, store)
    if loaded is None:
        loaded = _train_final_model(model, spec, data, store, loss_fn)
    return model, _trained_checkpoints(spec, loaded)


def _freeze(model: nn.Module, spec: TaskSpec) -> None:
    """Parameters outside `model.attributed` stop requiring gradients (training leaves them alone)."""
    keep = set(attributed_names(model, spec.model.attributed))
    for name, p in model.named_parameters():
        p.requires_grad_(name in keep)


def _split_parameters(model: nn.Module, spec: TaskSpec, checkpoints: list[Checkpoint]
                      ) -> tuple[Tensors, Tensors, tuple[Checkpoint, ...]]:
    """(attributed params, buffers + frozen params, checkpoints restricted to the attributed ones)."""
    names = attributed_names(model, spec.model.attributed)
    params = {k: v.detach() for k, v in model.named_parameters() if k in set(names)}
    frozen = {k: v.detach() for k, v in model.named_parameters() if k not in params}
    buffers = {k: v.detach() for k, v in model.named_buffers()} | frozen
    kept = []
    for c in checkpoints:
        missing = [k for k in names if k not in c.params]
        if missing:
            raise TdabenchError(f"checkpoint of epoch {c.epoch} lacks parameter '{missing[0]}'")
        kept.append(Checkpoint(c.epoch, {k: c.params[k].to(params[k].dtype) for k in names}, c.lr))
    return params, buffers, tuple(kept)


def build_context(spec: TaskSpec, cache_dir: Path | None = None, target: str | None = None,
                  data: Dataset | None = None, *, final_model: nn.Module | None = None,
                  loss_fn: OutputFn | None = None, init_model: Callable[[], nn.Module] | None = None
                  ) -> TaskContext:
    """Load the data, get the final model (the user's, or trained from the spec and cached) and
    assemble the context. `final_model`, `loss_fn`, `init_model`: what the Python API was given."""
    dtype = getattr(torch, spec.dtype)
    data = data or load_task_data(spec, cache_dir)
    spec = with_content(spec, data, [f for f in (loss_fn, init_model) if f is not None], final_model)
    if init_model is None and spec.model.kind != "module":
        init_model = lambda: model_for_data(spec.model, data, dtype)  # noqa: E731
    loss_fn = loss_fn or per_example_loss(spec.objective)
    target = target or spec.target
    model, checkpoints = _final_model(spec, data, cache_dir, init_model, final_model, loss_fn, target)
    metrics = {"train": evaluate(model, data.train, spec.objective, loss_fn),
               "test": evaluate(model, data.test, spec.objective, loss_fn)}
    params, buffers, saved = _split_parameters(model, spec, checkpoints)
    target_fn, probe, interaction = _target_parts(target, spec, model, params, buffers, data, loss_fn)
    return TaskContext(spec, model, params, buffers, data, metrics, target, target_fn, loss_fn, saved,
                       cache_dir, probe, init_model, interaction)
