"""The command line: `tdabench list`, `tdabench compare`, `tdabench leaderboard`.

User errors (unknown names, malformed specs, impossible settings) print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from tdabench.errors import TdabenchError


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tdabench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lister = sub.add_parser("list", help="list tasks and estimators")
    lister.set_defaults(handler=cmd_list)
    lister.add_argument("--json", action="store_true", help="machine-readable output")
    cmp = sub.add_parser("compare", help="compare estimators with the further-training gold standard")
    cmp.set_defaults(handler=cmd_compare)
    cmp.add_argument("--task", default=None, help="task name or spec file (default: breast-cancer-mlp)")
    cmp.add_argument("--estimators", default=None,
                     help="comma-separated, e.g. 'grad-dot,if-explicit(damping=0.1)' (default: all built-ins)")
    cmp.add_argument("--seeds", type=int, default=None, help="further-training seeds (default: the spec's)")
    cmp.add_argument("--horizons", type=_int_list, default=None, help="e.g. 1,2,5,10 (in the spec's unit)")
    cmp.add_argument("--mode", choices=["removal", "downweight"], default=None)
    cmp.add_argument("--epsilon", type=float, default=None, help="down-weighting amount (mode downweight)")
    cmp.add_argument("--n-train", type=int, default=None, help="training instances evaluated (default 100)")
    cmp.add_argument("--n-test", type=int, default=None, help="test points (default 100)")
    cmp.add_argument("--target", default=None, help="attribution target (default: the spec's, 'loss')")
    cmp.add_argument("--centered", action="store_true", help="center the gold standard per test point")
    cmp.add_argument("--chunk-size", type=int, default=None, help="copies trained together per vmapped step")
    cmp.add_argument("--metric", default="pearson",
                     help="metric shown in the terminal table (all three are in results.json)")
    cmp.add_argument("--out", type=Path, default=Path("runs/latest"), help="folder for results.json/.csv")
    cmp.add_argument("--cache-dir", type=Path, default=None, help="default: $TDABENCH_CACHE or ~/.cache/tdabench")
    cmp.add_argument("--no-progress", action="store_true", help="no progress bars")
    board = sub.add_parser("leaderboard", help="Markdown and CSV tables from results files")
    board.set_defaults(handler=cmd_leaderboard)
    board.add_argument("--results", type=Path, nargs="+", required=True, help="results folders or files")
    board.add_argument("--out", type=Path, default=Path("leaderboard"))
    board.add_argument("--metric", default="pearson")
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    from tdabench.registry import estimator_names, estimators
    from tdabench.task import available_tasks, load_spec

    tasks = []
    for name, path in available_tasks().items():
        spec = load_spec(path)
        tasks.append({"name": name, "version": spec.version, "modality": spec.modality, "file": str(path)})
    ests = [{"name": n, **estimators.origin(n).to_dict()} for n in estimator_names()]
    if args.json:
        print(json.dumps({"tasks": tasks, "estimators": ests}, indent=2))
        return 0
    print("tasks:")
    for t in tasks:
        print(f"  {t['name']:<24} v{t['version']}  {t['modality']:<8} {t['file']}")
    print("estimators:")
    for e in ests:
        where = ("adapter" if e["target"].startswith("tdabench.adapters.") else "built-in") \
            if e["kind"] == "built-in" else f"plugin {e['distribution']} {e['version']}"
        print(f"  {e['name']:<24} {where:<28} {e['target']}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from tdabench.compare import CompareOptions, headline, run_compare
    from tdabench.leaderboard import render_terminal_table
    from tdabench.metrics import METRICS
    from tdabench.results import write_results
    from tdabench.selection import parse_estimators
    from tdabench.task import DEFAULT_TASK

    if args.metric not in METRICS:
        raise TdabenchError(f"unknown metric '{args.metric}'; valid metrics: {', '.join(METRICS)}")
    options = CompareOptions(
        task=args.task or DEFAULT_TASK,
        estimators=tuple(parse_estimators(args.estimators)) if args.estimators else None,
        seeds=args.seeds, horizons=args.horizons, mode=args.mode, epsilon=args.epsilon,
        n_train=args.n_train, n_test=args.n_test, centered=args.centered, target=args.target,
        chunk_size=args.chunk_size, cache_dir=args.cache_dir, progress=not args.no_progress)
    results = run_compare(options)
    json_path, csv_path = write_results(results, args.out)
    print(headline(results))
    print(render_terminal_table(results, args.metric))
    print(f"\nwrote {json_path} and {csv_path}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from tdabench.leaderboard import build_leaderboard, write_leaderboard
    from tdabench.results import read_results

    results = [read_results(p) for p in args.results]
    paths = write_leaderboard(build_leaderboard(results, args.metric), args.out)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except TdabenchError as err:
        print(f"tdabench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tdabench: interrupted; finished gold-standard seeds are cached and will be reused",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
