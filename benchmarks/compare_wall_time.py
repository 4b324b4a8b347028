"""Wall time of the default command on a fresh cache: `tdabench compare` (what `make compare` runs)
in a new process with TDABENCH_CACHE set to an empty folder, so the final model, the gold standard
and every estimator are computed. Reports the wall seconds, the gold standard's and each
estimator's seconds (from results.json's `cost`), the peak resident memory of the child, and the
machine's load. Usage:

    .venv/bin/python benchmarks/compare_wall_time.py [--args "--task diabetes-mlp"] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--args", default="", help="extra arguments of tdabench compare")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/compare_wall_time.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "tdabench.cli", "compare", "--out", f"{folder}/out", "--no-progress",
                   *shlex.split(args.args)]
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        subprocess.run(command, env=os.environ | {"TDABENCH_CACHE": f"{folder}/cache"}, check=True,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        cost = json.loads(Path(f"{folder}/out/results.json").read_text())["cost"]
    report = {"command": "tdabench compare " + args.args, "fresh_cache": True, "wall_s": round(wall, 1),
              "gold_standard_s": cost["gold_standard_s"],
              "estimators_s": {name: round(c.get("fit_s", 0) + c.get("score_s", 0), 2)
                               for name, c in cost["estimators"].items()},
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
              "cpu_count": os.cpu_count(), "load_average_1min_before": round(load_before, 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
