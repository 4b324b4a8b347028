"""The README's worked example (b) measured: a small Hugging Face classifier saved with
`save_pretrained`, its data with `save_to_disk`, benchmarked through a 27-line spec with only its head
and last encoder layer attributed (tests/user_task_examples.write_hf_example, the example the tests run).

Runs every native estimator through the Python API (`tdabench.api.compare`) in a fresh cache and
writes the agreement table (Pearson per horizon, with its 95 % bootstrap interval), the wall time of
making the example and of the comparison, the peak resident memory, and the lines a user writes.

    .venv/bin/python benchmarks/user_task_example.py [--out benchmarks/results/user_task_example_hf.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from user_task_examples import write_hf_example  # noqa: E402  (the tests' example, not a copy)

from tdabench.api import compare  # noqa: E402
from tdabench.report import render_terminal_table  # noqa: E402


def _spec_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/user_task_example_hf.json"))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    start = time.perf_counter()
    spec = write_hf_example(folder)
    made = time.perf_counter()
    results = compare(spec, out=folder / "out", progress=False, cache_dir=folder / "cache")
    done = time.perf_counter()
    table = render_terminal_table(results, "pearson")
    print(table)
    report = {
        "example": "hf classifier (save_pretrained) + DatasetDict (save_to_disk), head + last layer attributed",
        "spec_lines": _spec_lines(spec), "make_example_s": round(made - start, 1),
        "compare_s": round(done - made, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "gold_standard": {"seeds": results.gold_standard.seeds, "horizons": results.gold_standard.horizons,
                          "n_train_evaluated": results.gold_standard.n_train_evaluated,
                          "n_test": results.gold_standard.n_test},
        "pearson": [{"estimator": r.estimator, "horizon": r.horizon, "mean": r.mean, "ci_low": r.ci_low,
                     "ci_high": r.ci_high} for r in results.records if r.metric == "pearson"],
        "errors": results.errors, "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("pearson", "table")}, indent=2))


if __name__ == "__main__":
    main()
