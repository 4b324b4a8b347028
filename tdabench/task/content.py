"""Content digests of the user's part of a task: data, weights, pretrained folder and code.

A user task's cache key must change when the user's data or weights change under the same spec, so
`with_content` puts a sha256 over all of them into `TaskSpec.content_digest`, which enters
`spec_hash` (and so every cache key: final model, gold standard, retraining). Built-in tasks are
determined by their spec and get no digest (their hashes stay as they were).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from tdabench.task.data import Dataset
from tdabench.task.spec import TaskSpec
from tdabench.task.user_code import load_object, source_file, source_text

_CHUNK = 1 << 20


def _update_tensor(digest: Any, tensor: torch.Tensor) -> None:
    digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().data)


def _update_file(digest: Any, path: Path) -> None:
    digest.update(path.name.encode())
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)


def _files(spec: TaskSpec) -> list[Path]:
    """The weights, checkpoint and pretrained-folder files, and the code files of the addresses."""
    paths = [Path(p) for p in (spec.model.weights, *(c.weights for c in spec.model.checkpoints)) if p]
    if spec.model.pretrained:
        paths += sorted(p for p in Path(spec.model.pretrained).rglob("*") if p.is_file())
    return [p for p in paths if p.is_file()]


def _code_files(objects: Iterable[Any]) -> list[Path]:
    """The files that define `objects` (a wrapped factory's own file, not its wrapper's)."""
    found = [source_file(obj) for obj in objects]
    return sorted({p for p in found if p is not None and p.is_file()})


def _code_texts(objects: Iterable[Any]) -> list[str]:
    """The source code of the objects that have no file (defined in a notebook cell)."""
    texts = []
    for obj in objects:
        path = source_file(obj)
        if path is None or not path.is_file():
            texts.append(source_text(obj) or "")
    return texts


def content_digest(spec: TaskSpec, data: Dataset, code: Iterable[Callable[..., Any]] = (),
                   model: nn.Module | None = None) -> str:
    """sha256 over the data tensors, the files of `spec`, the source files of `code` (the factory,
    the loader, a custom loss; the wrapped function for a wrapper, the source text for code without
    a file) and the tensors of a model given to the Python API."""
    digest = hashlib.sha256()
    for split in (data.train, data.test):
        _update_tensor(digest, split.x)
        _update_tensor(digest, split.y)
    code = list(code)
    for path in [*_files(spec), *_code_files(code)]:
        _update_file(digest, path)
    for text in _code_texts(code):
        digest.update(text.encode())
    if model is not None:
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            _update_tensor(digest, tensor)
    return f"sha256:{digest.hexdigest()}"


def spec_code(spec: TaskSpec) -> list[Callable[..., Any]]:
    """The user functions a spec names: its model factory and its python: data loader."""
    code = [load_object(spec.model.factory, "model.factory")] if spec.model.factory else []
    if spec.data.provider == "python":
        code.append(load_object(spec.data.location, "data.source"))
    return code


def with_content(spec: TaskSpec, data: Dataset, code: Iterable[Callable[..., Any]] = (),
                 model: nn.Module | None = None) -> TaskSpec:
    """`spec` with its `content_digest` set (user tasks only; built-ins are returned unchanged);
    `code` and `model`: what the Python API was given besides the spec's own addresses."""
    if not spec.is_user_task:
        return spec
    code = [*spec_code(spec), *code]
    return dataclasses.replace(spec, content_digest=content_digest(spec, data, code, model))
