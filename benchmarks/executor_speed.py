"""Wall time of the same work with the local executor and with Ray, and the cost Ray adds per unit.

Three measurements on this machine, Ray as one local instance of `--cpus` CPUs (1 torch thread per
unit), the local executor with this process's torch threads:

- `per_unit`: `--units` trivial units (a 3-element tensor back) through each executor, after a
  warm-up; Ray's overhead per unit = (Ray wall − local wall) / units (units in flight together),
  and its latency: one unit at a time, 20 times. Also Ray's start-up and shutdown seconds (paid
  once per process).
- `compare`: one `tdabench compare` (gold-standard seeds + LOO seeds as units, estimators here).
- `suite`: `tdabench leaderboard --suite` with two entries (each entry one Ray task).
- `memory`: a fresh Ray worker's peak resident memory once it holds the task context, and after
  one gold-standard seed of the comparison's settings (the first task the instance runs).

Each run starts from a copy of a cache holding only the final models, so the gold standards and
retraining are computed every time and the final models' training is not timed. Usage:

    .venv/bin/python benchmarks/executor_speed.py [--units 200] [--cpus 2] [--seeds 4]
        [--out benchmarks/results/executor_speed.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from tdabench.cli import main as cli
from tdabench.execution import Executor, LocalExecutor, RayExecutor
from tdabench.task import build_context, find_spec
from tdabench.truths.further import GoldSeed, auto_chunk_size, config_from_spec

TASKS = ("breast-cancer-mlp", "diabetes-mlp")
ESTIMATORS = "grad-dot"  # cheap, so the timed work is the units (if-explicit's Hessian would dominate)


def trivial_unit(i: int) -> torch.Tensor:
    return torch.full((3,), float(i))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@dataclass(frozen=True)
class PeakMemory:
    """A unit: the worker's peak resident MB before (context received) and after one seed of `gold`."""

    gold: GoldSeed

    def __call__(self, seed: int) -> tuple[float, float]:
        before = peak_rss_mb()
        self.gold(seed, lambda: None)
        return before, peak_rss_mb()


def gold_seed_unit(warm: Path, n_train: int, n_test: int) -> GoldSeed:
    ctx = build_context(find_spec(TASKS[0]), warm)
    cfg = config_from_spec(ctx.spec.gold_standard, len(ctx.train), len(ctx.test), seeds=1,
                           n_train_evaluated=n_train, n_test_evaluated=n_test)
    return GoldSeed(ctx, replace(cfg, chunk_size=auto_chunk_size(ctx, cfg.recipe, len(cfg.train_idx))))


def per_unit(executor: Executor, units: int) -> float:
    """Wall seconds of `units` trivial units through `executor` (after one warm-up round)."""
    list(executor.map_unordered(trivial_unit, range(8)))
    start = time.perf_counter()
    list(executor.map_unordered(trivial_unit, range(units)))
    return time.perf_counter() - start


def latency(executor: Executor, repeats: int = 20) -> float:
    """Mean wall seconds of one trivial unit submitted alone and waited for."""
    start = time.perf_counter()
    for i in range(repeats):
        list(executor.map_unordered(trivial_unit, [i]))
    return (time.perf_counter() - start) / repeats


def timed_cli(args: list[str]) -> float:
    """Wall seconds of one `tdabench ...` command run in this process (its output swallowed)."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli(args)
    assert code == 0, f"tdabench {' '.join(args)} exited with {code}"
    loads.append(round(os.getloadavg()[0], 2))
    return time.perf_counter() - start


loads: list[float] = []  # the machine's 1-minute load average after each timed command (it is shared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--seeds", type=int, default=4, help="gold-standard seeds per comparison")
    parser.add_argument("--n-train", type=int, default=20)
    parser.add_argument("--n-test", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/executor_speed.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tdabench-executor-speed-"))
    try:
        warm = work / "warm-cache"
        for task in TASKS:  # the final models, trained once and copied into every run's cache
            build_context(find_spec(task), warm)

        start = time.perf_counter()
        ray_executor = RayExecutor(num_cpus=args.cpus).start()
        ray_start_s = time.perf_counter() - start
        unit = gold_seed_unit(warm, args.n_train, args.n_test)
        (_, (context_mb, seed_mb)), = RayExecutor().map_unordered(PeakMemory(unit), [0])
        memory: dict[str, Any] = {"worker_with_context_mb": round(context_mb), "after_one_gold_seed_mb": round(seed_mb),
                                  "chunk_size": unit.cfg.chunk_size, "n_params": unit.ctx.n_params}
        local_units_s, ray_units_s = per_unit(LocalExecutor(), args.units), per_unit(RayExecutor(), args.units)
        local_latency_s, ray_latency_s = latency(LocalExecutor()), latency(RayExecutor())

        common = ["--no-progress", "--estimators", ESTIMATORS, "--seeds", str(args.seeds),
                  "--n-train", str(args.n_train), "--n-test", str(args.n_test), "--retraining", "loo",
                  "--retraining-seeds", "2"]
        suite = work / "suite.yaml"
        suite.write_text("tasks:\n" + "".join(
            f"  - {{task: {t}, seeds: {args.seeds}, estimators: [{ESTIMATORS.replace(',', ', ')}], "
            f"n_train: {args.n_train}, n_test: {args.n_test}, retraining: [loo]}}\n" for t in TASKS))
        walls: dict[str, dict[str, float]] = {"compare": {}, "suite": {}}
        for name in ("local", "ray"):
            cache = work / f"cache-compare-{name}"
            shutil.copytree(warm, cache)
            walls["compare"][name] = timed_cli(["compare", "--task", TASKS[0], "--out", str(work / f"cmp-{name}"),
                                                "--cache-dir", str(cache), "--executor", name, *common])
            cache = work / f"cache-suite-{name}"
            shutil.copytree(warm, cache)
            walls["suite"][name] = timed_cli(["leaderboard", "--suite", str(suite), "--out", str(work / f"lb-{name}"),
                                              "--cache-dir", str(cache), "--executor", name, "--no-progress"])
        start = time.perf_counter()
        ray_executor.close()
        ray_stop_s = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "torch_threads_local": torch.get_num_threads(), "ray_cpus": args.cpus, "torch": torch.__version__},
        "per_unit": {"units": args.units, "local_s": round(local_units_s, 4), "ray_s": round(ray_units_s, 4),
                     "ray_overhead_ms_per_unit": round(1000 * (ray_units_s - local_units_s) / args.units, 3),
                     "ray_latency_ms": round(1000 * (ray_latency_s - local_latency_s), 2),
                     "ray_start_s": round(ray_start_s, 2), "ray_shutdown_s": round(ray_stop_s, 2)},
        "compare": {"task": TASKS[0], "seeds": args.seeds, "retraining": "loo (2 seeds)", "estimators": ESTIMATORS,
                    "n_train": args.n_train, "n_test": args.n_test,
                    **{f"{k}_s": round(v, 2) for k, v in walls["compare"].items()},
                    "speedup": round(walls["compare"]["local"] / walls["compare"]["ray"], 2)},
        "suite": {"tasks": list(TASKS), "seeds": args.seeds, "retraining": "loo (3 seeds)", "estimators": ESTIMATORS,
                  **{f"{k}_s": round(v, 2) for k, v in walls["suite"].items()},
                  "speedup": round(walls["suite"]["local"] / walls["suite"]["ray"], 2)},
        "memory": memory,
        "load_average_after_each_command": {"order": "compare local, suite local, compare ray, suite ray",
                                            "values": loads},
        "note": "Ray's start-up is paid once per process and not in the compare/suite figures; the suite's "
                "entries run as one Ray task each, the comparison's gold-standard and LOO seeds as one task each.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
