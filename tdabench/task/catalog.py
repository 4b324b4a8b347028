"""Finding task specs: the built-in `tasks/` folder, task plugins (the entry-point group
`tdabench.tasks`), folders on $TDABENCH_TASKS_PATH, or a file path.

A task plugin is an installed distribution whose pyproject.toml declares::

    [project.entry-points."tdabench.tasks"]
    my-tasks = "my_package:TASKS_DIR"

where the object is a folder of `*.yaml` specs (a path, or a callable returning one); the
package ships the specs and the code their `model.factory` / `python:` sources name. Names are
unique: the first place in the order above wins, and `tdabench list` says where each comes from.
A plugin whose folder cannot be had (its module fails to import, …) is listed as invalid with why;
other tasks are unaffected, and asking for an unknown task names the broken plugins.
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


@dataclass(frozen=True)
class BrokenTaskPlugin:
    """A task plugin whose folder of specs cannot be had (its module fails to import, the object
    is missing or no folder): its entry point's name and address, origin and why. It is listed as
    invalid; other tasks are unaffected."""

    name: str
    address: str
    origin: str
    error: str


def _plugin_origin(ep: importlib.metadata.EntryPoint) -> str:
    dist = ep.dist
    return f"plugin {dist.name} {dist.version}" if dist is not None else f"plugin {ep.value}"


def _plugin_folder(ep: importlib.metadata.EntryPoint) -> TaskFolder:
    """The plugin's folder of specs; TdabenchError (one line) when it cannot be had."""
    where = f"task plugin '{ep.name}' ({ep.value})"
    obj = _entry_object(ep.value, where)
    folder = call_user(obj, where) if callable(obj) else obj
    if not isinstance(folder, (str, Path)):
        raise TdabenchError(f"{where}: returned {type(folder).__name__}, not a folder path")
    if not Path(folder).is_dir():
        raise TdabenchError(f"{where}: {folder} is not a folder of task specs")
    return TaskFolder(Path(folder), _plugin_origin(ep))


def _plugins() -> tuple[list[TaskFolder], list[BrokenTaskPlugin]]:
    """The task plugins' folders, and the plugins that are broken, by entry-point name."""
    folders, broken = [], []
    for ep in sorted(importlib.metadata.entry_points(group=TASKS_GROUP), key=lambda e: e.name):
        try:
            folders.append(_plugin_folder(ep))
        except TdabenchError as err:
            broken.append(BrokenTaskPlugin(ep.name, ep.value, _plugin_origin(ep), str(err)))
    return folders, broken


def broken_task_plugins() -> list[BrokenTaskPlugin]:
    """The task plugins whose specs cannot be found (`tdabench list` shows them as invalid)."""
    return _plugins()[1]


def _entry_object(address: str, where: str) -> object:
    """The entry point's object: a folder path, or a callable that returns one. Whatever importing
    the plugin's module raises becomes a one-line TdabenchError."""
    module_name, _, attr = address.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as err:  # the plugin's own code ran: any error, reported in one line
        raise TdabenchError(f"{where}: cannot load it ({type(err).__name__}: {' '.join(str(err).split())})") from None
    if not isinstance(obj, (str, Path)) and not callable(obj):
        raise TdabenchError(f"{where}: expected a folder path or a callable returning one, got {type(obj).__name__}")
    return obj


def task_folders() -> list[TaskFolder]:
    """Built-in folder, plugin folders, then $TDABENCH_TASKS_PATH, in search order."""
    extra = [TaskFolder(Path(p), "$TDABENCH_TASKS_PATH")
             for p in os.environ.get("TDABENCH_TASKS_PATH", "").split(os.pathsep) if p]
    return [TaskFolder(BUILTIN_TASKS_DIR, "built-in"), *_plugins()[0], *extra]


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
        raise _unknown_task(name_or_path, list(tasks))
    return load_spec(tasks[name], variant or None)


def _unknown_task(name: str, valid: list[str]) -> UnknownNameError:
    """The unknown-task error; it also names the broken task plugins (the task may be one of theirs)."""
    err = UnknownNameError("task", name, valid)
    notes = [f"{b.error}, so its tasks are unavailable" for b in broken_task_plugins()]
    if notes:
        err.args = (f"{err}; {'; '.join(notes)}",)
    return err
