"""Choose estimator hyperparameters on a validation split of test points (docs/method.md, the unified view).

The validation points are the task's test points that `tdabench compare` does NOT score by default
(the complement of its selection), so a setting picked here is never tuned on scored points.
Prints the mean Pearson and cosine per horizon for every estimator setting and saves all three
metrics (with `--out`, default benchmarks/results/validation_sweep_TASK.json). Usage:

    .venv/bin/python benchmarks/validation_sweep.py --task breast-cancer-mlp --seeds 5 \\
        --estimators "if-explicit(damping=1),if-explicit(damping=100),grad-dot"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tdabench.compare import run_estimator
from tdabench.registry import make_estimator
from tdabench.selection import parse_estimators
from tdabench.task import build_context, find_spec
from tdabench.truths.further import GoldConfig, config_from_spec, run_gold_standard


def validation_config(spec, ctx, seeds: int, n_train: int | None) -> GoldConfig:
    scored = config_from_spec(spec.gold_standard, len(ctx.train), len(ctx.test), n_train_evaluated=n_train)
    held_out = tuple(i for i in range(len(ctx.test)) if i not in set(scored.test_idx))
    if not held_out:
        raise SystemExit("every test point is scored by default: no validation split is left")
    return GoldConfig(scored.recipe, scored.train_idx, held_out, scored.horizons, scored.horizon_unit, seeds,
                      scored.mode, scored.epsilon, n_train=scored.n_train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="breast-cancer-mlp")
    parser.add_argument("--estimators", required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    spec = find_spec(args.task)
    ctx = build_context(spec)
    cfg = validation_config(spec, ctx, args.seeds, args.n_train)
    gold = run_gold_standard(ctx, cfg)
    rows = []
    for request in parse_estimators(args.estimators):
        outcome = run_estimator(request, make_estimator(request.name, **request.params), ctx, gold, False)
        rows += [{"estimator": r.estimator, "horizon": r.horizon, "metric": r.metric, "mean": r.mean,
                  "sem": r.sem} for r in outcome.records]
        for metric in ("pearson", "cosine"):
            means = {r.horizon: round(r.mean, 3) for r in outcome.records if r.metric == metric and r.mean is not None}
            print(f"{request.label:<50} {metric:<8} {means} {outcome.error or ''}", flush=True)
    out = args.out or Path(f"benchmarks/results/validation_sweep_{spec.name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"task": spec.name, "spec_hash": spec.spec_hash, "seeds": args.seeds,
                               "n_validation_test_points": len(cfg.test_idx), "records": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
