"""Executors: the same numbers wherever the work units run, resumption, faults, and bad input.

The Ray tests share one local Ray instance of 2 CPUs (module fixture, ~7 s to start and stop).
Records are compared field by field between the local and the Ray executor, from results.json with
the timing fields removed; the worker processes run torch on 1 thread, this process on 2.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, ClassVar

import pytest
import torch

import tdabench.storage
import tdabench.truths.further.runner as runner
from estimator_helpers import Raises
from gold_helpers import write_small_spec
from tdabench.cli import main
from tdabench.compare import CompareOptions, run_compare
from tdabench.errors import TdabenchError
from tdabench.execution import LocalExecutor, RayExecutor, executor_from_name, open_executor
from tdabench.registry import estimators
from tdabench.results import write_results
from tdabench.selection import parse_estimators
from tdabench.storage import UnitStore, run_seeds, run_units
from tdabench.truths.further.runner import GoldSeed

ESTIMATORS = "grad-dot,if-explicit,test-raises"
TIMING = ("seconds", "gold_standard_s", "fit_s", "score_s", "peak_mem_mb")




@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray instance (2 CPUs) for the module; this module's functions travel by value."""
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    executor = RayExecutor(num_cpus=2).start()
    yield executor
    executor.close()
    assert not ray.is_initialized()


@pytest.fixture
def on_ray(ray_cluster) -> RayExecutor:
    """A fresh RayExecutor (empty placements) on the module's Ray instance."""
    return RayExecutor()


def without_timing(value: Any) -> Any:
    """A JSON value with every timing field (TIMING) removed, recursively."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def comparable(path: Path) -> dict:
    """results.json without its costs, timing, date, version and git hash: what must not depend on the
    executor (records, errors, task, gold standard, the retraining summaries, the suite settings)."""
    data = json.loads(path.read_text())
    return without_timing({k: v for k, v in data.items() if k not in ("cost", "date", "tdabench_version", "git_hash")})


def assert_same_results(ours: Path, reference: Path) -> None:
    a, b = comparable(ours), comparable(reference)
    assert len(a["records"]) == len(b["records"]) > 0
    for ra, rb in zip(a["records"], b["records"]):  # field by field, so a failure names the field
        assert ra.keys() == rb.keys()
        for key in ra:
            assert ra[key] == rb[key], (ra["estimator"], ra["metric"], ra.get("ground_truth"), key)
    assert a == b


def compare_options(spec: Path, cache: Path, executor: Any = "local", **extra: Any) -> CompareOptions:
    return CompareOptions(task=str(spec), estimators=tuple(parse_estimators(ESTIMATORS)), progress=False,
                          cache_dir=cache, retraining=("loo", "lds"), retraining_seeds=2, lds_subsets=5,
                          executor=executor, **extra)


@pytest.fixture(scope="module")
def spec_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("specs")
    write_small_spec(folder, "small-a")
    write_small_spec(folder, "small-b", **{"model.hidden": [6], "gold_standard.horizons": [2]})
    return folder


@pytest.fixture(scope="module")
def local_reference(spec_folder, tmp_path_factory) -> Path:
    """results.json of the gold standard, LOO and LDS with the local executor (its own cache)."""
    folder = tmp_path_factory.mktemp("local")
    estimators.names()
    saved = dict(estimators._entries)
    estimators.register("test-raises")(Raises)
    try:
        results = run_compare(compare_options(spec_folder / "small-a.yaml", folder / "cache"))
    finally:
        estimators._entries = saved
    return write_results(results, folder / "out")[0]


# ---- no Ray needed ------------------------------------------------------------------------------

def test_executors_by_name_and_their_checks():
    assert isinstance(executor_from_name("local"), LocalExecutor)
    ray_ex = executor_from_name("ray", address="10.0.0.1:6379")
    assert isinstance(ray_ex, RayExecutor) and ray_ex.threads == 1 and ray_ex.address == "10.0.0.1:6379"
    assert executor_from_name("ray", threads=3).threads == 3
    with pytest.raises(TdabenchError, match="unknown executor 'rey'; valid executors: local, ray; did you mean 'ray'"):
        executor_from_name("rey")
    with pytest.raises(TdabenchError, match="--ray-address goes with --executor ray"):
        executor_from_name("local", address="10.0.0.1:6379")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(TdabenchError, match="must be a positive integer"):
            LocalExecutor(bad)
    with pytest.raises(TdabenchError, match="max_retries"):
        RayExecutor(max_retries=-1)
    with pytest.raises(TdabenchError, match="num_cpus sizes a local Ray instance"):
        RayExecutor("10.0.0.1:6379", num_cpus=2)
    with pytest.raises(TdabenchError, match="unit_threads goes with an executor name"):
        CompareOptions(executor=LocalExecutor(), unit_threads=2)
    if torch.cuda.is_available():
        with pytest.raises(TdabenchError, match="it goes with --device cpu"):
            CompareOptions(executor="ray", device="cuda")


def test_local_executor_sets_threads_only_inside_a_unit():
    before = torch.get_num_threads()
    executor = LocalExecutor(threads=1)
    seen = [r for _, r in executor.map_unordered(lambda _: torch.get_num_threads(), [0, 1])]
    assert seen == [1, 1] and torch.get_num_threads() == before
    assert [p.node for p in executor.placements] == ["local", "local"]


def test_missing_ray_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    spec = write_small_spec(tmp_path)
    cache = tmp_path / "cache"
    code = main(["compare", "--task", str(spec), "--executor", "ray", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(cache), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "--executor ray needs the `ray` package: pip install 'tdabench[distributed]'" in err[0]
    assert not list(cache.rglob("*.safetensors")) if cache.exists() else True


# ---- one local Ray instance ---------------------------------------------------------------------

def square_unit(unit: str) -> dict[str, torch.Tensor]:
    return {"x": torch.full((3,), float(len(unit)) ** 2, dtype=torch.float64)}


def refuses_unit_b(unit: str) -> dict[str, torch.Tensor]:
    if unit == "b":
        raise TdabenchError("unit b cannot be computed")
    return square_unit(unit)


def test_run_units_on_ray_saves_each_once_and_resumes(on_ray, tmp_path, monkeypatch):
    saved = []
    real_save = UnitStore.save
    monkeypatch.setattr(UnitStore, "save", lambda self, u, t: saved.append(u) or real_save(self, u, t))
    store = UnitStore(tmp_path / "entry", {"k": 1}, keys=("x",))
    run_units(store, ["a", "bb"], square_unit)  # locally: two units on disk
    done, _ = run_units(store, ["a", "bb", "ccc", "dddd"], square_unit, executor=on_ray)
    assert sorted(saved) == ["a", "bb", "ccc", "dddd"]  # each unit written once; the first two not recomputed
    assert len(on_ray.placements) == 2 and all(p.pid != os.getpid() for p in on_ray.placements)
    assert [float(done[u]["x"][0]) for u in ("a", "bb", "ccc", "dddd")] == [1.0, 4.0, 9.0, 16.0]
    assert sorted(p.name for p in store.entry.iterdir()) == [
        "a.safetensors", "bb.safetensors", "ccc.safetensors", "dddd.safetensors", "settings.json"]


def test_a_unit_that_raises_is_raised_as_it_is(on_ray, tmp_path):
    store = UnitStore(tmp_path / "entry", {"k": 2}, keys=("x",))
    with pytest.raises(TdabenchError, match="^unit b cannot be computed$"):
        run_units(store, ["a", "b"], refuses_unit_b, executor=on_ray)
    assert not (store.entry / "b.safetensors").exists()
    assert not [p for p in store.entry.iterdir() if p.name.startswith(".")]  # no half-written file


class TicksSeed:
    def __call__(self, seed: int, tick: Callable[[], None]) -> dict[str, torch.Tensor]:
        for _ in range(3):
            tick()
        return {"s": torch.tensor([float(seed)])}


def test_progress_advances_as_seeds_arrive(on_ray, tmp_path, monkeypatch):
    updates: list[int] = []

    class Bar:
        def __init__(self, *args, **kwargs): ...
        def update(self, n: int = 1) -> None:
            updates.append(n)
        def close(self) -> None: ...
    monkeypatch.setattr(tdabench.storage, "tqdm", Bar)
    store = UnitStore(tmp_path / "entry", {"k": 3})
    done, _ = run_seeds(store, 3, TicksSeed(), what="t", ticks_per_seed=3, tick_unit="tick", executor=on_ray)
    assert updates == [3, 3, 3] and [float(t["s"][0]) for t in done] == [0.0, 1.0, 2.0]
    updates.clear()
    run_seeds(UnitStore(tmp_path / "local", {"k": 3}), 2, TicksSeed(), what="t", ticks_per_seed=3, tick_unit="tick")
    assert updates == [1] * 6  # in this process the unit's own ticks advance the bar


def test_same_records_on_ray_gold_standard_loo_lds(on_ray, raising_registered, spec_folder, local_reference,
                                                   tmp_path):
    """The gold standard and LOO/LDS seeds as Ray tasks (1 torch thread each, this process 2): the
    same results.json; the raising estimator (run here) is recorded under `errors` as locally."""
    results = run_compare(compare_options(spec_folder / "small-a.yaml", tmp_path / "cache", executor=on_ray))
    assert "RuntimeError: boom" in results.errors["test-raises"]
    assert len(on_ray.placements) == 2 + 2 + 2  # gold-standard, LOO and LDS seeds
    assert all(p.pid != os.getpid() for p in on_ray.placements)
    assert_same_results(write_results(results, tmp_path / "out")[0], local_reference)


class DiesOnce(GoldSeed):
    """Seed 1 of the gold standard: the first attempt writes its worker's PID and waits to be killed."""

    folder: ClassVar[str] = ""

    def __call__(self, seed: int, tick: Callable[[], None]) -> dict[str, torch.Tensor]:
        marker = Path(self.folder) / "pid"
        if seed == 1 and not marker.exists():
            (Path(self.folder) / "pid.tmp").write_text(str(os.getpid()))
            os.replace(Path(self.folder) / "pid.tmp", marker)
            time.sleep(120)
            raise RuntimeError("the test did not kill this worker")
        return GoldSeed.__call__(self, seed, tick)


def test_a_killed_worker_is_retried_and_changes_nothing(on_ray, raising_registered, spec_folder, local_reference,
                                                        tmp_path, monkeypatch):
    DiesOnce.folder = str(tmp_path)
    monkeypatch.setattr(runner, "GoldSeed", DiesOnce)
    saved = []
    real_save = UnitStore.save
    monkeypatch.setattr(UnitStore, "save", lambda self, u, t: saved.append((self.entry.parent.name, u))
                        or real_save(self, u, t))
    killed: list[int] = []

    def kill_when_running() -> None:
        marker = tmp_path / "pid"
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int(marker.read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    results = run_compare(compare_options(spec_folder / "small-a.yaml", tmp_path / "cache", executor=on_ray))
    killer.join(timeout=5)
    assert len(killed) == 1 and killed[0] != os.getpid()
    assert killed[0] not in {p.pid for p in on_ray.placements}  # seed 1 finished in another worker
    gold_saves = [u for kind, u in saved if kind == "gold"]
    assert sorted(gold_saves) == ["seed_0000", "seed_0001"]  # each seed written once
    gold_dir = next((tmp_path / "cache" / "gold").iterdir())
    assert sorted(p.name for p in gold_dir.iterdir()) == ["seed_0000.safetensors", "seed_0001.safetensors",
                                                           "settings.json"]
    assert_same_results(write_results(results, tmp_path / "out")[0], local_reference)


def test_two_entry_suite_on_ray_writes_the_same_results(ray_cluster, spec_folder, tmp_path, monkeypatch, capsys):
    """`leaderboard --suite --executor ray`: each entry one Ray task; the results files are the local
    ones at the same torch threads per entry (the estimators run inside the entry's unit, and some
    LAPACK results change in the last bit with the thread count)."""
    monkeypatch.setenv("TDABENCH_TASKS_PATH", str(spec_folder))
    suite = tmp_path / "suite.yaml"
    suite.write_text("tasks:\n  - {task: small-a, seeds: 2, estimators: [grad-dot, if-explicit], retraining: [loo]}\n"
                     "  - {task: small-b, seeds: 2, estimators: [grad-dot, trak]}\n")
    for executor in ("local", "ray"):  # one torch thread per entry in both
        assert main(["leaderboard", "--suite", str(suite), "--out", str(tmp_path / executor), "--no-progress",
                     "--cache-dir", str(tmp_path / f"cache-{executor}"), "--executor", executor,
                     "--unit-threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "running 2 comparison(s) as 2 ray tasks: small-a, small-b" in printed
    assert "ray: 2 work units on 1 node(s)" in printed
    for task in ("small-a", "small-b"):
        ray_path = tmp_path / "ray" / "results" / task / "results.json"
        assert_same_results(ray_path, tmp_path / "local" / "results" / task / "results.json")
        assert json.loads(ray_path.read_text())["suite_entry"]["task"] == task
    assert (tmp_path / "cache-ray" / "gold").is_dir()  # the workers used the cache they were given


def test_open_executor_closes_only_what_it_started(ray_cluster):
    ray = pytest.importorskip("ray")
    with open_executor("ray") as executor:  # the module's instance is reused, not restarted
        assert executor.name == "ray"
    assert ray.is_initialized()
    mine = LocalExecutor()
    with open_executor(mine) as executor:
        assert executor is mine
