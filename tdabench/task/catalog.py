"""Finding task specs: the built-in `tasks/` folder, task plugins (the entry-point group
`tdabench.tasks`), folders on $TDABENCH_TASKS_PATH, or a file path.

A task plugin is an installed distribution whose pyproject.toml declares::

    [project.entry-points."tdabench.tasks"]
    my-tasks = "my_package:TASKS_DIR"

where the object is a folder of `*.yaml` specs (a path, or a callable returning one); the
package ships the specs and the code their `model.factory` / `python:` sources name. Names are
unique: the first place in the order above wins, and `tdabench list` says where each comes from.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from tdabench.errors import TdabenchError, UnknownNameError
from tdabench.task.spec import TaskSpec
from tdabench.task.spec_yaml import load_spec, spec_variants
from tdabench.task.user_code import call_user

DEFAULT_TASK = "breast-cancer-mlp"
BUILTIN_TASKS_DIR = Path(__file__).resolve().parents[2] / "tasks"
TASKS_GROUP = "tdabench.tasks"


@dataclass(frozen=True)
class TaskFolder:
    """A folder of specs and where it comes from: 'built-in', 'plugin <distribution> <version>'
    or '$TDABENCH_TASKS_PATH'."""

    path: Path
    origin: str


def _plugin_folders() -> list[TaskFolder]:
    folders = []
    for ep in sorted(importlib.metadata.entry_points(group=TASKS_GROUP), key=lambda e: e.name):
        where = f"task plugin '{ep.name}' ({ep.value})"
        obj = _entry_object(ep.value, where)
        folder = Path(call_user(obj, where) if callable(obj) else obj)
        if not folder.is_dir():
            raise TdabenchError(f"{where}: {folder} is not a folder of task specs")
        dist = ep.dist
        origin = f"plugin {dist.name} {dist.version}" if dist is not None else f"plugin {ep.value}"
        folders.append(TaskFolder(folder, origin))
    return folders


def _entry_object(address: str, where: str) -> object:
    """The entry point's object: a folder path, or a callable that returns one."""
    module_name, _, attr = address.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise TdabenchError(f"{where}: cannot load it ({err})") from None
    if not isinstance(obj, (str, Path)) and not callable(obj):
        raise TdabenchError(f"{where}: expected a folder path or a callable returning one, got {type(obj).__name__}")
    return obj


def task_folders() -> list[TaskFolder]:
    """Built-in folder, plugin folders, then $TDABENCH_TASKS_PATH, in search order."""
    extra = [TaskFolder(Path(p), "$TDABENCH_TASKS_PATH")
             for p in os.environ.get("TDABENCH_TASKS_PATH", "").split(os.pathsep) if p]
    return [TaskFolder(BUILTIN_TASKS_DIR, "built-in"), *_plugin_folders(), *extra]


def task_dirs() -> list[Path]:
    return [f.path for f in task_folders()]


def task_origins() -> dict[str, tuple[Path, str]]:
    """Task name → (spec file, origin), in search order (a later folder does not shadow an earlier one)."""
    found: dict[str, tuple[Path, str]] = {}
    for folder in task_folders():
        for path in sorted(folder.path.glob("*.yaml")):
            found.setdefault(path.stem, (path, folder.origin))
    return found


def available_tasks() -> dict[str, Path]:
    """Task name → spec file, in search order."""
    return {name: path for name, (path, _) in task_origins().items()}


def task_variants(path: Path) -> list[str]:
    """The variant names a spec file defines (e.g. ['small'])."""
    return sorted(spec_variants(yaml.safe_load(path.read_text())))


def find_spec(name_or_path: str) -> TaskSpec:
    """Load a task by name (`name` or `name@variant`), or from a path ending in .yaml/.yml."""
    name, _, variant = name_or_path.partition("@")
    if name.endswith((".yaml", ".yml")):
        return load_spec(name, variant or None)
    tasks = available_tasks()
    if name not in tasks:
        raise UnknownNameError("task", name_or_path, list(tasks))
    return load_spec(tasks[name], variant or None)
