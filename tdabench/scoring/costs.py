"""Measuring the cost of a piece of work: wall seconds and peak resident memory.

Peak memory is sampled from /proc/self/statm by a background thread every few milliseconds (torch's
allocations are invisible to tracemalloc); it reports the peak resident set size of the process
during the work, in MiB, after handing memory that earlier work freed back to the OS. On systems
without /proc it is None.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_mib() -> float | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE / 2**20
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Cost:
    seconds: float = 0.0
    peak_mem_mb: float | None = None
    _samples: list[float] = field(default_factory=list, repr=False)


def release_freed_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc malloc_trim), so that the
    resident size before a measurement is not inflated by what an earlier piece of work freed."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@contextmanager
def measure(interval: float = 0.005) -> Iterator[Cost]:
    """`with measure() as cost: ...` fills cost.seconds and cost.peak_mem_mb when the block ends.

    Freed memory is released first, so the peak is that of the process with this work's own
    allocations on top of what is still alive (the data, the model, the gold standard).
    """
    release_freed_memory()
    cost, stop = Cost(), threading.Event()

    def sample() -> None:
        while not stop.is_set():
            value = resident_mib()
            if value is not None:
                cost._samples.append(value)
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    thread.start()
    try:
        yield cost
    finally:
        cost.seconds = time.perf_counter() - start
        stop.set()
        thread.join()
        last = resident_mib()
        samples = cost._samples + ([last] if last is not None else [])
        cost.peak_mem_mb = round(max(samples), 1) if samples else None
