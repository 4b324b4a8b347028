"""Leaderboard suites: parsing and its errors, staleness, CompareOptions, and `tdabench leaderboard
--suite` / `--rebuild-only` with the comparison replaced by a stub (nothing is trained here)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import tdabench.compare
import tdabench.suite
from tdabench.cli import main
from tdabench.errors import SpecError
from tdabench.compare import recorded_params
from tdabench.registry import make_estimator
from tdabench.results import FITTED_PREFIX, GoldSummary, NoiseCeiling, Record, Results, TaskInfo, write_results
from tdabench.selection import EstimatorRequest
from tdabench.results import read_results
from tdabench.suite import (SUITE_KEY, SuiteEntry, check_entry, compare_options, load_suite,
                            parse_suite, results_dir, run_entry, settings, staleness, with_settings)
from tdabench.task import find_spec

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_the_repository_suite_covers_every_built_in_task() -> None:
    """The committed leaderboard must cover every built-in task, with valid entries."""
    from tdabench.task import available_tasks

    suite = load_suite(REPO / "benchmarks" / "leaderboard_suite.yaml")
    assert sorted(e.task for e in suite.entries) == sorted(available_tasks())
    for entry in suite.entries:
        check_entry(suite, entry)  # raises on an unknown task, estimator or parameter


def test_every_field(tmp_path: Path) -> None:
    path = write(tmp_path, """
tasks:
  - task: breast-cancer-mlp
    seeds: 3
    estimators: [grad-dot, "if-explicit(damping=0.1,curvature=gauss-newton)"]
    n_train: 20
    n_test: 10
    horizons: [1, 5]
    target: margin
    retraining: [lds]
  - {task: diabetes-mlp, seeds: 2, estimators: "tracin,kfac(damping=0.5)"}
""")
    suite = load_suite(path)
    assert suite.path == str(path)
    assert suite.entries == (
        SuiteEntry("breast-cancer-mlp", 3,
                   (EstimatorRequest("grad-dot"),
                    EstimatorRequest("if-explicit", {"damping": 0.1, "curvature": "gauss-newton"})),
                   20, 10, (1, 5), "margin", ("lds",)),
        SuiteEntry("diabetes-mlp", 2, (EstimatorRequest("tracin"),
                                       EstimatorRequest("kfac", {"damping": 0.5}))))
    assert [e.task for e in suite.select(["diabetes-mlp"])] == ["diabetes-mlp"]
    with pytest.raises(Exception, match="no entry for task.*mnist-cnn.*the suite has: breast"):
        suite.select(["mnist-cnn"])


@pytest.mark.parametrize("text, field, expected", [
    ("- task: a", "<file>", "a mapping with the key 'tasks'"),
    ("tasks:\n  - {task: a, seeds: 2}\ntune: true", "<file>", "a mapping with the key 'tasks'"),
    ("tasks:\n  - {task: a, seeds: 2}\ntuned: yes please", "tuned", "true or false"),
    ("tasks:\n  - {task: a, seeds: 2, tuned: 1}", "tasks[0].tuned", "true or false"),
    ("tasks:\n  - {task: a, seeds: 2, search_spaces: {kfac: {damping: [1]}}}", "tasks[0].search_spaces",
     "tuned: true with it"),
    ("tasks:\n  - {task: a, seeds: 2, tuned: true, search_spaces: [kfac]}", "tasks[0].search_spaces",
     "a mapping of estimator names"),
    ("tasks:\n  - {task: a, seeds: 2, n_validation: 5}", "tasks[0].n_validation", "tuned: true with it"),
    ("tasks:\n  - {task: a, seeds: 2, tuned: true, n_validation: 0}", "tasks[0].n_validation", "a positive integer"),
    ("tasks:\n  - {task: a, seeds: 2, tuned: true, search_spaces: {kfac: {damping: []}}}",
     "tasks[0].search_spaces.kfac.damping", "a non-empty list"),
    ("tasks: []", "tasks", "a non-empty list"),
    ("tasks: [grad-dot]", "tasks[0]", "a mapping with keys"),
    ("tasks:\n  - {task: a}", "tasks[0].seeds", "the number of further-training seeds"),
    ("tasks:\n  - {task: a, seeds: five}", "tasks[0].seeds", "a positive integer"),
    ("tasks:\n  - {task: a, seeds: 0}", "tasks[0].seeds", "a positive integer"),
    ("tasks:\n  - {task: a, seeds: 2, seed: 3}", "tasks[0].seed", "one of the keys"),
    ("tasks:\n  - {task: ../x, seeds: 2}", "tasks[0].task", "a task name"),
    ("tasks:\n  - {seeds: 2}", "tasks[0].task", "a task name"),
    ("tasks:\n  - {task: a, seeds: 2}\n  - {task: b, seeds: 2, n_test: -1}", "tasks[1].n_test",
     "a positive integer"),
    ("tasks:\n  - {task: a, seeds: 2, horizons: [1, 0]}", "tasks[0].horizons", "a positive integer"),
    ("tasks:\n  - {task: a, seeds: 2, horizons: 5}", "tasks[0].horizons", "a non-empty list"),
    ("tasks:\n  - {task: a, seeds: 2, target: 3}", "tasks[0].target", "a target name"),
    ("tasks:\n  - {task: a, seeds: 2, retraining: [loo, brute]}", "tasks[0].retraining",
     "distinct values from loo, lds"),
    ("tasks:\n  - {task: a, seeds: 2, retraining: lds}", "tasks[0].retraining", "a list"),
    ("tasks:\n  - {task: a, seeds: 2, estimators: ['if-cg(']}", "tasks[0].estimators",
     "unbalanced parentheses"),
    ("tasks:\n  - {task: a, seeds: 2, estimators: [grad-dot, grad-dot]}", "tasks[0].estimators",
     "each estimator once"),
    ("tasks:\n  - {task: a, seeds: 2, estimators: []}", "tasks[0].estimators", "a non-empty list"),
    ("tasks:\n  - {task: a, seeds: 2}\n  - {task: a, seeds: 3}", "tasks[1].task", "each task once"),
    ("tasks: [\n", "<file>", "valid YAML"),
])
def test_errors_name_the_file_and_the_field(tmp_path: Path, text: str, field: str,
                                            expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        load_suite(path)
    assert (err.value.path, err.value.field) == (str(path), field)
    assert str(err.value).startswith(f"{path}: field '{field}': expected ")
    assert expected in str(err.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="a readable YAML file"):
        load_suite(tmp_path / "nope.yaml")


def test_tuned_and_search_spaces_per_entry_or_for_the_whole_suite() -> None:
    suite = parse_suite({"tuned": True, "search_spaces": {"kfac": {"damping": [1, 10]}},
                         "tasks": [{"task": "breast-cancer-mlp", "seeds": 2},
                                   {"task": "diabetes-mlp", "seeds": 2, "tuned": False, "search_spaces": None},
                                   {"task": "digits-mlp", "seeds": 2, "search_spaces": {"if-cg": {"rank": [1]}}}]},
                        "s.yaml")
    first, second, third = suite.entries
    assert (first.tuned, first.search_spaces, first.n_validation) == (True, {"kfac": {"damping": [1, 10]}}, None)
    assert (second.tuned, second.search_spaces) == (False, None)
    options = compare_options(first, progress=False)
    assert options.tuned and options.search_spaces == {"kfac": {"damping": [1, 10]}}
    assert settings(first, ["grad-dot"], True)["tuned"] is True
    assert "tuned" not in settings(second, ["grad-dot"], True)  # results made before the key stay current
    assert not compare_options(second, progress=False).tuned
    check_entry(suite, first)
    assert "n_validation" not in settings(first, ["grad-dot"], True)
    limited = dataclasses.replace(first, n_validation=7)
    assert settings(limited, ["grad-dot"], True)["n_validation"] == 7
    assert compare_options(limited, progress=False).n_validation == 7
    with pytest.raises(SpecError, match=r"^s\.yaml: field 'tasks\[2\]\.search_spaces\.if-cg': .*no parameter 'rank'"):
        check_entry(suite, third)


def test_check_entry_names_unknown_tasks_and_estimators() -> None:
    suite = parse_suite({"tasks": [{"task": "no-such-task", "seeds": 2},
                                   {"task": "breast-cancer-mlp", "seeds": 2,
                                    "estimators": ["grad-dot", "nope(k=1)"]}]}, "s.yaml")
    with pytest.raises(SpecError, match=r"^s\.yaml: field 'tasks\[0\]\.task': expected a known task "
                                        r"\(unknown task 'no-such-task'"):
        check_entry(suite, suite.entries[0])
    with pytest.raises(SpecError, match=r"^s\.yaml: field 'tasks\[1\]\.estimators': .*unknown "
                                        r"estimator 'nope'"):
        check_entry(suite, suite.entries[1])


def test_settings_resolve_defaults_and_drop_unsupported_retraining() -> None:
    entry = SuiteEntry("breast-cancer-mlp", 5, None, None, 50, (1, 2), None, ("loo", "lds"))
    assert settings(entry, ["grad-dot", "tracin"], True) == {
        "task": "breast-cancer-mlp", "seeds": 5, "estimators": ["grad-dot", "tracin"],
        "n_train": None, "n_test": 50, "horizons": [1, 2], "target": None,
        "retraining": ["loo", "lds"]}
    assert settings(entry, ["grad-dot"], False)["retraining"] == []
    named = dataclasses.replace(entry, estimators=(EstimatorRequest("kfac", {"damping": 0.5}),))
    assert settings(named, ["grad-dot"], True)["estimators"] == ["kfac(damping=0.5)"]


@dataclasses.dataclass(frozen=True)
class OptionsWithRetraining:
    task: str = ""
    estimators: tuple | None = None
    seeds: int | None = None
    horizons: tuple | None = None
    n_train: int | None = None
    n_test: int | None = None
    target: str | None = None
    progress: bool = True
    retraining: tuple[str, ...] = ()


def test_compare_options_pass_retraining_only_when_the_field_exists(
        monkeypatch: pytest.MonkeyPatch) -> None:
    entry = SuiteEntry("diabetes-mlp", 3, None, 10, None, (1,), "loss", ("lds",))
    monkeypatch.setattr(tdabench.suite, "CompareOptions", OptionsWithRetraining)
    assert compare_options(entry, progress=False) == OptionsWithRetraining(
        "diabetes-mlp", None, 3, (1,), 10, None, "loss", False, ("lds",))
    monkeypatch.undo()
    options = compare_options(entry, progress=False)
    fields = {f.name for f in dataclasses.fields(type(options))}
    assert (options.task, options.seeds, options.n_train, options.horizons, options.progress) == \
        ("diabetes-mlp", 3, 10, (1,), False)
    assert getattr(options, "retraining", ()) == (("lds",) if "retraining" in fields else ())


def fake_results(task: str, spec_hash: str, mean: float = 0.5) -> Results:
    gold = GoldSummary("removal", 5, "epoch", [1, 10], 20, 10, False,
                       [NoiseCeiling(1, "pearson", 0.9), NoiseCeiling(10, "pearson", 0.8)])
    params = recorded_params(make_estimator("grad-dot")) | {f"{FITTED_PREFIX}note": "fitted state is not compared"}
    records = [Record("grad-dot", params, h, "pearson", mean, 0.01, 10, 0, None, mean - 0.02,
                      mean + 0.02) for h in (1, 10)]
    return Results(TaskInfo(task, 1, spec_hash), gold, records, {}, {}, "0.1.0", None,
                   "2024-05-01T00:00:00+00:00")


def test_staleness(tmp_path: Path) -> None:
    entry = SuiteEntry("breast-cancer-mlp", 5)
    wanted = settings(entry, ["grad-dot"], False)
    assert staleness(entry, tmp_path, wanted) == "no results file"
    spec_hash = find_spec("breast-cancer-mlp").spec_hash
    where = results_dir(tmp_path, entry)
    assert where == tmp_path / "results" / "breast-cancer-mlp"
    write_results(fake_results("breast-cancer-mlp", spec_hash), where)
    assert staleness(entry, tmp_path, wanted) == "other settings"
    write_results(with_settings(fake_results("breast-cancer-mlp", "sha256:old"), wanted), where)
    assert staleness(entry, tmp_path, wanted) == "task spec changed"
    write_results(with_settings(fake_results("breast-cancer-mlp", spec_hash), wanted), where)
    assert staleness(entry, tmp_path, wanted) is None
    assert staleness(entry, tmp_path, {**wanted, "seeds": 6}) == "other settings"


def test_results_made_with_other_estimator_defaults_are_stale(tmp_path: Path) -> None:
    entry = SuiteEntry("breast-cancer-mlp", 5, (EstimatorRequest("grad-dot"), EstimatorRequest("if-cg", {"max_iter": 5})))
    wanted = settings(entry, [], False)
    current = fake_results("breast-cancer-mlp", find_spec("breast-cancer-mlp").spec_hash)
    now = recorded_params(make_estimator("if-cg", max_iter=5))
    old = now | {"damping": 10000.0, "damping_relative": True}  # the default before the λ_max rule
    for params, reason in ((now, None), (old, "estimator parameters changed (if-cg(max_iter=5): damping 10000.0 → 1.0, "
                                               "damping_relative True → 'lambda-max')")):
        records = current.records + [dataclasses.replace(current.records[0], estimator="if-cg(max_iter=5)", params=params)]
        write_results(with_settings(dataclasses.replace(current, records=records), wanted), results_dir(tmp_path, entry))
        assert staleness(entry, tmp_path, wanted) == reason
    # an estimator without records (it failed) is not compared
    write_results(with_settings(current, wanted), results_dir(tmp_path, entry))
    assert staleness(entry, tmp_path, wanted) is None


def test_run_entry_stores_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def fake_compare(options: object) -> Results:
        seen.append(options)
        return fake_results("diabetes-mlp", "sha256:x")
    monkeypatch.setattr(tdabench.suite, "run_compare", fake_compare)
    entry = SuiteEntry("diabetes-mlp", 4)
    path = run_entry(entry, {"marker": 1}, tmp_path, progress=False)
    assert path == tmp_path / "results" / "diabetes-mlp" / "results.json"
    assert read_results(path).extra == {SUITE_KEY: {"marker": 1}}
    assert [(o.task, o.seeds, o.progress) for o in seen] == [("diabetes-mlp", 4, False)]


def test_leaderboard_suite_runs_only_stale_entries_then_rebuilds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    suite_path = write(tmp_path, "tasks:\n  - {task: breast-cancer-mlp, seeds: 5, estimators: [grad-dot]}\n"
                                 "  - {task: diabetes-mlp, seeds: 5, estimators: [grad-dot]}\n")
    out = tmp_path / "board"
    suite = load_suite(suite_path)
    current = settings(suite.entries[1], [], tdabench.suite.supports_retraining())
    write_results(with_settings(fake_results("diabetes-mlp", find_spec("diabetes-mlp").spec_hash, 0.7),
                                current), results_dir(out, suite.entries[1]))
    calls = []

    def fake_run(entry: SuiteEntry, wanted: dict, out_dir: Path, **common: object) -> Path:
        calls.append((entry.task, wanted, Path(out_dir), common))
        res = with_settings(fake_results(entry.task, find_spec(entry.task).spec_hash), wanted)
        return write_results(res, results_dir(out_dir, entry))[0]
    monkeypatch.setattr(tdabench.suite, "run_entry", fake_run)
    monkeypatch.chdir(tmp_path)
    assert main(["leaderboard", "--suite", "suite.yaml", "--out", "board", "--no-progress"]) == 0
    assert [(task, out_dir, common["progress"]) for task, _, out_dir, common in calls] == \
        [("breast-cancer-mlp", Path("board"), False)]
    assert calls[0][1]["estimators"] == ["grad-dot"]
    printed = capsys.readouterr().out
    assert "breast-cancer-mlp: no results file" in printed and "diabetes-mlp: up to date" in printed
    readme = (out / "README.md").read_text()
    assert "Command: `tdabench leaderboard --suite suite.yaml --out board`" in readme
    assert "- `results/breast-cancer-mlp/results.json`\n- `results/diabetes-mlp/results.json`" in readme
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "breast-cancer-mlp_pearson.png", "breast-cancer-mlp_pearson.svg",
        "diabetes-mlp_pearson.png", "diabetes-mlp_pearson.svg"]
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    # now every entry is current: nothing runs, and the pages come out byte for byte the same
    assert main(["leaderboard", "--suite", "suite.yaml", "--out", "board", "--no-progress"]) == 0
    assert len(calls) == 1
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # --rebuild-only never runs anything, even for a stale entry
    (out / "results" / "breast-cancer-mlp" / "results.json").unlink()
    (out / "results" / "breast-cancer-mlp" / "results.csv").unlink()
    assert main(["leaderboard", "--suite", "suite.yaml", "--out", "board", "--rebuild-only"]) == 0
    assert len(calls) == 1
    assert "results/breast-cancer-mlp" not in (out / "README.md").read_text()


def test_leaderboard_argument_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["leaderboard", "--out", str(tmp_path)]) == 2
    assert "give --results FILES, --suite FILE or --rebuild-only" in capsys.readouterr().err
    assert main(["leaderboard", "--rebuild-only", "--out", str(tmp_path)]) == 2
    assert f"no results files under {tmp_path / 'results'}" in capsys.readouterr().err
    assert main(["leaderboard", "--tasks", "a", "--rebuild-only", "--out", str(tmp_path)]) == 2
    assert "--tasks selects suite entries; it needs --suite" in capsys.readouterr().err
    suite = write(tmp_path, "tasks:\n  - {task: no-such-task, seeds: 2}\n")
    assert main(["leaderboard", "--suite", str(suite), "--out", str(tmp_path)]) == 2
    assert f"{suite}: field 'tasks[0].task': expected a known task" in capsys.readouterr().err
