"""Compare default-damping rules on the validation sweeps of benchmarks/validation_sweep.py (issue 18).

Reads its JSON (every candidate's validation mean agreement per horizon, per task and estimator) and
scores each rule by the mean over horizons of the validation agreement it would get, per task, next to
the best single setting of the grid (the tuned track's "one setting for all horizons"). Rules:
- `c·λ_G`: a constant relative to λ_G (the grid's values; the old default is 1e4·λ_G);
- `c·λ_max(G)`: relative to the top eigenvalue of the Gauss–Newton matrix;
- `1/(η·T_mid)`: horizon-matched at the grid's middle horizon (needs the further-training recipe).
A rule's damping that is not on the grid is scored by linear interpolation in log(damping) between
the nearest candidates of both families (relative and horizon-matched, in absolute units); outside
their range it is not scored. Usage:

    python benchmarks/default_damping.py benchmarks/results/validation_sweep.json benchmarks/results/default_damping.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def curve(task: dict, estimator: str) -> list[tuple[float, float]]:
    """(absolute damping, mean over horizons of the validation means) of every candidate, sorted."""
    points = {}
    for sweep in task["sweeps"]:
        if sweep["estimator"] != estimator:
            continue
        for c in sweep["candidates"]:
            means = [m["mean"] for m in c["means"] if m["mean"] is not None]
            if c["error"] is None and means:
                scale = task["lambda_g"] if c["params"].get("damping_relative", True) else 1.0
                points[c["params"]["damping"] * scale] = sum(means) / len(means)
    return sorted(points.items())


def at(points: list[tuple[float, float]], damping: float) -> float | None:
    """The curve at `damping`, interpolated in log(damping); None outside it."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= damping <= x1:
            w = (math.log(damping) - math.log(x0)) / (math.log(x1) - math.log(x0)) if x1 > x0 else 0.0
            return y0 + w * (y1 - y0)
    return None


def rules(task: dict) -> dict[str, float]:
    """Rule name → its absolute damping on `task`."""
    mid = task["steps"][(len(task["steps"]) - 1) // 2]
    out = {f"{c:g}·λ_G": c * task["lambda_g"] for c in (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)}
    out |= {f"{c:g}·λ_max(G)": c * task["gauss_newton_top_eigenvalue"] for c in (0.1, 0.3, 1.0, 3.0, 10.0)}
    out["1/(η·T_mid)"] = 1.0 / (task["lr"] * mid)
    return out


def main() -> None:
    data = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/validation_sweep.json").read_text())
    table: dict[str, dict[str, dict[str, float | None]]] = {}
    for task in data["tasks"]:
        for est in sorted({s["estimator"] for s in task["sweeps"]}):
            points = curve(task, est)
            best = max(y for _, y in points)
            row = table.setdefault(est, {})
            for name, damping in rules(task).items():
                value = at(points, damping)
                row.setdefault(name, {})[task["task"]] = None if value is None else round(value, 4)
            row.setdefault("best of grid", {})[task["task"]] = round(best, 4)
    for est, row in table.items():
        print(f"\n{est}: mean over horizons of validation {data['tasks'][0]['metric']}")
        tasks = list(next(iter(row.values())))
        print(f"  {'rule':<16}" + "".join(f"{t:>22}" for t in tasks) + f"{'mean':>10}")
        for name, values in row.items():
            known = [v for v in values.values() if v is not None]
            mean = f"{sum(known) / len(known):.3f}" if len(known) == len(values) else "—"
            print(f"  {name:<16}" + "".join(f"{'—' if v is None else f'{v:.3f}':>22}" for v in values.values())
                  + f"{mean:>10}")
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    if out:
        command = "python benchmarks/default_damping.py " + " ".join(sys.argv[1:])
        out.write_text(json.dumps({"command": command, "source": sys.argv[1], "metric": data["tasks"][0]["metric"],
                                   "value": "mean over tasks' horizons of the validation mean agreement",
                                   "rules": table}, indent=1) + "\n")


if __name__ == "__main__":
    main()
