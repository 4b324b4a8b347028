"""The executor interface, and the executor that runs units one after another in this process."""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Sequence, TypeVar

import torch

from tdabench.errors import TdabenchError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Placement:
    """Where one unit ran (`node`: Ray's node id, "local" in this process; `pid`: the process) and the
    seconds its function took there (without scheduling or transfers)."""

    node: str
    pid: int
    seconds: float


def check_count(name: str, value: Any, optional: bool) -> None:
    """`value` is a positive integer (or None where `optional`); TdabenchError naming `name` otherwise."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TdabenchError(f"{name} must be a positive integer, got {value!r}")


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Within the block, torch uses `threads` threads (None: unchanged); restored after."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Executor(ABC):
    """Runs a unit function over items and hands back each result as it finishes.

    `fn` is a pure function of its item (settings and seed travel in `fn` and the item, never in
    global state), so an executor changes no number. `placements` lists where each finished unit ran.
    """

    name: ClassVar[str]
    in_process: ClassVar[bool]  # units run in this process, so they may call back (progress ticks)
    placements: list[Placement]

    def start(self) -> Executor:
        """Acquire what the executor needs (a cluster connection); idempotent. Returns self."""
        return self

    def close(self) -> None:  # noqa: B027 (nothing to release unless an executor says so)
        """Release what `start` acquired."""

    def __enter__(self) -> Executor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        """(i, fn(items[i])) for every item, in the order the units finish. An exception raised by
        `fn` is raised here as it is (no unit after it is handed back)."""


@dataclass
class LocalExecutor(Executor):
    """Each unit in turn, in this process, with `threads` torch threads (None: as set)."""

    threads: int | None = None
    placements: list[Placement] = field(default_factory=list, init=False, repr=False)
    name: ClassVar[str] = "local"
    in_process: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_count("torch threads per unit", self.threads, optional=True)

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        for i, item in enumerate(items):
            with torch_threads(self.threads):
                start = time.perf_counter()
                result = fn(item)
                self.placements.append(Placement("local", os.getpid(), time.perf_counter() - start))
            yield i, result
