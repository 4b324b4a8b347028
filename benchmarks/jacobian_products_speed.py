"""Gauss–Newton products through the stored output Jacobian against the matrix-free products.

    TDABENCH_CACHE=/work/cache python benchmarks/jacobian_products_speed.py [--task rt-bert-tiny]
        [--vectors 1 10] [--estimators "if-cg(curvature=gauss-newton,max_iter=5)"]

In one process: (1) the time to build J (n, C, P) and M; (2) for each k in --vectors, one product of
k vectors over the whole training set, matrix-free then through J, and their largest relative
difference; (3) with --estimators, fit + score of the compare defaults' shape (the spec's n_test
test points × n_train_evaluated training instances) through J, with the estimator's cost report.
Writes benchmarks/results/jacobian_products_<task>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from tdabench.estimators.curvature import CurvatureOperator
from tdabench.registry import make_estimator
from tdabench.selection import parse_estimators
from tdabench.task import build_context, find_spec

RESULTS = Path(__file__).parent / "results"


def timed(fn, *args):
    """fn(*args) and the seconds it took."""
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def products(ctx, ks: list[int]) -> dict:
    stored = CurvatureOperator(ctx, "gauss-newton", dense_up_to=0)
    free = CurvatureOperator(ctx, "gauss-newton", dense_up_to=0, jacobian_up_to=0)
    held, build_s = timed(stored.output_jacobian)
    rows = {"jacobian_build_s": round(build_s, 2), "jacobian_gb": round(held.jacobian.numel() * 8 / 1e9, 2), "products": []}
    print(f"J {tuple(held.jacobian.shape)} ({rows['jacobian_gb']} GB) built in {build_s:.1f} s", flush=True)
    for k in ks:
        vectors = torch.randn(k, ctx.n_params, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
        expected, free_s = timed(free.matvec, vectors)
        actual, stored_s = timed(stored.matvec, vectors)
        diff = float((actual - expected).abs().max() / expected.abs().max())
        rows["products"].append({"vectors": k, "matrix_free_s": round(free_s, 3), "stored_jacobian_s": round(stored_s, 3),
                                 "speedup": round(free_s / stored_s, 1), "max_rel_diff": diff})
        print(f"{k} vectors: matrix-free {free_s:.2f} s, through J {stored_s:.3f} s ({free_s / stored_s:.0f}x), "
              f"max rel diff {diff:.1e}", flush=True)
    return rows


def estimators(ctx, names: list[str]) -> list[dict]:
    gold = ctx.spec.gold_standard
    test_idx = np.arange(min(gold.n_test, len(ctx.test)))
    train_idx = np.arange(min(gold.n_train_evaluated, len(ctx.train)))
    out = []
    for request in (r for name in names for r in parse_estimators(name)):
        name = request.label
        estimator, fit_s = timed(make_estimator(request.name, **request.params).fit, ctx)
        _, score_s = timed(estimator.score, test_idx, train_idx)
        out.append({"estimator": name, "fit_s": round(fit_s, 1), "score_s": round(score_s, 1),
                    "shape": [len(test_idx), len(train_idx)]})
        print(f"{name}: fit {fit_s:.1f} s, score {len(test_idx)}x{len(train_idx)} {score_s:.1f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="rt-bert-tiny")
    parser.add_argument("--vectors", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--estimators", nargs="*", default=["if-cg(curvature=gauss-newton,max_iter=5)"])
    args = parser.parse_args()
    load = os.getloadavg()
    ctx = build_context(find_spec(args.task))
    print(f"{args.task}: P = {ctx.n_params}, n = {len(ctx.train)}; load {load}", flush=True)
    record = {"task": args.task, "n_params": ctx.n_params, "n_train": len(ctx.train), "load_average": load,
              "torch_threads": torch.get_num_threads(), **products(ctx, args.vectors),
              "estimators": estimators(ctx, args.estimators)}
    path = RESULTS / f"jacobian_products_{args.task}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
