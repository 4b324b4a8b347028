"""Progress bars for long work deep inside a computation, switched on by whoever runs it.

Inner loops (the final model's training, CG iterations, LiSSA steps, Hessian columns, Lanczos steps)
open a bar with `bar(...)`. It is shown only inside `with shown(True):`, which `tdabench compare`
and the leaderboard suite enter unless `--no-progress` is given, so library use and the test suite
stay quiet. A bar appears only after `DELAY_S` seconds, so short steps print nothing.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Iterator

from tqdm.auto import tqdm

DELAY_S = 3.0  # seconds before a bar is drawn: only steps longer than a few seconds show one

_SHOWN: contextvars.ContextVar[bool] = contextvars.ContextVar("tdabench_progress_shown", default=False)


@contextmanager
def shown(flag: bool) -> Iterator[None]:
    """Within the block, `bar` draws its bars when `flag` is true (and never when it is false)."""
    token = _SHOWN.set(bool(flag))
    try:
        yield
    finally:
        _SHOWN.reset(token)


def is_shown() -> bool:
    return _SHOWN.get()


def bar(total: int | None, desc: str, unit: str = "it") -> tqdm:
    """A tqdm bar over `total` units (None: unknown), disabled unless inside `shown(True)`; use it as
    a context manager and call `.update()` per unit. It disappears when closed (leave=False)."""
    return tqdm(total=total, desc=desc, unit=unit, leave=False, delay=DELAY_S, disable=not _SHOWN.get())
