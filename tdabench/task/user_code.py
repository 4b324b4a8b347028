"""The user's code, reached only through the 'package.module:function' addresses a spec names.

Nothing else in a spec can run code: paths are read as data (safetensors, CSV, Arrow files), and
weights never go through pickle (`torch.load(weights_only=True)` for .pt/.pth).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from tdabench.errors import TdabenchError


def load_object(address: str, what: str) -> Any:
    """The object at 'package.module:function'; `what` (e.g. "model.factory") names it in errors."""
    module_name, _, attr = address.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise TdabenchError(f"{what} '{address}': cannot import module '{module_name}' ({err}); install it "
                            f"or put its folder on PYTHONPATH") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TdabenchError(f"{what} '{address}': module '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TdabenchError(f"{what} '{address}' is not callable")
    return obj


def call_user(fn: Any, what: str, *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)`, its failure reported in one line naming `what`."""
    try:
        return fn(*args, **kwargs)
    except TdabenchError:
        raise
    except Exception as err:
        raise TdabenchError(f"{what} raised {type(err).__name__}: {err}") from None


def source_file(obj: Any) -> Path | None:
    """The file that defines `obj` (a function or class; for a wrapper made with functools.wraps,
    the wrapped function's), when there is one."""
    try:
        path = inspect.getsourcefile(inspect.unwrap(obj))
    except (TypeError, ValueError):
        return None
    return Path(path) if path else None


def source_text(obj: Any) -> str | None:
    """The source code of `obj` (unwrapped like `source_file`): found through linecache too, so also
    for a function defined in a notebook cell, whose file does not exist; None when unavailable."""
    try:
        return inspect.getsource(inspect.unwrap(obj))
    except (OSError, TypeError, ValueError):
        return None
