"""On-disk cache: tensors in safetensors, settings in JSON, written atomically.

An entry is keyed by a hash of its settings, and its `settings.json` is compared with the settings
asked for on every load: an entry made with other settings raises CacheMismatchError, never reused.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from tdabench.errors import CacheMismatchError


def cache_root() -> Path:
    """$TDABENCH_CACHE, else ~/.cache/tdabench."""
    return Path(os.environ.get("TDABENCH_CACHE", Path.home() / ".cache" / "tdabench"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over `path` (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def check_settings(entry: Path, settings: dict[str, Any]) -> bool:
    """True if `entry` holds settings equal to `settings`; False if it has none yet.

    Raises CacheMismatchError when it holds different ones.
    """
    path = entry / "settings.json"
    if not path.exists():
        return False
    stored = json.loads(path.read_text())
    if stored != json.loads(json.dumps(settings)):
        diff = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
        raise CacheMismatchError(
            f"cache entry {entry} was made with other settings (differing: {', '.join(diff)}); "
            f"delete it or set TDABENCH_CACHE to another folder")
    return True
