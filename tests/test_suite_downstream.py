"""Downstream evaluations in the leaderboard suite: the `downstream` field, staleness, and `tdabench leaderboard
--suite` / `--rebuild-only` with the comparison and the downstream run replaced by stubs (nothing trains)."""

from __future__ import annotations

from pathlib import Path

import pytest

import tdabench.suite
import tdabench.suite_downstream
from tdabench.cli import main
from tdabench.downstream.options import task_mismatch
from tdabench.downstream.results import DOWNSTREAM_SCHEMA_VERSION, KIND, read_downstream, write_downstream
from tdabench.errors import SpecError
from tdabench.results import write_results
from tdabench.suite import SUITE_KEY, SuiteEntry, load_suite, parse_suite, results_dir, with_settings
from tdabench.suite_downstream import (check_downstream, downstream_options, downstream_payloads, downstream_settings,
                                       downstream_staleness, entry_checks)
from tdabench.task import find_spec

from test_suite import fake_results, write


def fake_payload(task: str, spec_hash: str, wanted: dict | None = None, auc: float = 0.9) -> dict:
    """A downstream payload with mislabel and randomisation entries for grad-dot."""
    payload = {"schema_version": DOWNSTREAM_SCHEMA_VERSION, "kind": KIND, "task": {"name": task, "version": 1,
                                                                                   "spec_hash": spec_hash},
               "settings": {"estimators": ["grad-dot"], "gold_seeds": 1, "top_k": 10, "n_test": 20},
               "checks": {"mislabel": {"task": {"name": task + "@noisy"}, "n_flipped": 4, "n_train": 40,
                                       "gold_subset": 40, "gold": [],
                                       "estimators": {"grad-dot": {"auc": auc, "auc_low": auc - 0.1,
                                                                   "auc_high": min(1.0, auc + 0.1),
                                                                   "precision_at_flipped": 0.75}}},
                          "randomization": {"grad-dot": {"mean": 0.2, "ci_low": 0.1, "ci_high": 0.3}}},
               "errors": {}}
    return payload | ({SUITE_KEY: wanted} if wanted is not None else {})


def test_the_downstream_field_is_parsed_and_validated(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, "tasks:\n  - {task: breast-cancer-mlp, seeds: 2, downstream: true}\n"
                                       "  - {task: digits-mlp, seeds: 2, downstream: [cardinality, shortcut]}\n"
                                       "  - {task: diabetes-mlp, seeds: 2}\n"))
    assert [e.downstream for e in suite.entries] == [True, ("cardinality", "shortcut"), False]
    assert entry_checks(suite.entries[0]) == ("mislabel", "randomization", "brittleness", "cardinality")
    assert entry_checks(suite.entries[1]) == ("cardinality", "shortcut")
    assert entry_checks(suite.entries[2]) == ()
    assert entry_checks(SuiteEntry("diabetes-mlp", 2, downstream=True)) == ("randomization", "cardinality")
    assert "shortcut" in entry_checks(SuiteEntry("digits-mlp", 2, downstream=True))


def test_a_downstream_mapping_sets_checks_and_options(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, "tasks:\n  - {task: breast-cancer-mlp, seeds: 2, downstream: "
                                       "{checks: [mislabel, brittleness], horizon: 10, ks: [1, 5]}}\n"
                                       "  - {task: digits-mlp, seeds: 2, downstream: {n_test: 5}}\n"))
    first, second = suite.entries
    assert first.downstream == ("mislabel", "brittleness")
    assert first.downstream_options == (("horizon", 10), ("ks", (1, 5)))
    options = downstream_options(first, progress=False)
    assert (options.checks, options.horizon, options.ks, options.n_test) == (("mislabel", "brittleness"), 10, (1, 5), 20)
    assert second.downstream is True and downstream_options(second).n_test == 5
    assert downstream_settings(options, ["grad-dot"])["horizon"] == 10


@pytest.mark.parametrize("value, field, expected", [
    ("{horizon: 0}", "tasks[0].downstream", "horizon must be a positive integer"),
    ("{seeds: 3}", "tasks[0].downstream.seeds", "one of the keys checks, n_test"),
    ("{checks: [nope]}", "tasks[0].downstream.checks", "a list of distinct checks"),
])
def test_a_bad_downstream_mapping_names_the_field(tmp_path: Path, value: str, field: str, expected: str) -> None:
    path = write(tmp_path, f"tasks:\n  - {{task: breast-cancer-mlp, seeds: 2, downstream: {value}}}\n")
    with pytest.raises(SpecError) as err:
        load_suite(path)
    assert err.value.field == field and expected in str(err.value) and len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize("value", ["[mislabel, nope]", "[]", "sometimes", "[mislabel, mislabel]"])
def test_a_bad_downstream_field_is_one_line_naming_the_field(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"tasks:\n  - {{task: breast-cancer-mlp, seeds: 2, downstream: {value}}}\n")
    with pytest.raises(SpecError) as err:
        load_suite(path)
    assert err.value.field == "tasks[0].downstream" and "a list of distinct checks from mislabel" in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_checks_that_do_not_fit_the_task_are_refused_before_anything_runs() -> None:
    suite = parse_suite({"tasks": [{"task": "diabetes-mlp", "seeds": 2, "downstream": ["mislabel"]},
                                   {"task": "breast-cancer-mlp", "seeds": 2, "downstream": ["shortcut"]}]}, "s.yaml")
    with pytest.raises(SpecError, match=r"tasks\[0\]\.downstream.*need a classification task"):
        check_downstream(suite, suite.entries[0])
    with pytest.raises(SpecError, match=r"tasks\[1\]\.downstream.*shortcut needs an image task"):
        check_downstream(suite, suite.entries[1])


def test_downstream_staleness(tmp_path: Path) -> None:
    entry = SuiteEntry("breast-cancer-mlp", 5, downstream=True)
    wanted = downstream_settings(downstream_options(entry), ["grad-dot"])
    assert wanted["task"] == "breast-cancer-mlp" and wanted["estimators"] == ["grad-dot"]
    assert wanted["checks"] == ["mislabel", "randomization", "brittleness", "cardinality"]
    assert downstream_staleness(entry, tmp_path, wanted) == "no downstream file"
    where, spec_hash = results_dir(tmp_path, entry), find_spec("breast-cancer-mlp").spec_hash
    write_downstream(fake_payload("breast-cancer-mlp", spec_hash), where)
    assert downstream_staleness(entry, tmp_path, wanted) == "other downstream settings"
    write_downstream(fake_payload("breast-cancer-mlp", "sha256:old", wanted), where)
    assert downstream_staleness(entry, tmp_path, wanted) == "task spec changed"
    write_downstream(fake_payload("breast-cancer-mlp", spec_hash, wanted), where)
    assert downstream_staleness(entry, tmp_path, wanted) is None
    assert downstream_staleness(entry, tmp_path, {**wanted, "n_test": 5}) == "other downstream settings"
    # the estimators' resolved parameters are part of the settings: a changed default makes the file stale
    damped = downstream_settings(downstream_options(entry), ["grad-dot", "if-cg(max_iter=5)"])
    assert damped["estimator_params"]["if-cg(max_iter=5)"]["damping_relative"] == "lambda-max"
    assert damped["estimator_params"]["grad-dot"] == {"batch_size": 256}
    write_downstream(fake_payload("breast-cancer-mlp", spec_hash, damped), where)
    old = {**damped, "estimator_params": {**damped["estimator_params"], "if-cg(max_iter=5)": {
        **damped["estimator_params"]["if-cg(max_iter=5)"], "damping_relative": True}}}
    assert downstream_staleness(entry, tmp_path, damped) is None
    assert downstream_staleness(entry, tmp_path, old) == "other downstream settings"


def test_payloads_are_found_beside_results_files_with_relative_origins(tmp_path: Path) -> None:
    (tmp_path / "results" / "a").mkdir(parents=True)
    write_downstream(fake_payload("a", "sha256:x"), tmp_path / "results" / "b")
    found = downstream_payloads([tmp_path / "results" / "a", tmp_path / "results" / "b" / "results.json"], tmp_path)
    assert [p["origin"] for p in found] == ["results/b/downstream.json"]


def test_the_suite_runs_stale_downstream_checks_and_the_pages_show_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    write(tmp_path, "tasks:\n  - {task: breast-cancer-mlp, seeds: 5, estimators: [grad-dot], downstream: [mislabel]}\n"
                    "  - {task: diabetes-mlp, seeds: 5, estimators: [grad-dot]}\n")
    spec_hash = {t: find_spec(t).spec_hash for t in ("breast-cancer-mlp", "diabetes-mlp")}
    ran: list[str] = []

    def fake_run(entry: SuiteEntry, wanted: dict, out_dir: Path, **common: object) -> Path:
        return write_results(with_settings(fake_results(entry.task, spec_hash[entry.task]), wanted),
                             results_dir(out_dir, entry))[0]

    def fake_downstream(options: object) -> dict:
        ran.append(options.task)
        assert options.checks == ("mislabel",) and [r.label for r in options.estimators] == ["grad-dot"]
        return fake_payload(options.task, spec_hash[options.task])
    monkeypatch.setattr(tdabench.suite, "run_entry", fake_run)
    monkeypatch.setattr(tdabench.suite_downstream, "run_downstream", fake_downstream)
    monkeypatch.chdir(tmp_path)
    assert main(["leaderboard", "--suite", "suite.yaml", "--out", "board", "--no-progress"]) == 0
    assert ran == ["breast-cancer-mlp"]
    assert "breast-cancer-mlp: downstream no downstream file" in capsys.readouterr().out
    stored = read_downstream(Path("board/results/breast-cancer-mlp/downstream.json"))
    assert stored[SUITE_KEY]["checks"] == ["mislabel"] and stored[SUITE_KEY]["estimators"] == ["grad-dot"]
    readme = Path("board/README.md").read_text()
    assert "## Downstream evaluations next to further training" in readme
    assert "| grad-dot | final model only | 0.500 [0.480, 0.520] | 1 | 0.900 [0.800, 1.000] | 1 |" in readme
    assert "Downstream file: `results/breast-cancer-mlp/downstream.json`" in readme
    assert '<section id="downstream">' in Path("board/index.html").read_text()
    assert "breast-cancer-mlp,1," in Path("board/downstream.csv").read_text()
    assert Path("board/plots/breast-cancer-mlp_downstream.png").is_file()
    before = {p: p.read_bytes() for p in Path("board").rglob("*") if p.is_file()}

    # current now: nothing runs, and a rebuild reproduces every page and plot byte for byte
    assert main(["leaderboard", "--suite", "suite.yaml", "--out", "board", "--no-progress"]) == 0
    assert ran == ["breast-cancer-mlp"] and "downstream up to date" in capsys.readouterr().out
    assert main(["leaderboard", "--suite", "suite.yaml", "--out", "board", "--rebuild-only"]) == 0
    assert {p: p.read_bytes() for p in Path("board").rglob("*") if p.is_file()} == before


def test_a_retrain_over_budget_is_refused_before_the_suites_comparisons(tmp_path: Path) -> None:
    suite = parse_suite({"tasks": [{"task": "digits-mlp", "seeds": 2,  # every native estimator: 1.65e6 > 1e6
                                    "downstream": {"checks": ["brittleness"], "retrain": True}}]}, "s.yaml")
    with pytest.raises(SpecError, match=r"tasks\[0\]\.downstream.*--retrain would train .* > the budget") as err:
        check_downstream(suite, suite.entries[0], cache_dir=tmp_path)
    assert len(str(err.value).splitlines()) == 1
    assert not (tmp_path / "final_models").exists()  # nothing was trained


def test_the_repository_suites_downstream_entries_fit_their_tasks(tmp_path: Path) -> None:
    suite = load_suite(Path(__file__).resolve().parents[1] / "benchmarks" / "leaderboard_suite.yaml")
    asking = [e for e in suite.entries if entry_checks(e)]
    assert {e.task for e in asking} >= {"breast-cancer-logreg", "breast-cancer-mlp"}
    for entry in asking:
        if find_spec(entry.task).modality == "text":  # its data are MiniLM features (minutes to compute here)
            assert task_mismatch(find_spec(entry.task), entry_checks(entry)) is None
        else:
            check_downstream(suite, entry, cache_dir=tmp_path)
        downstream_options(entry)  # its settings are valid together
