"""Every speed benchmark on whatever device is present, one after another, each in its own process.

Runs `gold_standard_speed.py` (default task), `derivative_speed.py` (default task) and
`estimator_speed.py` on each of `--tasks` (native estimators against their libraries), all with the
same `--device` (default auto: the first CUDA device when present, else the CPU). Each script
writes its JSON under benchmarks/results/, named by task and by device type (`…_cuda.json` on a
GPU) and recording the device's name, so CPU and GPU figures sit side by side. A script that fails
is reported and the others still run; the exit code is 1 if any failed. Usage (= `make benchmark`):

    .venv/bin/python benchmarks/speed.py [--device auto|cpu|cuda[:k]]
        [--tasks breast-cancer-mlp,mnist-cnn,rt-minilm]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def commands(device: str, tasks: list[str]) -> list[list[str]]:
    """The benchmark command lines, in the order they run."""
    run = [sys.executable]
    return ([run + [str(HERE / "gold_standard_speed.py"), "--device", device],
             run + [str(HERE / "derivative_speed.py"), "--device", device]]
            + [run + [str(HERE / "estimator_speed.py"), "--device", device, "--task", task] for task in tasks])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (default: cuda when present), cpu or cuda[:k]")
    parser.add_argument("--tasks", default="breast-cancer-mlp,mnist-cnn,rt-minilm",
                        help="tasks of the estimator-vs-library benchmark (comma-separated)")
    args = parser.parse_args()
    failed = []
    for command in commands(args.device, args.tasks.split(",")):
        name = " ".join(Path(command[1]).name if i == 1 else c for i, c in enumerate(command) if i)
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        code = subprocess.call(command, cwd=HERE.parent)
        print(f"== {name}: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print("failed: " + "; ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
