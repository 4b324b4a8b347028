"""The devices the device-parametrised tests run on: the CPU always, CUDA where this machine has it.

A CUDA case is never dropped: without CUDA it is listed and skipped with `NO_CUDA` as its reason,
and the session's summary line counts those skips (conftest.py, `pytest_terminal_summary`).
"""

from __future__ import annotations

import pytest
import torch

NO_CUDA = "no CUDA device on this machine: the CUDA case runs where one is present"
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA))]
