"""The command line: `tdabench list`, `compare`, `leaderboard`, `downstream`, `interactions`, `concepts`.

User errors (unknown names, malformed specs, impossible settings) print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from tdabench.errors import TdabenchError
from tdabench.task.device import resolve_device
from tdabench.task.packages import MissingPackageError
from tdabench.truths.names import GOLD_MODES

if TYPE_CHECKING:
    from tdabench.execution import Executor
    from tdabench.results import Results


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _name_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error reported like every other input error: one line, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise TdabenchError(f"{self.prog}: {message} (see '{self.prog} --help')")

    def format_help(self) -> str:
        """The help, with facts that live in modules too slow to import for every command filled in
        only when the help is shown: {METRICS} (scoring.metrics) and {DEFAULT_HORIZONS} (the spec)."""
        text = super().format_help()
        if "{METRICS}" in text or "{DEFAULT_HORIZONS}" in text:
            from tdabench.scoring.metrics import METRICS
            from tdabench.task import DEFAULT_TASK, find_spec

            horizons = ",".join(map(str, find_spec(DEFAULT_TASK).gold_standard.horizons))
            text = text.replace("{METRICS}", ", ".join(METRICS)).replace(
                "{DEFAULT_HORIZONS}", f"{horizons} for {DEFAULT_TASK}")
        return text


def _add_executor_args(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--executor", default="local",
                        help=f"where {what} run: local (this process, default) or ray (tasks of a Ray cluster)")
    parser.add_argument("--ray-address", default=None,
                        help="with --executor ray: the address of an existing Ray cluster, e.g. 10.0.0.1:6379 "
                             "(default: start a local Ray instance)")
    parser.add_argument("--unit-threads", type=int, default=None,
                        help="torch threads per work unit (default: 1 on Ray, unchanged locally)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tdabench", description="Benchmark training-data attribution estimators against the "
                     "further-training gold standard of the final model (documentation: docs/README.md).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    lister = sub.add_parser("list", help="list tasks and estimators")
    lister.set_defaults(handler=cmd_list)
    lister.add_argument("--json", action="store_true", help="machine-readable output")
    cmp = sub.add_parser("compare", help="compare estimators with the further-training gold standard")
    cmp.set_defaults(handler=cmd_compare)
    cmp.add_argument("--task", default=None, help="task name or spec file (default: breast-cancer-mlp)")
    cmp.add_argument("--estimators", default=None,
                     help="comma-separated, e.g. 'grad-dot,if-explicit(damping=0.1)' (default: every native "
                          "built-in estimator, not the adapters to other libraries; see 'tdabench list')")
    cmp.add_argument("--seeds", type=int, default=None, help="further-training seeds (default: the spec's)")
    cmp.add_argument("--horizons", type=_int_list, default=None,
                     help="comma-separated, increasing, in the spec's unit (epochs or steps); default: the "
                          "spec's gold_standard.horizons ({DEFAULT_HORIZONS})")
    cmp.add_argument("--mode", choices=list(GOLD_MODES), default=None,
                     help="removal: leave each instance out; downweight: scale its loss weight by 1 - epsilon "
                          "in every batch; derivative: the epsilon -> 0 limit for every training instance by "
                          "reverse mode (default: the spec's, removal for the built-ins)")
    cmp.add_argument("--epsilon", type=float, default=None,
                     help="in (0, 1], with --mode downweight: the loss weight becomes 1 - epsilon "
                          "(default: the spec's, 1)")
    cmp.add_argument("--n-train", type=int, default=None,
                     help="training instances evaluated (default: the spec's n_train_evaluated, all if fewer; "
                          "mode derivative: all)")
    cmp.add_argument("--n-test", type=int, default=None,
                     help="test points scored (default: the spec's gold_standard.n_test; all if fewer)")
    cmp.add_argument("--target", default=None,
                     help="attribution target: loss, margin, logit:K, probe:LAYER or interaction:S (S: 1-4 "
                          "feature indices or token positions, e.g. interaction:0,1) (default: the spec's)")
    cmp.add_argument("--centered", action="store_true",
                     help="subtract, per test point and horizon, the gold standard's mean over the evaluated instances")
    cmp.add_argument("--chunk-size", type=int, default=None,
                     help="copies trained together per vmapped step (default: as many as fit "
                          "$TDABENCH_GOLD_MEMORY_GB, 4 GB)")
    cmp.add_argument("--retraining", type=_name_list, default=(),
                     help="secondary ground truths: loo (leave-one-out retraining), lds (linear datamodeling score)")
    cmp.add_argument("--retraining-seeds", type=int, default=3,
                     help="seeds of the retraining ground truths (default %(default)s)")
    cmp.add_argument("--lds-subsets", type=int, default=50, help="random 50%% subsets of the LDS (default %(default)s)")
    cmp.add_argument("--final-models", type=int, default=1,
                     help=">= 2: seed-noise analysis over final models trained from that many seeds")
    cmp.add_argument("--against-removal", action="store_true",
                     help="mode derivative: also compute the removal gold standard on the spec's number of "
                          "evaluated instances and report how well the two agree (the nonlinearity of removal)")
    cmp.add_argument("--tuned", action="store_true",
                     help="also the tuned track: sweep each estimator's search space on validation test points "
                          "(not scored), then score the chosen settings next to the defaults (selected by --metric)")
    cmp.add_argument("--n-validation", type=int, default=None,
                     help="with --tuned: validation test points (default: every test point not scored)")
    cmp.add_argument("--metric", default="pearson",
                     help="metric of the terminal table and the decay plot: one of {METRICS} (default %(default)s; "
                          "every metric is in results.json)")
    cmp.add_argument("--out", type=Path, default=Path("runs/latest"),
                     help="folder for results.json, results.csv and the decay plot (default %(default)s)")
    cmp.add_argument("--cache-dir", type=Path, default=None, help="default: $TDABENCH_CACHE or ~/.cache/tdabench")
    cmp.add_argument("--no-progress", action="store_true", help="no progress bars")
    cmp.add_argument("--dtype", choices=["float32", "float64"], default=None,
                     help="precision of the gold standard and estimators (default: the spec's); another only where "
                          "benchmarks/precision.py showed it reproduces the agreement figures (tdabench/precision.py)")
    cmp.add_argument("--device", default="cpu",
                     help="auto, cpu (default) or cuda[:k]: where the gold standard, retraining and estimators run")
    _add_executor_args(cmp, "the gold-standard and retraining seeds")
    board = sub.add_parser("leaderboard", help="Markdown, CSV and HTML leaderboard from results files")
    board.set_defaults(handler=cmd_leaderboard)
    source = board.add_mutually_exclusive_group()
    source.add_argument("--results", type=Path, nargs="+", default=None, help="results folders or files")
    source.add_argument("--suite", type=Path, default=None,
                        help="suite YAML (benchmarks/leaderboard_suite.yaml): run the comparisons whose "
                             "results under OUT/results are missing or stale, then build from OUT/results")
    board.add_argument("--rebuild-only", action="store_true",
                       help="run nothing: rebuild from the results files under OUT/results")
    board.add_argument("--tasks", default=None, help="with --suite: run only these suite tasks (comma-separated)")
    board.add_argument("--out", type=Path, default=Path("leaderboard"),
                       help="folder of the pages, plots/ and results/ (default %(default)s)")
    board.add_argument("--metric", default="pearson", help="one of {METRICS} (default %(default)s)")
    board.add_argument("--cache-dir", type=Path, default=None, help="default: $TDABENCH_CACHE or ~/.cache/tdabench")
    board.add_argument("--no-progress", action="store_true", help="no progress bars")
    board.add_argument("--device", default="cpu",
                       help="with --suite: auto, cpu (default) or cuda[:k] for the comparisons and downstream "
                            "checks it runs")
    _add_executor_args(board, "the suite's comparisons (with ray: one task per stale entry)")
    _add_downstream(sub)
    _add_interactions(sub)
    _add_concepts(sub)
    return parser


def _add_interactions(sub) -> None:
    """`tdabench interactions`: the final model's salient Harsanyi interactions (tdabench/interactions/)."""
    inter = sub.add_parser("interactions", help="the most salient Harsanyi interactions of the final model on "
                           "test points, and their sparsity, before and after further training")
    inter.set_defaults(handler=cmd_interactions)
    inter.add_argument("--task", default=None, help="task name or spec file (default: breast-cancer-mlp)")
    inter.add_argument("--test-index", type=_int_list, default=(0,),
                       help="comma-separated indices into the test split (default 0)")
    inter.add_argument("--max-order", type=int, default=3, help="largest |S| (default %(default)s)")
    inter.add_argument("--threshold", type=float, default=None,
                       help="sparsity: |I(S)| above this counts (default: --relative of the largest |I|)")
    inter.add_argument("--relative", type=float, default=0.05,
                       help="sparsity threshold as a share of the largest |I| (default %(default)s)")
    inter.add_argument("--horizons", type=_int_list, default=None,
                       help="further-training horizons in the spec's unit (default: the spec's)")
    inter.add_argument("--seed", type=int, default=0, help="reference seed of further training (default 0)")
    inter.add_argument("--top", type=int, default=15, help="interactions listed per test point (default 15)")
    inter.add_argument("--out", type=Path, default=Path("runs/interactions"), help="folder of interactions.json")
    inter.add_argument("--cache-dir", type=Path, default=None, help="default: $TDABENCH_CACHE or ~/.cache/tdabench")
    inter.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_downstream(sub) -> None:
    """`tdabench downstream`: the field's other evaluations (tdabench/downstream/)."""
    down = sub.add_parser("downstream", help="mislabel detection, model randomisation, top-k removal, "
                          "top-k cardinality")
    down.set_defaults(handler=cmd_downstream)
    down.add_argument("--task", default=None, help="task name or spec file (default: breast-cancer-mlp)")
    down.add_argument("--estimators", default=None, help="comma-separated (default: every native estimator)")
    down.add_argument("--checks", type=_name_list, default=("mislabel", "randomization", "brittleness", "cardinality"),
                      help="comma-separated: mislabel, randomization, brittleness, cardinality, shortcut (image "
                           "tasks) (default: all but shortcut)")
    down.add_argument("--n-test", type=int, default=20, help="test points of the checks on the final model")
    down.add_argument("--top-k", type=int, default=10,
                      help="k of the top-k cardinality and of the shortcut share (default %(default)s)")
    down.add_argument("--ks", type=_int_list, default=(1, 5, 10, 20, 50), help="top-k removal grid")
    down.add_argument("--horizon", type=int, default=None,
                      help="top-k removal: further-training horizon in the spec's unit (default: its longest)")
    down.add_argument("--retrain", action="store_true",
                      help="top-k removal also by retraining from scratch without the removed set (small tasks)")
    down.add_argument("--retrain-budget", type=int, default=None,
                      help="--retrain refuses more than this many n_train × models retrained from scratch "
                           "(default: downstream.options.RETRAIN_BUDGET, 1e6)")
    down.add_argument("--noise", type=float, default=0.1, help="fraction of training labels flipped (mislabel)")
    down.add_argument("--gold-seeds", type=int, default=1, help="seeds of the gold self-influence")
    down.add_argument("--gold-instances", type=int, default=200,
                      help="training instances of the gold self-influence (default %(default)s)")
    down.add_argument("--shortcut", type=float, default=0.3,
                      help="share of the shortcut class's training images with the corner patch (default %(default)s)")
    down.add_argument("--shortcut-class", type=int, default=0, help="the class whose images carry the patch")
    down.add_argument("--compare-results", type=Path, default=None,
                      help="a compare results.json of the same task: the plot places each estimator's "
                           "further-training agreement against each downstream score")
    down.add_argument("--compare-metric", default="pearson",
                      help="agreement metric of that plot, at the longest horizon (default %(default)s)")
    down.add_argument("--out", type=Path, default=Path("runs/downstream"),
                      help="folder of downstream.json and downstream.png/.svg")
    down.add_argument("--cache-dir", type=Path, default=None, help="default: $TDABENCH_CACHE or ~/.cache/tdabench")
    down.add_argument("--no-progress", action="store_true", help="no progress bars")
    down.add_argument("--device", default="cpu",
                      help="auto, cpu (default) or cuda[:k]: where the final models, further training and estimators run")


def _float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


def _add_concepts(sub) -> None:
    """`tdabench concepts`: a concept across layers and removal of its top-attributed data (tdabench/concepts/)."""
    con = sub.add_parser("concepts", help="probe the task's concept on every layer (accuracy, L1 sparsity, "
                         "estimators' agreement per layer), then remove its top-attributed training data and retrain")
    con.set_defaults(handler=cmd_concepts)
    con.add_argument("--task", required=True, help="task name or spec file with a `concept` (e.g. mnist-cnn)")
    con.add_argument("--layers", type=_name_list, default=None,
                     help="comma-separated module names (default: the eligible layers, tdabench/concepts/layers.py)")
    con.add_argument("--estimators", default="grad-dot,trak",
                     help="agreement per layer with the gold standard of target probe:LAYER ('' for none; "
                          "default %(default)s)")
    con.add_argument("--gold-seeds", type=int, default=None, help="seeds of each layer's gold standard (default: the spec's)")
    con.add_argument("--gold-horizons", type=_int_list, default=None, help="its horizons (default: the spec's)")
    con.add_argument("--gold-n-train", type=int, default=None, help="its evaluated training instances (default: the spec's)")
    con.add_argument("--gold-n-test", type=int, default=None, help="its test points (default: the spec's)")
    con.add_argument("--removal", type=_name_list, default=("retrain", "further"),
                     help="removal experiment: retrain (from scratch), further (from the final model), both "
                          "(default) or '' (none)")
    con.add_argument("--removal-estimator", default="trak", help="the attribution that ranks the removed data")
    con.add_argument("--removal-layer", default=None, help="the probe attributed (default: the best layer)")
    con.add_argument("--fractions", type=_float_list, default=(0.01, 0.05, 0.1),
                     help="k as fractions of the training split (default 0.01,0.05,0.1)")
    con.add_argument("--seeds", type=int, default=3, help="seeds of the removal experiment (default %(default)s)")
    con.add_argument("--n-concept-test", type=int, default=100,
                     help="concept test points whose attributions are summed (default %(default)s)")
    con.add_argument("--horizon", type=int, default=None,
                     help="further training of the removal experiment, in the spec's unit (default: its longest)")
    con.add_argument("--metric", default="pearson", help="agreement metric of the table and plot (default %(default)s)")
    con.add_argument("--out", type=Path, default=Path("runs/concepts"), help="folder of concepts.json and concepts.png/.svg")
    con.add_argument("--cache-dir", type=Path, default=None, help="default: $TDABENCH_CACHE or ~/.cache/tdabench")
    con.add_argument("--no-progress", action="store_true", help="no progress bars")


def cmd_list(args: argparse.Namespace) -> int:
    from tdabench.estimators.inputs import input_label
    from tdabench.registry import estimator_names, estimators
    from tdabench.task import load_spec
    from tdabench.task.catalog import broken_task_plugins, task_origins, task_variants

    tasks = []
    for name, (path, origin) in task_origins().items():
        entry = {"name": name, "origin": origin, "file": str(path)}
        try:  # one broken spec on $TDABENCH_TASKS_PATH is reported, not fatal
            spec = load_spec(path)
            entry |= {"version": spec.version, "modality": spec.modality,
                      "variants": [f"{name}@{v}" for v in task_variants(path)]}
        except TdabenchError as err:
            entry["error"] = str(err)
        tasks.append(entry)
    tasks += [{"name": b.name, "origin": b.origin, "file": b.address, "error": b.error}
              for b in broken_task_plugins()]  # listed under its entry point's name: its tasks are unknown
    ests = [{"name": n, **estimators.origin(n).to_dict(), "uses": _declared_input(n)} for n in estimator_names()]
    if args.json:
        print(json.dumps({"tasks": tasks, "estimators": ests}, indent=2))
        return 0
    print("tasks:")
    for t in tasks:
        if "error" in t:
            print(f"  {t['name']:<24} INVALID  {t['origin']:<22} {t['error']}")
            continue
        variants = f"  (also {', '.join(t['variants'])})" if t["variants"] else ""
        print(f"  {t['name']:<24} v{t['version']}  {t['modality']:<8} {t['origin']:<22} {t['file']}{variants}")
    print("estimators:")
    for e in ests:
        where = ("adapter" if estimators.get(e["name"]).adapter_of is not None else "built-in") \
            if e["kind"] == "built-in" else f"plugin {e['distribution']} {e['version']}"
        print(f"  {e['name']:<24} {where:<28} {input_label(e['uses']):<24} {e['target']}")
    return 0


def _declared_input(name: str) -> str | None:
    """The estimator class's `uses`; None for one that cannot be loaded (its error shows when used)."""
    from tdabench.registry import estimators

    try:
        return estimators.get(name).uses
    except TdabenchError:
        return None


def cmd_compare(args: argparse.Namespace) -> int:
    from tdabench.compare import CompareOptions, headline, run_compare
    from tdabench.execution import executor_from_name
    from tdabench.report import render_terminal_table
    from tdabench.results import check_writable_folder, write_results
    from tdabench.scoring.metrics import check_metric
    from tdabench.selection import parse_estimators
    from tdabench.task import DEFAULT_TASK

    check_metric(args.metric)
    check_writable_folder(args.out)  # before the comparison runs, so its results can be written
    executor = executor_from_name(args.executor, address=args.ray_address, threads=args.unit_threads)
    options = CompareOptions(
        task=args.task or DEFAULT_TASK,
        estimators=tuple(parse_estimators(args.estimators)) if args.estimators else None,
        seeds=args.seeds, horizons=args.horizons, mode=args.mode, epsilon=args.epsilon,
        n_train=args.n_train, n_test=args.n_test, centered=args.centered, target=args.target,
        chunk_size=args.chunk_size, cache_dir=args.cache_dir, progress=not args.no_progress,
        retraining=args.retraining, retraining_seeds=args.retraining_seeds, lds_subsets=args.lds_subsets,
        final_models=args.final_models, device=args.device, dtype=args.dtype,
        against_removal=args.against_removal, tuned=args.tuned, n_validation=args.n_validation,
        tuning_metric=args.metric, executor=executor)
    with executor:  # a Ray cluster is reached (or started) before anything is trained
        results = run_compare(options)
    json_path, csv_path = write_results(results, args.out)
    print(headline(results))
    print(render_terminal_table(results, args.metric))
    print(f"\nwrote {json_path} and {csv_path}")
    _print_placements(executor)
    _write_decay_plots(results, args.metric, args.out)
    return 0


def _print_placements(executor: Executor) -> None:
    """One line on where the work units ran, for an executor outside this process."""
    if not executor.in_process and executor.placements:
        nodes = sorted({p.node for p in executor.placements})
        seconds = sum(p.seconds for p in executor.placements)
        print(f"{executor.name}: {len(executor.placements)} work units on {len(nodes)} node(s) "
              f"({', '.join(n[:8] for n in nodes)}), {seconds:.1f} s inside the units")


def _write_decay_plots(results: Results, metric: str, out: Path) -> None:
    """`out/decay_<metric>.png/.svg`; a missing matplotlib is a note, not a failure (results are written)."""
    from tdabench.report.plots import write_results_plots

    try:
        print("wrote " + " and ".join(map(str, write_results_plots(results, metric, out))))
    except MissingPackageError as err:  # any other plotting error is a bug to see, not a note
        print(f"note: no decay plot: {err}")


def _leaderboard_command(args: argparse.Namespace) -> str:
    """The command quoted in the pages: what determines their content (not --rebuild-only, --tasks,
    --cache-dir or --no-progress), so a rebuild from the same results reproduces them exactly."""
    import shlex

    parts = ["tdabench", "leaderboard"]
    if args.results:
        parts += ["--results", *map(str, args.results)]
    elif args.suite:
        parts += ["--suite", str(args.suite)]
    else:
        parts.append("--rebuild-only")
    if args.metric != "pearson":
        parts += ["--metric", args.metric]
    if args.out != Path("leaderboard"):
        parts += ["--out", str(args.out)]
    return shlex.join(parts)


def _run_suite(args: argparse.Namespace, executor: Executor) -> None:
    """Run the suite's stale comparisons on `executor` (every check first, then the runs)."""
    from tdabench.compare import default_requests
    from tdabench.execution import RAY
    from tdabench.suite import check_entry, load_suite, settings, staleness, supports_retraining
    from tdabench.suite_downstream import check_downstream

    resolve_device(args.device)  # a bad or absent device fails before any comparison

    if executor.name == RAY and resolve_device(args.device).type != "cpu":
        raise TdabenchError(f"--executor ray runs the comparisons on the workers' CPUs; it goes with --device cpu "
                            f"(got '{args.device}')")
    suite = load_suite(args.suite)
    entries = suite.select(args.tasks.split(",") if args.tasks else None)
    for entry in entries:
        check_entry(suite, entry)
        check_downstream(suite, entry, cache_dir=args.cache_dir)
    retraining = supports_retraining()
    defaults = [r.label for r in default_requests()]
    plan = []
    for entry in entries:
        wanted = settings(entry, defaults, retraining)
        reason = staleness(entry, args.out, wanted)
        print(f"{entry.task}: {'up to date' if reason is None else reason}")
        if reason is not None:
            plan.append((entry, wanted))
        if entry.retraining and not retraining:
            print(f"{entry.task}: note: this tdabench cannot run retraining {list(entry.retraining)}; skipped")
    down = _downstream_plan(entries, args.out, defaults, cache_dir=args.cache_dir, progress=not args.no_progress)
    if plan:
        _run_comparisons(plan, args, executor)
    _run_downstream_plan(down, args.out, cache_dir=args.cache_dir, progress=not args.no_progress, device=args.device)


def _run_comparisons(plan: list, args: argparse.Namespace, executor: Executor) -> None:
    """The stale comparisons of a suite on `executor`, each results file written as it arrives."""
    from tdabench.suite import run_entries

    with executor:  # a Ray cluster is reached (or started) before anything is trained
        where = "in this process" if executor.in_process else f"as {len(plan)} {executor.name} tasks"
        print(f"running {len(plan)} comparison(s) {where}: {', '.join(e.task for e, _ in plan)}")
        for entry, path in run_entries(plan, args.out, executor, cache_dir=args.cache_dir,
                                       progress=not args.no_progress, device=args.device):
            print(f"{entry.task}: wrote {path}")
    _print_placements(executor)


def _downstream_plan(entries: tuple, out: Path, defaults: list[str], **common: object) -> list:
    """(entry, wanted settings) of the entries whose downstream checks are missing or stale (printed)."""
    from tdabench.suite_downstream import downstream_status

    plan = []
    for entry, wanted, reason in downstream_status(entries, out, defaults, **common):
        print(f"{entry.task}: downstream {'up to date' if reason is None else reason}")
        plan += [] if reason is None else [(entry, wanted)]
    return plan


def _run_downstream_plan(plan: list, out: Path, **common: object) -> None:
    """The stale downstream checks of a suite, in this process, each file written when done."""
    from tdabench.suite_downstream import run_downstream_entries

    if plan:
        print(f"running the downstream checks of {len(plan)} task(s) in this process: "
              + ", ".join(e.task for e, _ in plan))
    for entry, path in run_downstream_entries(plan, out, **common):
        print(f"{entry.task}: wrote {path}")


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from tdabench.execution import LOCAL, executor_from_name
    from tdabench.report import build_leaderboard, read_relative, results_files, write_leaderboard
    from tdabench.results import check_writable_folder
    from tdabench.scoring.metrics import check_metric
    from tdabench.suite_downstream import downstream_payloads

    check_metric(args.metric)
    executor = executor_from_name(args.executor, address=args.ray_address, threads=args.unit_threads)
    if (args.executor != LOCAL or args.unit_threads is not None) and not (args.suite and not args.rebuild_only):
        raise TdabenchError("--executor and --unit-threads say where a suite's comparisons run; they go with "
                            "--suite (and not --rebuild-only)")
    if args.rebuild_only and args.results:
        raise TdabenchError("--rebuild-only rebuilds from OUT/results; it does not go with --results")
    if args.tasks and not args.suite:
        raise TdabenchError("--tasks selects suite entries; it needs --suite")
    if not (args.results or args.suite or args.rebuild_only):
        raise TdabenchError("give --results FILES, --suite FILE or --rebuild-only")
    check_writable_folder(args.out)
    if args.suite and not args.rebuild_only:
        _run_suite(args, executor)
    paths = args.results or results_files(args.out / "results")
    if not paths:
        raise TdabenchError(f"no results files under {args.out / 'results'}; run with --suite first")
    tables = build_leaderboard(read_relative(paths, args.out), args.metric)
    written = write_leaderboard(tables, args.out, _leaderboard_command(args),
                                downstream=downstream_payloads(paths, args.out))
    print(f"wrote {len(written)} files to {args.out}: " + ", ".join(p.name for p in written[:3]) + ", plots/")
    return 0


def cmd_downstream(args: argparse.Namespace) -> int:
    from tdabench.downstream.results import render_table, write_downstream
    from tdabench.downstream.run import DownstreamOptions, run_downstream
    from tdabench.results import check_writable_folder
    from tdabench.selection import parse_estimators
    from tdabench.task import DEFAULT_TASK

    check_writable_folder(args.out)
    options = DownstreamOptions(
        task=args.task or DEFAULT_TASK, checks=tuple(args.checks),
        estimators=tuple(parse_estimators(args.estimators)) if args.estimators else None,
        n_test=args.n_test, top_k=args.top_k, ks=tuple(args.ks), horizon=args.horizon, retrain=args.retrain,
        **({} if args.retrain_budget is None else {"retrain_budget": args.retrain_budget}),
        noise=args.noise, gold_seeds=args.gold_seeds, gold_instances=args.gold_instances, shortcut=args.shortcut,
        shortcut_class=args.shortcut_class, cache_dir=args.cache_dir, progress=not args.no_progress,
        device=args.device)
    compared = _compare_results_for(options.task, args.compare_results, args.compare_metric)
    payload = run_downstream(options)
    print(render_table(payload))
    print(f"\nwrote {write_downstream(payload, args.out)}")
    _write_downstream_plot(payload, args.out, compared, args.compare_metric)
    return 0


def cmd_interactions(args: argparse.Namespace) -> int:
    from tdabench.interactions import InteractionOptions, render_interactions, salient_interactions, write_interactions
    from tdabench.results import check_writable_folder
    from tdabench.task import DEFAULT_TASK

    check_writable_folder(args.out)
    options = InteractionOptions(task=args.task or DEFAULT_TASK, test_indices=tuple(args.test_index),
                                 max_order=args.max_order, threshold=args.threshold, relative=args.relative,
                                 horizons=args.horizons, seed=args.seed, cache_dir=args.cache_dir,
                                 progress=not args.no_progress)
    payload = salient_interactions(options)
    print(render_interactions(payload, args.top))
    print(f"\nwrote {write_interactions(payload, args.out)}")
    return 0


def cmd_concepts(args: argparse.Namespace) -> int:
    from tdabench.concepts.options import ConceptOptions
    from tdabench.concepts.results import layers_table, removal_table, write_concepts
    from tdabench.concepts.run import run_concepts
    from tdabench.results import check_writable_folder
    from tdabench.scoring.metrics import check_metric
    from tdabench.selection import parse_estimators

    check_metric(args.metric)
    check_writable_folder(args.out)
    removal = parse_estimators(args.removal_estimator)
    if len(removal) != 1:
        raise TdabenchError(f"--removal-estimator takes one estimator, got '{args.removal_estimator}'")
    options = ConceptOptions(
        task=args.task, layers=args.layers, estimators=tuple(parse_estimators(args.estimators)) if args.estimators else (),
        gold_seeds=args.gold_seeds, gold_horizons=args.gold_horizons, gold_n_train=args.gold_n_train,
        gold_n_test=args.gold_n_test, removal=tuple(args.removal), removal_estimator=removal[0],
        removal_layer=args.removal_layer, fractions=tuple(args.fractions), seeds=args.seeds,
        n_concept_test=args.n_concept_test, horizon=args.horizon, cache_dir=args.cache_dir,
        progress=not args.no_progress)
    payload = run_concepts(options)
    print(layers_table(payload, args.metric))
    print(removal_table(payload))
    print(f"\nwrote {write_concepts(payload, args.out)}")
    try:
        from tdabench.report.concepts_plot import write_concepts_plot

        print("wrote " + " and ".join(map(str, write_concepts_plot(payload, args.out, args.metric))))
    except MissingPackageError as err:
        print(f"note: no concepts plot: {err}")
    return 0


def _compare_results_for(task: str, path: Path | None, metric: str) -> Results | None:
    """The compare results file of `task` (read and checked before anything trains), or None."""
    from tdabench.results import read_results
    from tdabench.scoring.metrics import check_metric
    from tdabench.task import find_spec

    check_metric(metric)
    if path is None:
        return None
    results, spec = read_results(path), find_spec(task)
    if results.task.spec_hash != spec.spec_hash:
        raise TdabenchError(f"{path}: results of task '{results.task.name}' ({results.task.spec_hash[:15]}), "
                            f"not of '{spec.name}' ({spec.spec_hash[:15]})")
    return results


def _write_downstream_plot(payload: dict, out: Path, results: Results | None, metric: str) -> None:
    """`out/downstream.png/.svg`; a missing matplotlib is a note, not a failure."""
    from tdabench.report.downstream_plot import write_downstream_plot

    try:
        print("wrote " + " and ".join(map(str, write_downstream_plot(payload, out, results, metric))))
    except MissingPackageError as err:
        print(f"note: no downstream plot: {err}")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
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
