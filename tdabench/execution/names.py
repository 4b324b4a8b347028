"""The executors by name (`--executor local|ray`), and opening one for the length of a block."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from tdabench.errors import TdabenchError, UnknownNameError
from tdabench.execution.base import Executor, LocalExecutor
from tdabench.execution.ray_cluster import RayExecutor

LOCAL = LocalExecutor.name
RAY = RayExecutor.name
EXECUTORS: dict[str, type[Executor]] = {LOCAL: LocalExecutor, RAY: RayExecutor}


def check_executor_args(name: str | Executor, address: str | None) -> None:
    """A known executor name (or an Executor), and a Ray address only with the Ray executor."""
    if isinstance(name, Executor):
        if address is not None:
            raise TdabenchError("a Ray address goes with the executor name 'ray', not with an Executor instance")
        return
    if name not in EXECUTORS:
        raise UnknownNameError("executor", name, list(EXECUTORS))
    if address is not None and name != RAY:
        raise TdabenchError(f"--ray-address goes with --executor ray (the executor is '{name}')")


def executor_from_name(name: str, *, address: str | None = None, threads: int | None = None) -> Executor:
    """A new, unstarted executor: `local` (torch `threads` per unit, None: as set) or `ray` (the
    cluster at `address`, None: a local instance; `threads` per task, None: 1)."""
    check_executor_args(name, address)
    if name == RAY:
        return RayExecutor(address, threads=1 if threads is None else threads)
    return LocalExecutor(threads)


@contextmanager
def open_executor(executor: str | Executor, address: str | None = None,
                  threads: int | None = None) -> Iterator[Executor]:
    """Within the block, a started executor: one made by name (closed after the block), or
    `executor` itself when it is an Executor (its owner closes it)."""
    if isinstance(executor, Executor):
        yield executor.start()
        return
    with executor_from_name(executor, address=address, threads=threads) as started:
        yield started
