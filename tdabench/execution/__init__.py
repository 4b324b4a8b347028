"""Where work units run: in this process (`LocalExecutor`) or as tasks of a Ray cluster
(`RayExecutor`), behind one interface (`Executor.map_unordered`).

A unit is a pure function of its settings (task, config, seed), so where it runs changes no
number; the driver alone writes results to the store (tdabench.storage.run_units), so workers need
no shared filesystem. `executor_from_name` builds one by name (`EXECUTORS`); `open_executor` starts
one for the length of a block.
"""

from tdabench.execution.base import Executor, LocalExecutor, Placement
from tdabench.execution.names import EXECUTORS, LOCAL, RAY, check_executor_args, executor_from_name, open_executor
from tdabench.execution.ray_cluster import RayExecutor

__all__ = ["EXECUTORS", "LOCAL", "RAY", "Executor", "LocalExecutor", "Placement", "RayExecutor",
           "check_executor_args", "executor_from_name", "open_executor"]
