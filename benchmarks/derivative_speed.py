"""Cost of the derivative mode against the vectorised downweight gold standard, in one process.

Both compute one seed on the same task, training instances, test points and horizons: the
derivative mode d = −∂f/∂w_i (one forward run, one reverse sweep per chunk of test points) and the
vectorised downweight mode (1 + n copies trained together, chunked to the memory budget) with a
small ε, whose differences divided by ε approach d. For each n_train (default: 100 and all
instances) the script reports wall seconds, peak resident memory above the process's resident size
before the run (MiB, sampled), and the largest difference between d and diff/ε relative to the
largest |d| (O(ε) for a one-sided difference). Each computation runs `--repeats` times (default 2)
and the shortest wall time is kept, so one-off costs of the first call (allocator, thread pool)
do not count against whichever runs first. Usage:

    .venv/bin/python benchmarks/derivative_speed.py [--task breast-cancer-mlp] [--n-train 100,all]
        [--horizons 1,2,5] [--epsilon 1e-4] [--repeats 2] [--device auto|cpu|cuda[:k]]
        [--out benchmarks/results/derivative_speed_<task>[_cuda].json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from tdabench.scoring.costs import measure, release_freed_memory
from tdabench.task import build_context, find_spec
from tdabench.task.device import context_on, device_name, device_suffix, resolve_device
from tdabench.truths.further import auto_chunk_size, config_from_spec, derivatives, paired_differences
from tdabench.truths.further.derivative import derivative_plan


def _resident_mb() -> float:
    """The process's resident set size now, MiB (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


def _timed_once(work):
    """(result, wall seconds, peak resident MiB above the resident size before)."""
    release_freed_memory()
    before = _resident_mb()
    start = time.perf_counter()
    with measure() as cost:
        result = work()
    seconds = time.perf_counter() - start
    return result, seconds, None if cost.peak_mem_mb is None else cost.peak_mem_mb - before


def _timed(work, repeats: int):
    """`_timed_once` `repeats` times: the last result, the shortest seconds and the largest peak."""
    runs = [_timed_once(work) for _ in range(repeats)]
    peaks = [r[2] for r in runs if r[2] is not None]
    return runs[-1][0], round(min(r[1] for r in runs), 2), round(max(peaks), 1) if peaks else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="breast-cancer-mlp")
    parser.add_argument("--n-train", default="100,all", help="comma-separated counts or 'all'")
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--horizons", default="1,2,5", help="comma-separated, in the task's unit")
    parser.add_argument("--epsilon", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each computation; the fastest counts")
    parser.add_argument("--device", default="auto", help="auto (default: cuda when present), cpu or cuda[:k]")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: benchmarks/results/derivative_speed_<task>[_cuda].json")
    args = parser.parse_args()
    device = resolve_device(args.device)
    out = args.out or Path(f"benchmarks/results/derivative_speed_{args.task}"
                           f"{device_suffix(device)}.json")
    spec = find_spec(args.task)
    ctx = context_on(build_context(spec, Path(tempfile.mkdtemp())), device)
    horizons = tuple(int(h) for h in args.horizons.split(","))
    runs = []
    for count in args.n_train.split(","):
        n_eval = len(ctx.train) if count == "all" else int(count)
        cfg = config_from_spec(spec.gold_standard, len(ctx.train), len(ctx.test), seeds=1, horizons=horizons,
                               mode="derivative", n_train_evaluated=n_eval, n_test_evaluated=args.n_test)
        down = dataclasses.replace(cfg, mode="downweight", epsilon=args.epsilon)
        down = dataclasses.replace(down, chunk_size=auto_chunk_size(ctx, down.recipe, len(down.train_idx)))
        (d, _), derivative_s, derivative_mb = _timed(partial(derivatives, ctx, cfg, args.seed), args.repeats)
        (diff, _), vectorised_s, vectorised_mb = _timed(partial(paired_differences, ctx, down, args.seed), args.repeats)
        test_chunk, k = derivative_plan(ctx, cfg)
        runs.append({
            "n_train_evaluated": n_eval, "derivative_s": derivative_s, "vectorised_downweight_s": vectorised_s,
            "speedup": round(vectorised_s / derivative_s, 2), "derivative_peak_mb": derivative_mb,
            "vectorised_downweight_peak_mb": vectorised_mb, "derivative_test_chunk": test_chunk,
            "derivative_checkpoint_every": k, "vectorised_chunk_size": down.chunk_size,
            "max_relative_difference_d_vs_diff_over_epsilon": float(np.abs(d - diff / args.epsilon).max()
                                                                    / np.abs(d).max())})
        print(json.dumps(runs[-1]), flush=True)
    report = {
        "task": spec.name, "spec_hash": spec.spec_hash, "n_params": ctx.n_params, "n_train": len(ctx.train),
        "n_test": args.n_test, "horizons": list(horizons), "horizon_unit": cfg.horizon_unit,
        "steps": cfg.steps[-1], "epsilon": args.epsilon, "runs": runs,
        "repeats": args.repeats, "torch_threads": torch.get_num_threads(), "device": str(device),
        "device_name": device_name(device),
        "machine": platform.processor() or platform.machine(), "load_average_1min": round(os.getloadavg()[0], 2),
        "note": "one seed each, fastest of `repeats` runs; compare within one run",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
