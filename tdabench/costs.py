"""Measuring the cost of a piece of work: wall seconds and peak resident memory.

Peak memory is sampled from /proc/self/statm by a background thread every few milliseconds (torch's
allocations are invisible to tracemalloc); it reports the peak resident set size of the process
during the work, in MiB. On systems without /proc it is None.
"""

from __future__ import annotations

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


@contextmanager
def measure(interval: float = 0.005) -> Iterator[Cost]:
    """`with measure() as cost: ...` fills cost.seconds and cost.peak_mem_mb when the block ends."""
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
