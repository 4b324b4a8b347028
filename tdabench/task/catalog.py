"""Finding task specs: the built-in `tasks/` folder, folders on $TDABENCH_TASKS_PATH, or a file path."""

from __future__ import annotations

import os
from pathlib import Path

from tdabench.errors import UnknownNameError
import yaml

from tdabench.task.spec import TaskSpec, load_spec, spec_variants

DEFAULT_TASK = "breast-cancer-mlp"
BUILTIN_TASKS_DIR = Path(__file__).resolve().parents[2] / "tasks"


def task_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("TDABENCH_TASKS_PATH", "").split(os.pathsep) if p]
    return [BUILTIN_TASKS_DIR, *extra]


def available_tasks() -> dict[str, Path]:
    """Task name → spec file, in search order (a later folder does not shadow an earlier one)."""
    found: dict[str, Path] = {}
    for folder in task_dirs():
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


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
