"""Does float32 reproduce float64's agreement figures? The measurement behind tdabench/precision.py.

For each task (default: the tabular ones), one comparison in the spec's float64 and one with the same
final model cast to float32 (`--dtype float32`: the gold standard and every native estimator in
float32, compare.run_prepared), on the same training instances, test points, seeds and horizons.
For each estimator and horizon it records the per-horizon Pearson (mean over test points) in both
and their difference float32 − float64; per task, the largest |difference| (`max_abs_difference`)
against the bound of 0.005 (`within_bound`). tdabench/precision.py's FLOAT32_CHANGE copies
`max_abs_difference` and the spec hash of each task. Usage:

    .venv/bin/python benchmarks/precision.py [--tasks breast-cancer-logreg,breast-cancer-mlp,diabetes-mlp]
        [--seeds 2] [--n-train 50] [--n-test 30] [--out benchmarks/results/precision.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch

from tdabench.compare import CompareOptions, prepare, run_prepared
from tdabench.precision import PEARSON_BOUND
from tdabench.registry import make_estimator
from tdabench.results import Results

TABULAR = ("breast-cancer-logreg", "breast-cancer-mlp", "diabetes-mlp")
METRIC = "pearson"


def pearson_by_estimator(results: Results) -> dict[str, dict[int, float | None]]:
    """{estimator: {horizon: mean Pearson over test points}} of the further-training records."""
    table: dict[str, dict[int, float | None]] = {}
    for r in results.records:
        if r.metric == METRIC and r.ground_truth == "further-training":
            table.setdefault(r.estimator, {})[r.horizon] = r.mean
    return table


def measure_task(task: str, seeds: int, n_train: int, n_test: int) -> dict:
    """Both comparisons of one task and their per-estimator, per-horizon differences."""
    options = CompareOptions(task=task, seeds=seeds, n_train=n_train, n_test=n_test, progress=False)
    ctx, cfg, made = prepare(options)
    requests = [request for request, _ in made]
    runs, seconds = {}, {}
    for dtype in ("float64", "float32"):  # fresh, unfitted estimators for each
        start = time.perf_counter()
        fresh = [(r, make_estimator(r.name, **r.params)) for r in requests]
        runs[dtype] = run_prepared(ctx, cfg, fresh, dataclasses.replace(options, dtype=dtype))
        seconds[dtype] = round(time.perf_counter() - start, 1)
        assert runs[dtype].task.details["dtype"] == dtype
    wide, narrow = pearson_by_estimator(runs["float64"]), pearson_by_estimator(runs["float32"])
    rows, largest = [], 0.0
    for name in sorted(wide):
        for horizon, f64 in sorted(wide[name].items()):
            f32 = narrow.get(name, {}).get(horizon)
            diff = None if f32 is None or f64 is None else f32 - f64
            largest = max(largest, abs(diff)) if diff is not None else largest
            rows.append({"estimator": name, "horizon": horizon, "float64": f64, "float32": f32, "difference": diff})
    errors = {d: r.errors for d, r in runs.items() if r.errors}
    return {"spec_hash": ctx.spec.spec_hash, "seconds": seconds, "max_abs_difference": largest,
            "within_bound": largest <= PEARSON_BOUND and not errors, "errors": errors, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TABULAR))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--n-train", type=int, default=50)
    parser.add_argument("--n-test", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/precision.json"))
    args = parser.parse_args()
    tasks: dict[str, dict] = {}
    report = {"metric": f"{METRIC} (mean over test points), float32 − float64", "bound": PEARSON_BOUND,
              "seeds": args.seeds, "n_train_evaluated": args.n_train, "n_test": args.n_test,
              "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "tasks": tasks}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for task in args.tasks.split(","):  # written after each task, so a long run keeps what it finished
        tasks[task] = measure_task(task, args.seeds, args.n_train, args.n_test)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"{task}: largest |Δ Pearson| {tasks[task]['max_abs_difference']:.2e} "
              f"({'within' if tasks[task]['within_bound'] else 'beyond'} {PEARSON_BOUND}), "
              f"{tasks[task]['seconds']} s", flush=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
