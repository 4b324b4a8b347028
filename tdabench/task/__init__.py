"""Tasks: spec files, data, models, objectives, final-model training and the task context."""

from tdabench.task.catalog import DEFAULT_TASK, available_tasks, find_spec
from tdabench.task.context import TaskContext, build_context
from tdabench.task.spec import TaskSpec
from tdabench.task.spec_yaml import load_spec, parse_spec

__all__ = ["DEFAULT_TASK", "TaskContext", "TaskSpec", "available_tasks", "build_context", "find_spec",
           "load_spec", "parse_spec"]
