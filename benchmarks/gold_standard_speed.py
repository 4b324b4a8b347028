"""Speed of the vectorised gold standard against the plain sequential loop, in one process.

Both compute one seed of paired further training on the same task, evaluated instances and horizons;
the script reports wall seconds for each, the speed-up, and the largest difference between their
results (they must agree). Throughput: a copy-step costs ≈ 6 × batch × n_params flop (forward,
and backward to activations and to weights); `gflops` is that count over the vectorised time, and
`fraction_of_peak` divides it by `peak_gflops`, the best 2048² `mm` rate in the task's dtype measured
in the same run (before and after the gold standard, best of both). Usage:

    .venv/bin/python benchmarks/gold_standard_speed.py [--task breast-cancer-mlp] [--n-train 100]
        [--horizons 1,2,5,10,20,50] [--device cpu|cuda[:k]] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tdabench.task import build_context, find_spec
from tdabench.task.device import context_on, device_name, device_suffix, resolve_device
from tdabench.truths.further import config_from_spec, paired_differences, paired_differences_sequential


PEAK_SIZE = 2048


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(dtype: torch.dtype, device: torch.device, repeats: int = 5) -> float:
    """Best rate of one PEAK_SIZE² matrix product in `dtype` on `device`, GFLOP/s."""
    a = torch.randn(PEAK_SIZE, PEAK_SIZE, dtype=dtype, device=device)
    b = torch.randn(PEAK_SIZE, PEAK_SIZE, dtype=dtype, device=device)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * PEAK_SIZE**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="breast-cancer-mlp")
    parser.add_argument("--n-train", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--horizons", default=None, help="comma-separated; default: the task's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (default: cuda when present), cpu or cuda[:k]")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: benchmarks/results/gold_standard_speed[_cuda].json")
    args = parser.parse_args()
    device = resolve_device(args.device)
    out = args.out or Path("benchmarks/results/gold_standard_speed"
                           f"{device_suffix(device)}.json")
    spec = find_spec(args.task)
    ctx = context_on(build_context(spec, Path(tempfile.mkdtemp())), device)
    horizons = tuple(int(h) for h in args.horizons.split(",")) if args.horizons else None
    cfg = config_from_spec(spec.gold_standard, len(ctx.train), len(ctx.test), seeds=1, horizons=horizons,
                           n_train_evaluated=args.n_train, n_test_evaluated=args.n_test)
    peak_before = matmul_peak_gflops(ctx.dtype, device)
    start = time.perf_counter()
    fast, _ = paired_differences(ctx, cfg, args.seed)
    vectorised_s = time.perf_counter() - start
    peak = max(peak_before, matmul_peak_gflops(ctx.dtype, device))
    gflop = 6 * cfg.recipe.batch_size * ctx.n_params * (len(cfg.train_idx) + 1) * cfg.steps[-1] / 1e9
    start = time.perf_counter()
    slow, _ = paired_differences_sequential(ctx, cfg, args.seed)
    sequential_s = time.perf_counter() - start
    report = {
        "task": spec.name, "spec_hash": spec.spec_hash, "n_train_evaluated": len(cfg.train_idx),
        "n_test": len(cfg.test_idx), "horizons": list(cfg.horizons), "horizon_unit": cfg.horizon_unit,
        "steps": cfg.steps[-1], "copies": len(cfg.train_idx) + 1,
        "vectorised_s": round(vectorised_s, 2), "sequential_s": round(sequential_s, 2),
        "speedup": round(sequential_s / vectorised_s, 2), "gflop": round(gflop, 1),
        "gflops": round(gflop / vectorised_s, 1), "peak_gflops": round(peak, 1),
        "fraction_of_peak": round(gflop / vectorised_s / peak, 3), "dtype": spec.dtype,
        "max_abs_difference": float(np.abs(fast - slow).max()), "max_abs_value": float(np.abs(slow).max()),
        "torch_threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "device": str(device),
        "device_name": device_name(device),
        "load_average_1min": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
