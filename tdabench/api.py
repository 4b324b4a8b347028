"""The Python entry points: build a task from your own model and data, then compare estimators.

    import tdabench
    task = tdabench.task_from_module("my-model", model=net, train=(x_train, y_train),
                                     test=(x_test, y_test), further_training={"lr": 0.05})
    results = tdabench.compare(task, estimators=["grad-dot", "if-explicit"], out="runs/mine")

`model`: the final model (an `nn.Module` instance with its trained weights, used as it is), and/or
`factory` (a callable returning a freshly initialised model: retraining starts from it, and without
`model` tdabench trains it with `training`). Data: `(x, y)` tensors or arrays, a
`torch.utils.data.Dataset` of `(x, y)` items, or a Hugging Face `datasets.Dataset` (`features`,
`label` columns). `loss`: 'cross-entropy', 'squared' or a callable `loss(outputs, y) -> (B,)`
(per example, no reduction). Every setting is validated like a spec file's, before any training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from tdabench.compare import CompareOptions, run_compare
from tdabench.errors import TdabenchError
from tdabench.report.plots import write_results_plots
from tdabench.results import Results, check_writable_folder, write_results
from tdabench.selection import EstimatorRequest, parse_estimators
from tdabench.task.data import Dataset, Split
from tdabench.task.packages import MissingPackageError
from tdabench.task.spec import TaskSpec
from tdabench.task.spec_yaml import parse_spec
from tdabench.task.user_task import UserTask

DataLike = Any  # (x, y) | torch.utils.data.Dataset | datasets.Dataset


def _pair(data: DataLike, features: Sequence[str], label: str, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) tensors of any accepted data form."""
    if hasattr(data, "column_names"):  # a Hugging Face datasets.Dataset
        cols = list(features) or [c for c in data.column_names if c != label]
        arrays = [np.asarray(data[c]) for c in cols]
        x = arrays[0] if len(arrays) == 1 else np.stack(arrays, axis=1)
        return torch.as_tensor(x), torch.as_tensor(np.asarray(data[label]))
    if isinstance(data, torch.utils.data.Dataset):
        items = [data[i] for i in range(len(data))]  # type: ignore[arg-type]
        xs, ys = zip(*items)
        return torch.stack([torch.as_tensor(x) for x in xs]), torch.stack([torch.as_tensor(y) for y in ys])
    try:
        x, y = data
    except (TypeError, ValueError):
        raise TdabenchError(f"{what}: expected (x, y), a torch Dataset or a datasets.Dataset, got "
                            f"{type(data).__name__}") from None
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x), \
        torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y)


def _split(data: DataLike, features: Sequence[str], label: str, what: str, dtype: torch.dtype,
           classification: bool) -> Split:
    x, y = _pair(data, features, label, what)
    if len(x) != len(y) or len(x) == 0:
        raise TdabenchError(f"{what}: {len(x)} inputs and {len(y)} labels")
    x = x if not x.is_floating_point() else x.to(dtype)
    if classification and (y.is_floating_point() and not torch.equal(y, y.round())):
        raise TdabenchError(f"{what}: classification needs integer class labels")
    return Split(x, y.long() if classification else y.to(dtype))


def _dataset(train: DataLike, test: DataLike, features: Sequence[str], label: str, dtype: torch.dtype,
             classification: bool) -> Dataset:
    tr = _split(train, features, label, "train", dtype, classification)
    te = _split(test, features, label, "test", dtype, classification)
    if tr.x.shape[1:] != te.x.shape[1:]:
        raise TdabenchError(f"train inputs have shape {tuple(tr.x.shape[1:])} per example, test "
                            f"{tuple(te.x.shape[1:])}")
    n_outputs = int(max(tr.y.max(), te.y.max())) + 1 if classification else 1
    vocab = None if tr.x.is_floating_point() else int(max(tr.x.max(), te.x.max())) + 1
    return Dataset(tr, te, n_outputs, classification, vocab)


def _seeded(factory: Callable[[], nn.Module], seed: int, dtype: torch.dtype) -> Callable[[], nn.Module]:
    """`factory` called under `torch.manual_seed(seed)` (global RNG untouched), cast to `dtype`;
    `__wrapped__` is `factory`, so the content hash (task/content.py) reads the factory's code."""
    def build() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = factory()
        if not isinstance(model, nn.Module):
            raise TdabenchError(f"factory returned {type(model).__name__}, not a torch.nn.Module")
        return model.to(dtype)
    build.__wrapped__ = factory  # type: ignore[attr-defined]
    return build


def task_from_module(name: str, *, train: DataLike, test: DataLike, further_training: dict[str, Any],
                     model: nn.Module | None = None, factory: Callable[[], nn.Module] | None = None,
                     loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "cross-entropy",
                     l2: float = 0.0, training: dict[str, Any] | None = None, horizons: Sequence[int] = (1, 2, 5),
                     horizon_unit: str = "epoch", target: str = "loss", attributed: Sequence[str] = (),
                     seeds: int = 3, n_train: int = 100, n_test: int = 50, mode: str = "removal",
                     modality: str = "tabular", dtype: str = "float64", features: Sequence[str] = (),
                     label: str = "label", init_seed: int = 0, version: int = 1,
                     description: str = "") -> UserTask:
    """A task from your model and data; the recipes are spec-file mappings (OptimizerSpec fields:
    optimizer, lr, momentum, weight_decay, batch_size, seed; `training` also epochs and checkpoint_epochs)."""
    if model is None and factory is None:
        raise TdabenchError("give the final model (`model=`) or a `factory` with a `training` recipe")
    if model is None and training is None:
        raise TdabenchError("without the final model (`model=`), tdabench trains one: give a `training` recipe")
    if model is not None and not isinstance(model, nn.Module):
        raise TdabenchError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    custom = callable(loss)
    raw = {"name": name, "version": version, "modality": modality, "description": description,
           "data": {"source": "api:memory", "standardize": False}, "dtype": dtype, "target": target,
           "model": {"kind": "module", "attributed": list(attributed), "init_seed": init_seed},
           "objective": {"loss": "custom" if custom else loss, "l2": l2},
           "gold_standard": {"further_training": dict(further_training), "horizons": list(horizons),
                             "horizon_unit": horizon_unit, "seeds": seeds, "mode": mode,
                             "n_train_evaluated": n_train, "n_test": n_test}}
    if training is not None:
        raw["training"] = dict(training)
    spec: TaskSpec = parse_spec(raw, "tdabench.api.task_from_module")
    torch_dtype = getattr(torch, spec.dtype)
    classification = spec.objective.loss == "cross-entropy" or (custom and not _pair(
        train, features, label, "train")[1].is_floating_point())
    data = _dataset(train, test, features, label, torch_dtype, classification)
    init = _seeded(factory, spec.model.init_seed, torch_dtype) if factory is not None else None
    return UserTask(spec, data, model, loss if custom else None, init)  # type: ignore[arg-type]


def _requests(estimators: Sequence[str] | str | None) -> tuple[EstimatorRequest, ...] | None:
    if estimators is None:
        return None
    text = estimators if isinstance(estimators, str) else ",".join(estimators)
    return tuple(parse_estimators(text))


def compare(task: UserTask | str | Path, *, estimators: Sequence[str] | str | None = None,
            out: str | Path | None = None, metric: str = "pearson", **options: Any) -> Results:
    """Run the comparison (CompareOptions' fields as keyword arguments: seeds, horizons, n_train,
    target, retraining, cache_dir, progress, executor="ray" and ray_address for the work units on a
    Ray cluster, …) and, with `out`, write results.json, results.csv and
    the decay plots there, as `tdabench compare --out` does. `cache_dir` and `out` may be str or
    Path. Returns the Results."""
    if out is not None:
        check_writable_folder(Path(out))
    if options.get("cache_dir") is not None:
        options["cache_dir"] = Path(options["cache_dir"])
    task_arg = task if isinstance(task, UserTask) else str(task)
    results = run_compare(CompareOptions(task=task_arg, estimators=_requests(estimators), **options))
    if out is not None:
        write_results(results, Path(out))
        try:
            write_results_plots(results, metric, Path(out))
        except MissingPackageError:
            pass  # no matplotlib: the results files are written; any other plotting error is raised
    return results
