"""Curvature products of a Linear stack: structured (mlp_products) against the generic vmapped path.

    TDABENCH_CACHE=/work/cache python benchmarks/mlp_products_speed.py [--task breast-cancer-mlp]
        [--vectors 100] [--repeats 3] [--estimators if-lissa if-lissa-horizon]

(1) one product of k vectors over the whole training set, generic and structured alternating in the
same process, best of `repeats`, for the Hessian and the Gauss–Newton matrix (and their largest
relative difference); (2) with --estimators, fit + score_horizons of each estimator with default
settings on the compare defaults' shape (the spec's n_test test points × n_train_evaluated training
instances, every horizon), generic then structured, alternating.
"""

from __future__ import annotations

import argparse
import os
import time
from unittest import mock

import numpy as np
import torch

from tdabench.estimators import curvature as curvature_module
from tdabench.estimators.curvature import CurvatureOperator
from tdabench.registry import make_estimator
from tdabench.task import build_context, find_spec
from tdabench.task.schedule import steps_per_epoch


def products(ctx, vectors: torch.Tensor, repeats: int) -> None:
    for curvature in ("hessian", "gauss-newton"):
        ops = {"generic": CurvatureOperator(ctx, curvature, dense_up_to=0, structured=False),
               "structured": CurvatureOperator(ctx, curvature, dense_up_to=0)}
        best, out = {name: float("inf") for name in ops}, {}
        for _ in range(repeats):
            for name, op in ops.items():
                start = time.perf_counter()
                out[name] = op.matvec(vectors)
                best[name] = min(best[name], time.perf_counter() - start)
        diff = float((out["generic"] - out["structured"]).abs().max() / out["generic"].abs().max())
        print(f"{curvature}: {len(vectors)} vectors x {len(ctx.train)} examples: generic {best['generic']:.3f} s, "
              f"structured {best['structured']:.3f} s ({best['generic'] / best['structured']:.1f}x), "
              f"max rel diff {diff:.1e}", flush=True)


def estimators(ctx, names: list[str], repeats: int) -> None:
    gold = ctx.spec.gold_standard
    per_epoch = steps_per_epoch(len(ctx.train), gold.further_training.batch_size)
    steps = [h * (per_epoch if gold.horizon_unit == "epoch" else 1) for h in gold.horizons]
    test_idx, train_idx = np.arange(min(gold.n_test, len(ctx.test))), np.arange(min(gold.n_train_evaluated, len(ctx.train)))
    for name in names:
        best, scores = {"generic": float("inf"), "structured": float("inf")}, {}
        for _ in range(repeats):
            for path in best:
                generic = mock.patch.object(curvature_module, "mlp_layers", lambda context: None)
                with generic if path == "generic" else mock.patch.dict({}):
                    start = time.perf_counter()
                    scores[path] = make_estimator(name).fit(ctx).score_horizons(test_idx, train_idx, steps)
                    best[path] = min(best[path], time.perf_counter() - start)
        diff = float(np.abs(scores["generic"] - scores["structured"]).max() / np.abs(scores["generic"]).max())
        print(f"{name}: fit+score {len(test_idx)}x{len(train_idx)}, {len(steps)} horizons: generic {best['generic']:.2f} s, "
              f"structured {best['structured']:.2f} s ({best['generic'] / best['structured']:.1f}x), "
              f"max rel diff {diff:.1e}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="breast-cancer-mlp")
    parser.add_argument("--vectors", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--estimators", nargs="*", default=[])
    parser.add_argument("--skip-products", action="store_true")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, torch threads {torch.get_num_threads()}", flush=True)
    ctx = build_context(find_spec(args.task))
    print(f"{args.task}: P = {ctx.n_params}, n = {len(ctx.train)}", flush=True)
    if not args.skip_products:
        vectors = torch.randn(args.vectors, ctx.n_params, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        products(ctx, vectors.to(ctx.device), args.repeats)
    estimators(ctx, args.estimators, args.repeats)
    print(f"load average {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
