"""Units as tasks of a Ray cluster: an existing one (`address`) or a local instance started here.

The unit function is put once into Ray's object store; each item becomes one task that needs
`threads` CPUs and runs the function with `threads` torch threads and the driver's TDABENCH_*
environment variables. Tasks are spread over the nodes; a task whose worker process dies is run
again (up to `max_retries` times) and only its one result comes back, so the driver, which alone
writes the store, writes each unit once. An exception raised by the unit itself is not retried: it
is raised in the driver as it is. `ray` is imported only when a RayExecutor starts.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Sequence, TypeVar

from tdabench.errors import TdabenchError
from tdabench.execution.base import Executor, Placement, check_count, torch_threads

T = TypeVar("T")
R = TypeVar("R")

ENV_PREFIX = "TDABENCH_"  # the driver's variables with this prefix are set in every task
CONNECT_TIMEOUT_S = 5.0  # a cluster address that does not answer within this is an error


def import_ray() -> Any:
    """The `ray` module, or a one-line TdabenchError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise TdabenchError("--executor ray needs the `ray` package: pip install 'tdabench[distributed]' "
                            "(`make setup` installs it)") from None
    return ray


def check_reachable(address: str) -> None:
    """A 'host:port' or 'ray://host:port' address must accept a TCP connection ('auto' is not checked):
    ray.init would otherwise wait minutes for an absent cluster."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise TdabenchError(f"Ray address '{address}' is not of the form host:port (or ray://host:port, auto)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise TdabenchError(f"cannot reach a Ray cluster at {address} ({err.strerror or err}); start one with "
                            f"`ray start --head`, or leave out --ray-address to start a local instance") from None


def run_unit(fn: Callable[[T], R], item: T, threads: int, env: dict[str, str]) -> tuple[R, Placement]:
    """In a Ray worker: fn(item) with `threads` torch threads and `env` set (both restored after),
    and where it ran."""
    import ray

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with torch_threads(threads):
            start = time.perf_counter()
            result = fn(item)
            seconds = time.perf_counter() - start
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return result, Placement(ray.get_runtime_context().get_node_id(), os.getpid(), seconds)


@dataclass
class RayExecutor(Executor):
    """Each unit as a Ray task on the cluster at `address` (None: a local instance of `num_cpus`
    CPUs, default every core), `threads` torch threads and CPUs per task, a task whose worker dies
    retried up to `max_retries` times. If this process is already connected to Ray, that connection
    is used (and left open)."""

    address: str | None = None
    num_cpus: int | None = None
    threads: int = 1
    max_retries: int = 3
    placements: list[Placement] = field(default_factory=list, init=False, repr=False)
    _connected_here: bool = field(default=False, init=False, repr=False)
    name: ClassVar[str] = "ray"
    in_process: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_count("torch threads per unit", self.threads, optional=False)
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise TdabenchError(f"max_retries must be a non-negative integer, got {self.max_retries!r}")
        if self.num_cpus is not None:
            check_count("num_cpus", self.num_cpus, optional=False)
            if self.address is not None:
                raise TdabenchError("num_cpus sizes a local Ray instance; a cluster at an address has its own")

    def start(self) -> RayExecutor:
        if self.address is not None:
            check_reachable(self.address)
        ray = import_ray()
        if ray.is_initialized():
            return self
        try:
            ray.init(address=self.address or "local",  # "local": a new instance, even where `ray start` ran
                     num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False)
        except ConnectionError as err:
            raise TdabenchError(f"cannot connect to the Ray cluster at {self.address}: {err}") from None
        self._connected_here = True
        return self

    def close(self) -> None:
        """Disconnect (and stop a local instance) if `start` connected."""
        if self._connected_here:
            import_ray().shutdown()
            self._connected_here = False

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        self.start()
        ray = import_ray()
        task = ray.remote(run_unit).options(num_cpus=self.threads, max_retries=self.max_retries,
                                            retry_exceptions=False, scheduling_strategy="SPREAD")
        fn_ref = ray.put(fn)  # serialised once, fetched by each worker
        env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
        pending = {task.remote(fn_ref, item, self.threads, env): i for i, item in enumerate(items)}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(ready[0])
                result, placement = _get(ray, ready[0])
                self.placements.append(placement)
                yield i, result
        finally:
            for ref in pending:  # an error or an interrupt: the rest is not wanted
                ray.cancel(ref)


def _get(ray: Any, ref: Any) -> Any:
    """ray.get, raising a unit's own exception as it is (not wrapped in RayTaskError)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from None
        raise
