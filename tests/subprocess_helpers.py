"""Running tdabench in a subprocess whose environment is that of a machine that sets no
OPENBLAS_CORETYPE: scipy's bundled OpenBLAS crashes in multi-threaded Cholesky there on these
AVX-512 processors, and a machine that sets the variable would hide it."""

from __future__ import annotations

import os
import subprocess
import sys

HIDING_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def scrubbed_environment(**extra: str) -> dict[str, str]:
    """This process's environment without HIDING_VARIABLES, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in HIDING_VARIABLES}
    return env | extra


def run_python(args: list[str], timeout: float, **extra_env: str) -> subprocess.CompletedProcess:
    """`python ARGS` in the scrubbed environment, output captured as text."""
    return subprocess.run([sys.executable, *args], env=scrubbed_environment(**extra_env), capture_output=True,
                          text=True, timeout=timeout)
