"""Speed of each native estimator against its adapter to a reference library, in one process.

Both members of a pair run on the same final model, test points and training instances, at the
same settings (projection dimension, damping); each is fitted and scored `--repeats` times in
alternation after one warm-up run, and the best wall time of fit + score is reported, with the
agreement of the two score matrices. The final model, data and every estimator live on `--device`
(default auto: CUDA when present). Usage:

    .venv/bin/python benchmarks/estimator_speed.py [--task breast-cancer-mlp] [--n-test 100]
        [--n-train 398] [--repeats 3] [--cg-test-points 10] [--pairs trak,tracin,ekfac,if-cg]
        [--device auto|cpu|cuda[:k]]
        [--out benchmarks/results/estimator_speed_<task>[_cuda].json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from tdabench.scoring.metrics import agreement
from tdabench.registry import make_estimator
from tdabench.task import build_context, find_spec
from tdabench.task.device import context_on, device_name, device_suffix, resolve_device

# (native, params), (adapter, params), most test points; None values are filled from the fitted
# native estimator. dattri solves CG per test batch, vmapping its Hessian-vector products over the
# batch's test points on the whole training set at once: `--cg-test-points` (default 10; mnist-cnn's
# 1,000 images × 10 test points took more than 21 GB, 2 fit in about 4 GB).
PAIRS = [
    (("trak", {"proj_dim": 2048}), ("trak-traker", {"proj_dim": 2048, "damping": None}), None),
    (("tracin", {}), ("tracin-captum", {}), None),
    (("ekfac", {}), ("ekfac-kronfluence", {"damping": None}), None),
    (("if-cg", {}), ("if-dattri", {"damping": None}), "cg"),
]


def timed(name: str, params: dict, ctx, test_idx, train_idx) -> tuple[float, np.ndarray, object]:
    """(wall seconds of fit + score, scores, the fitted estimator); scores come back on the host."""
    start = time.perf_counter()
    estimator = make_estimator(name, **params).fit(ctx)
    scores = estimator.score(test_idx, train_idx)
    return time.perf_counter() - start, scores, estimator


def fill(params: dict, native) -> dict:
    """Adapter settings equal to the native's: the absolute damping it used, its TRAK damping."""
    described = native.describe()
    values = {"damping": native.damping if native.name == "trak" else described.get("damping")}
    return {k: (values[k] if v is None else v) for k, v in params.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="breast-cancer-mlp")
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--n-train", type=int, default=None, help="default: every training instance")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cg-test-points", type=int, default=10, help="test points of the CG pair (memory)")
    parser.add_argument("--pairs", default=None, help="comma-separated native names (default: every pair)")
    parser.add_argument("--device", default="auto", help="auto (default: cuda when present), cpu or cuda[:k]")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: benchmarks/results/estimator_speed_<task>[_cuda].json")
    args = parser.parse_args()
    device = resolve_device(args.device)
    out = args.out or Path(f"benchmarks/results/estimator_speed_{args.task}"
                           f"{device_suffix(device)}.json")
    ctx = context_on(build_context(find_spec(args.task)), device)
    all_test = np.arange(min(args.n_test, len(ctx.test)))
    train_idx = np.arange(min(args.n_train or len(ctx.train), len(ctx.train)))
    report = {"task": args.task, "n_train": len(train_idx), "repeats": args.repeats, "cg_test_points": args.cg_test_points,
              "torch_threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
              "device": str(device), "device_name": device_name(device), "n_params": ctx.n_params, "pairs": []}
    chosen = set(args.pairs.split(",")) if args.pairs else {native for (native, _), _, _ in PAIRS}
    for (native_name, native_params), (adapter_name, adapter_params), most in PAIRS:
        if native_name not in chosen:
            continue
        test_idx = all_test[:args.cg_test_points if most == "cg" else most]
        _, native_scores, native = timed(native_name, native_params, ctx, test_idx, train_idx)  # warm-up
        adapter_params = fill(adapter_params, native)
        _, adapter_scores, _ = timed(adapter_name, adapter_params, ctx, test_idx, train_idx)
        best = {native_name: [], adapter_name: []}
        for _ in range(args.repeats):
            best[native_name].append(timed(native_name, native_params, ctx, test_idx, train_idx)[0])
            best[adapter_name].append(timed(adapter_name, adapter_params, ctx, test_idx, train_idx)[0])
        row = {"native": native_name, "adapter": adapter_name, "adapter_params": adapter_params,
               "n_test": len(test_idx),
               "native_s": round(min(best[native_name]), 3), "adapter_s": round(min(best[adapter_name]), 3),
               "speedup": round(min(best[adapter_name]) / min(best[native_name]), 2),
               "pearson": round(agreement(adapter_scores, native_scores, "pearson").mean, 6),
               "max_relative_difference": float(np.abs(adapter_scores - native_scores).max()
                                                / np.abs(native_scores).max()),
               "load_average_1min": round(os.getloadavg()[0], 2)}
        report["pairs"].append(row)
        print(json.dumps(row), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")  # after every pair: an interrupted run keeps them


if __name__ == "__main__":
    main()
