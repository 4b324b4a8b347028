"""Choose the damped estimators' default damping on validation test points of several tasks (issue 18).

For each task: the validation gold standard (`tdabench.tuning.validation_config`: every test point that
`tdabench compare` does NOT score, so no setting is tuned on a scored point), then the tuned track's
`sweep` of each estimator over two families of candidates, validation mean agreement (`--metric`) per
horizon:
- relative: damping = c·λ_G (λ_G = mean squared entry of the per-sample training gradients at θᶠ,
  i.e. the mean eigenvalue of the empirical Fisher), c in `--relative`;
- horizon-matched: damping = 1/(η·T) in absolute units for every horizon T of the grid (η the further-
  training learning rate, T in steps; DESIGN.md §4: T steps of gradient descent ≈ damping 1/(ηT)).
Also recorded per task: λ_G, η, the steps of each horizon and the top eigenvalue of the Gauss–Newton
matrix (power iteration), so that rules tied to the spectrum can be read off the same data.
Writes every candidate's validation means to `--out` (JSON) and prints a summary: per estimator and
relative c, the mean over tasks of each task's mean over horizons. Usage (the figures in
benchmarks/results/validation_sweep.json):

    nice -n 10 .venv/bin/python benchmarks/validation_sweep.py \\
        --tasks breast-cancer-logreg,diabetes-mlp,digits-mlp,breast-cancer-mlp --estimators if-explicit,kfac,ekfac
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tdabench.estimators.curvature import CurvatureOperator
from tdabench.estimators.gradients import training_lambda_g
from tdabench.selection import parse_estimators
from tdabench.task import build_context, find_spec
from tdabench.truths.further import config_from_spec, run_gold_standard
from tdabench.tuning import sweep, validation_config

RELATIVE = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


def top_eigenvalue(ctx, iterations: int = 30) -> float:
    """Largest eigenvalue of the Gauss–Newton matrix (l2 included), by power iteration."""
    op = CurvatureOperator(ctx, "gauss-newton", 0.0, 256)
    v = torch.randn(1, op.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    value = 0.0
    for _ in range(iterations):
        w = op.matvec(v / v.norm())
        value, v = float((w * (v / v.norm())).sum()), w
    return value


def sweep_task(task: str, requests, seeds: int, metric: str, relative: tuple[float, ...],
               skip: set[tuple[str, str]]) -> dict:
    spec = find_spec(task)
    ctx = build_context(spec)
    cfg = config_from_spec(spec.gold_standard, len(ctx.train), len(ctx.test), seeds=seeds)
    vcfg = validation_config(cfg, len(ctx.test))
    start = time.perf_counter()
    vgold = run_gold_standard(ctx, vcfg, progress=False)
    lr = cfg.recipe.lr
    out = {"task": task, "spec_hash": spec.spec_hash, "seeds": seeds, "metric": metric, "lr": lr,
           "horizons": list(cfg.horizons), "steps": list(cfg.steps), "horizon_unit": cfg.horizon_unit,
           "n_validation": len(vcfg.test_idx), "n_train_evaluated": len(cfg.train_idx),
           "validation_gold_standard_s": round(time.perf_counter() - start, 1),
           "lambda_g": training_lambda_g(ctx), "gauss_newton_top_eigenvalue": top_eigenvalue(ctx), "sweeps": []}
    print(f"{task}: λ_G {out['lambda_g']:.3g}, λ_max(G) {out['gauss_newton_top_eigenvalue']:.3g}, "
          f"gold {out['validation_gold_standard_s']} s", flush=True)
    horizon_matched = [1.0 / (lr * s) for s in cfg.steps]
    for request in requests:
        if (task, request.name) in skip:
            continue
        for family, space in (("relative", {"damping": relative}),
                              ("horizon-matched", {"damping": tuple(horizon_matched), "damping_relative": (False,)})):
            choice = sweep(request, space, ctx, vgold, metric, False, tuple(cfg.test_idx))
            out["sweeps"].append({"estimator": request.label, "family": family} | choice.to_json())
            for c in choice.candidates:
                means = " ".join(f"{m:.3f}" if m is not None else "—" for m in c.means.values())
                print(f"  {request.label:<12} {family:<16} damping {c.params['damping']:<10.3g} {means} "
                      f"{c.error or ''} ({c.seconds:.1f} s)", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="breast-cancer-logreg,diabetes-mlp,digits-mlp,breast-cancer-mlp")
    parser.add_argument("--estimators", default="if-explicit,kfac,ekfac")
    parser.add_argument("--skip", default="breast-cancer-mlp:if-explicit",
                        help="task:estimator pairs not swept (if-explicit on breast-cancer-mlp: ~100 s a fit)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--metric", default="pearson")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/validation_sweep.json"))
    args = parser.parse_args()
    requests = parse_estimators(args.estimators)
    skip = {tuple(p.split(":")) for p in args.skip.split(",") if p}
    tasks = []
    for task in args.tasks.split(","):
        tasks.append(sweep_task(task, requests, args.seeds, args.metric, RELATIVE, skip))
        args.out.write_text(json.dumps({"command": "benchmarks/validation_sweep.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"), "tasks": tasks},
            indent=1) + "\n")


if __name__ == "__main__":
    main()
