"""User tasks: the user's model, weights and data, through spec files, the Python API and a task plugin."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from test_plugins import env_with, pip_install, run_cli
from tdabench.api import compare, task_from_module
from tdabench.errors import SpecError, TdabenchError
from tdabench.task import build_context, find_spec
from tdabench.task.user_models import read_weights
from tdabench.registry import make_estimator
from user_task_examples import (CNN_MODULE, GOLD, tabular_columns, train_own_loop, write_cnn_example, write_csv,
                                write_hf_example, write_tabular_example)

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture()
def cnn_example(tmp_path, monkeypatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_cnn", None)
    return write_cnn_example(tmp_path, epochs=5)


def test_cnn_from_its_own_loop_is_benchmarked_through_a_spec(cnn_example, tmp_path):
    """(a): tdabench trains nothing (the final model's accuracy is the user's own), TracIn says why it
    uses the final model only, and every estimator has a record per horizon."""
    results = compare(cnn_example, estimators=["grad-dot", "tracin"], out=tmp_path / "out", progress=False,
                      cache_dir=tmp_path / "cache")
    assert results.errors == {}
    ctx = build_context(find_spec(str(cnn_example)), tmp_path / "cache")
    own = ctx.model.__class__  # the factory's Sequential, holding the user's weights exactly
    saved = read_weights(str(tmp_path / "final.safetensors"))
    assert own is torch.nn.Sequential and all(torch.equal(ctx.model.state_dict()[k], v) for k, v in saved.items())
    accuracy = float((ctx.model(ctx.test.x).argmax(-1) == ctx.test.y).double().mean())
    assert results.task.details["final_model"]["test"]["accuracy"] == pytest.approx(accuracy)
    assert accuracy > 0.5  # ten classes: the user's loop learned
    tracin = [r for r in results.records if r.estimator == "tracin"][0]
    assert "no checkpoints" in tracin.params["fitted.final_model_only_because"]
    assert {(r.estimator, r.horizon) for r in results.records if r.metric == "pearson"} == {
        (e, h) for e in ("grad-dot", "tracin") for h in (1, 3)}
    assert json.loads((tmp_path / "out" / "results.json").read_text())["task"]["name"] == "my-cnn"


def test_other_weights_or_data_never_reuse_the_cache(cnn_example, tmp_path):
    """The weights' and data's content enter the spec hash, so every cache key."""
    first = build_context(find_spec(str(cnn_example)), tmp_path / "cache").spec.spec_hash
    assert build_context(find_spec(str(cnn_example)), tmp_path / "cache").spec.spec_hash == first
    state = read_weights(str(tmp_path / "final.safetensors"))
    state["4.bias"] = state["4.bias"] + 1e-3
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "final.safetensors"))
    second = build_context(find_spec(str(cnn_example)), tmp_path / "cache").spec.spec_hash
    assert second != first
    (tmp_path / "my_cnn.py").write_text(CNN_MODULE.replace("300:400", "300:390"))
    sys.modules.pop("my_cnn", None)
    assert build_context(find_spec(str(cnn_example)), tmp_path / "cache").spec.spec_hash not in (first, second)


def test_hf_classifier_with_its_head_and_last_layer_attributed(tmp_path):
    """(b): a Hugging Face classifier from save_pretrained and a DatasetDict from save_to_disk."""
    spec_path = write_hf_example(tmp_path)
    results = compare(spec_path, estimators=["grad-dot"], progress=False, cache_dir=tmp_path / "cache")
    assert results.errors == {}
    attributed = results.task.details["attributed_parameters"]
    assert "classifier" in attributed and all(a == "classifier" or a.startswith("bert.encoder.layer.1.")
                                             for a in attributed)
    ctx = build_context(find_spec(str(spec_path)), tmp_path / "cache")
    assert len(ctx.train) == 120 and len(ctx.test) == 40  # the saved splits, as they are
    assert "bert.encoder.layer.0.output.dense.weight" in ctx.buffers  # frozen, held with the buffers
    import transformers

    hf = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "model").double().eval()
    ids = ctx.test.x[:5]
    expected = hf(input_ids=ids, attention_mask=(ids != 0).long()).logits
    assert torch.allclose(ctx.outputs(ctx.params, ids), expected, atol=1e-10)  # the same model


def test_python_api_with_a_custom_loss_and_a_factory(tmp_path):
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    x = torch.tensor((x - x.mean(0)) / x.std(0))
    perm = torch.randperm(150, generator=torch.Generator().manual_seed(0))
    train, test = (x[perm[:100]], torch.tensor(y)[perm[:100]]), (x[perm[100:]], torch.tensor(y)[perm[100:]])
    factory = lambda: torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))  # noqa
    model = factory().double()
    train_own_loop(model, *train, epochs=20, lr=0.01)
    smooth = lambda out, y: torch.nn.functional.cross_entropy(out, y, reduction="none", label_smoothing=0.1)  # noqa
    task = task_from_module("iris-api", model=model, factory=factory, train=train, test=test, loss=smooth,
                            further_training=GOLD["further_training"], horizons=[1, 2], seeds=2, n_train=15,
                            n_test=10, training={"optimizer": "sgd", "lr": 0.1, "batch_size": 32, "epochs": 5})
    results = compare(task, estimators=["grad-dot", "trak(proj_dim=128)"], progress=False, cache_dir=tmp_path,
                      retraining=("loo",), retraining_seeds=1)
    assert results.errors == {}
    assert {r.ground_truth for r in results.records} >= {"loo"}
    ctx = build_context(task.spec, tmp_path, **task.context_args())
    x0, y0 = ctx.train.x[:3], ctx.train.y[:3]
    assert torch.allclose(ctx.loss(ctx.params, x0, y0), smooth(model(x0), y0))  # the custom loss is the loss


def test_api_refuses_bad_input_before_training(tmp_path):
    train = (torch.zeros(10, 3), torch.zeros(10, dtype=torch.long))
    with pytest.raises(TdabenchError, match="final model"):
        task_from_module("x", train=train, test=train, further_training={"lr": 0.1})
    with pytest.raises(SpecError, match="further_training.lr"):
        task_from_module("x", model=torch.nn.Linear(3, 2), train=train, test=train, further_training={"lr": -1})
    with pytest.raises(TdabenchError, match="retraining"):
        compare(task_from_module("x", model=torch.nn.Linear(3, 2).double(), train=train, test=train,
                                 further_training={"lr": 0.1}), retraining=("loo",), progress=False,
                cache_dir=tmp_path)


@pytest.mark.parametrize("change, message", [
    ({"model": {"weights": "missing.safetensors"}}, "no such file"),
    ({"model": {"attributed": ["nothing.*"]}}, "matches no parameter"),
    ({"model": {"weights": "final.pkl"}}, "safetensors"),
    ({"data": {"source": "python:my_cnn:no_such_loader"}}, "no attribute"),
    ({"data": {"source": "sklearn:load_nothing"}}, "bad.yaml: field 'data.source': expected one of csv:PATH"),
    ({"training": None, "model": {"weights": None}}, "training"),
])
def test_bad_user_specs_exit_2_with_one_line(cnn_example, tmp_path, change, message):
    raw = yaml.safe_load(cnn_example.read_text())
    for section, fields in change.items():
        if fields is None:
            raw.pop(section, None)
            continue
        raw[section] = {k: v for k, v in {**raw.get(section, {}), **fields}.items() if v is not None}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    env = env_with(tmp_path)
    proc = run_cli(env, "compare", "--task", str(bad), "--estimators", "grad-dot", "--no-progress",
                   "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cache" / "gold").exists()  # refused before any further training


def test_a_task_plugin_is_listed_with_its_origin_and_runs(tmp_path_factory, tmp_path):
    """(c): a package installed with pip ships a spec and the factory it names."""
    site = tmp_path_factory.mktemp("task-plugin") / "site"
    pip_install(PLUGINS / "task-example", site)
    env = env_with(site)
    listed = {t["name"]: t for t in json.loads(run_cli(env, "list", "--json").stdout)["tasks"]}
    assert listed["wine-tiny"]["origin"] == "plugin tdabench-example-tasks 0.2.0"
    assert listed["breast-cancer-mlp"]["origin"] == "built-in"
    proc = run_cli(env, "compare", "--task", "wine-tiny", "--estimators", "grad-dot", "--no-progress",
                   "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text())["task"]["name"] == "wine-tiny"


def test_a_broken_task_plugin_is_listed_invalid_and_breaks_nothing_else(tmp_path_factory, tmp_path):
    """A plugin whose module fails on import: `list` shows it invalid with why (exit 0), built-in and
    other plugins' tasks still run, asking for a task it may hold fails in one line naming it."""
    site = tmp_path_factory.mktemp("broken-task-plugin") / "site"
    pip_install(PLUGINS / "task-broken", site)
    pip_install(PLUGINS / "task-example", site)
    env = env_with(site)
    proc = run_cli(env, "list", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = {t["name"]: t for t in json.loads(proc.stdout)["tasks"]}
    assert listed["broken-tasks"]["origin"] == "plugin tdabench-broken-tasks 0.1.0"
    assert "RuntimeError: this plugin is broken" in listed["broken-tasks"]["error"]
    assert "error" not in listed["wine-tiny"] and "error" not in listed["breast-cancer-logreg"]
    text = run_cli(env, "list")
    assert text.returncode == 0 and re.search(r"broken-tasks +INVALID .*this plugin is broken", text.stdout)
    small = ["--estimators", "grad-dot", "--seeds", "1", "--horizons", "1", "--n-train", "5", "--n-test", "5",
             "--no-progress", "--cache-dir", str(tmp_path / "cache")]
    proc = run_cli(env, "compare", "--task", "breast-cancer-logreg", *small, "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(env, "compare", "--task", "a-broken-plugins-task", *small, "--out", str(tmp_path / "out2"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "unknown task 'a-broken-plugins-task'" in proc.stderr and "this plugin is broken" in proc.stderr


def test_list_survives_a_broken_spec_on_the_tasks_path(tmp_path):
    (tmp_path / "broken.yaml").write_text("name: [")
    env = env_with() | {"TDABENCH_TASKS_PATH": str(tmp_path)}
    proc = run_cli(env, "list", "--json")
    assert proc.returncode == 0, proc.stderr
    broken = {t["name"]: t for t in json.loads(proc.stdout)["tasks"]}["broken"]
    assert str(tmp_path / "broken.yaml") in broken["error"] and broken["origin"] == "$TDABENCH_TASKS_PATH"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- tested by tests/test_user_tasks.py -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README lost its tested 'Benchmark your own model' example"
    return match.group(1)


def test_the_readme_example_runs_verbatim(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env=env_with() | {"TDABENCH_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert "if-explicit" in proc.stdout and (tmp_path / "runs" / "my-mlp" / "results.json").is_file()
    assert np.isfinite(json.loads((tmp_path / "runs" / "my-mlp" / "results.json").read_text())
                       ["records"][0]["mean"])


def test_api_data_forms_give_the_same_split():
    """(x, y) pairs, a torch Dataset and a Hugging Face Dataset give identical tensors."""
    import datasets

    from tdabench.api import _pair

    x, y = torch.arange(12.0).reshape(6, 2), torch.tensor([0, 1, 0, 1, 1, 0])
    as_torch = torch.utils.data.TensorDataset(x, y)
    as_hf = datasets.Dataset.from_dict({"a": x[:, 0].tolist(), "b": x[:, 1].tolist(), "label": y.tolist()})
    for form in (as_torch, as_hf, (x.numpy(), y.numpy())):
        fx, fy = _pair(form, (), "label", "train")
        assert torch.equal(fx.double(), x.double()) and torch.equal(fy.long(), y)


def tiny_task(name: str = "tiny", factory=None):
    """A linear classifier on 40 random points: a comparison runs in a second or two."""
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    return task_from_module(name, model=torch.nn.Linear(3, 2).double(), factory=factory, train=(x[:30], y[:30]),
                            test=(x[30:], y[30:]), further_training={"optimizer": "sgd", "lr": 0.1, "batch_size": 8},
                            horizons=[1], seeds=1, n_train=5, n_test=5)


def test_compare_takes_the_cache_folder_as_a_string(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = compare(tiny_task(), estimators="grad-dot", progress=False, cache_dir="cache", out="out")
    assert results.errors == {} and (tmp_path / "out" / "results.json").is_file()
    assert any(p.is_file() for p in (tmp_path / "cache").rglob("*"))  # the gold standard went there


def test_compare_without_matplotlib_still_writes_the_results(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    results = compare(tiny_task(), estimators="grad-dot", progress=False, cache_dir=tmp_path, out=tmp_path / "out")
    assert results.errors == {} and (tmp_path / "out" / "results.json").is_file()
    assert not list((tmp_path / "out").glob("decay_*"))


def test_compare_raises_a_real_plotting_error(tmp_path, monkeypatch):
    import tdabench.report.plots as plots

    def broken(table):
        raise TdabenchError("the plot cannot be drawn")

    monkeypatch.setattr(plots, "decay_figure", broken)
    with pytest.raises(TdabenchError, match="the plot cannot be drawn"):
        compare(tiny_task(), estimators="grad-dot", progress=False, cache_dir=tmp_path, out=tmp_path / "out")
    assert (tmp_path / "out" / "results.json").is_file()  # written before the plots


def test_a_changed_factory_changes_the_spec_hash(tmp_path, monkeypatch):
    """The Python API wraps the factory (to seed it); the hash reads the factory's own file."""
    import importlib

    monkeypatch.syspath_prepend(str(tmp_path))

    def spec_hash(source: str) -> str:
        (tmp_path / "my_factory.py").write_text(source)
        sys.modules.pop("my_factory", None)
        importlib.invalidate_caches()
        task = tiny_task(factory=importlib.import_module("my_factory").make)
        return build_context(task.spec, tmp_path, **task.context_args()).spec.spec_hash

    plain = "from torch import nn\n\n\ndef make():\n    return nn.Linear(3, 2)\n"
    first = spec_hash(plain)
    assert spec_hash(plain) == first
    assert spec_hash(plain.replace("nn.Linear(3, 2)", "nn.Linear(3, 2, bias=True)")) != first


def test_a_factory_without_a_file_is_hashed_by_its_source(tmp_path, monkeypatch):
    """A notebook cell's function has no file; its source text (found through linecache, where
    IPython registers cells) enters the hash."""
    import linecache

    def spec_hash(cell: str, code: str) -> str:
        monkeypatch.setitem(linecache.cache, cell, (len(code), None, code.splitlines(True), cell))
        namespace: dict = {"nn": torch.nn}
        exec(compile(code, cell, "exec"), namespace)
        task = tiny_task(factory=namespace["make"])
        return build_context(task.spec, tmp_path, **task.context_args()).spec.spec_hash

    code = "def make():\n    return nn.Linear(3, 2)\n"
    first = spec_hash("<cell-1>", code)
    assert spec_hash("<cell-2>", code) == first
    assert spec_hash("<cell-3>", code.replace("(3, 2)", "(3, 2, bias=True)")) != first


@pytest.fixture()
def importable(tmp_path, monkeypatch) -> Path:
    """`tmp_path` on sys.path, holding no stale my_tabular module."""
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_tabular", None)
    return tmp_path


def split_rows(split) -> list[tuple[float, float, int]]:
    return [(a, c, k) for (a, c), k in zip(split.x.tolist(), split.y.tolist())]


def column_rows(columns: dict[str, list]) -> set[tuple[float, float, int]]:
    """The (a, c, class id) rows of `tabular_columns`: class ids in sorted label order."""
    ids = {name: i for i, name in enumerate(sorted(set(columns["kind"])))}
    return {(a, c, ids[k]) for a, c, k in zip(columns["a"], columns["c"], columns["kind"])}


def assert_split_of(ctx, columns: dict[str, list], n_test: int) -> None:
    """The context's rows are the named columns' rows, each once, `n_test` of them in the test split."""
    train, test = split_rows(ctx.train), split_rows(ctx.test)
    assert ctx.train.x.dtype == torch.float64 and ctx.train.x.shape[1:] == (2,)
    assert len(test) == n_test and len(set(train + test)) == len(train) + len(test) == len(columns["a"])
    assert set(train + test) == column_rows(columns)


def test_csv_source_end_to_end_reads_the_named_columns(importable, tmp_path):
    columns = tabular_columns()
    write_csv(tmp_path / "table.csv", columns)
    spec_path = write_tabular_example(tmp_path, "csv:table.csv")
    ctx = build_context(find_spec(str(spec_path)), tmp_path / "cache")
    assert_split_of(ctx, columns, n_test=10)  # test_fraction 0.25 of 40
    results = compare(spec_path, estimators="grad-dot", progress=False, cache_dir=tmp_path / "cache")
    assert results.errors == {} and results.task.name == "my-table"


def test_hf_disk_single_dataset_is_split_by_the_spec(importable, tmp_path):
    import datasets

    columns = tabular_columns(seed=1)
    datasets.Dataset.from_dict(columns).save_to_disk(str(tmp_path / "data"))
    ctx = build_context(find_spec(str(write_tabular_example(tmp_path, "hf-disk:data"))), tmp_path / "cache")
    assert_split_of(ctx, columns, n_test=10)


def test_python_loader_returning_a_dataset_dict_keeps_its_split(importable, tmp_path):
    spec_path = write_tabular_example(tmp_path, "python:my_tabular:load_dataset_dict")
    ctx = build_context(find_spec(str(spec_path)), tmp_path / "cache")
    import my_tabular

    given = my_tabular.load_dataset_dict()
    for split, name in ((ctx.train, "train"), (ctx.test, "test")):
        x = torch.tensor([given[name]["a"], given[name]["c"]], dtype=torch.float64).T
        assert torch.equal(split.x, x) and torch.equal(split.y, torch.tensor(given[name]["kind"]))


@pytest.mark.parametrize("form", ["csv", "hf-disk"])
def test_a_changed_data_file_never_reuses_the_cache(importable, tmp_path, form):
    import shutil

    import datasets

    def write(columns: dict[str, list]) -> None:
        if form == "csv":
            write_csv(tmp_path / "table.csv", columns)
            return
        shutil.rmtree(tmp_path / "data", ignore_errors=True)
        datasets.Dataset.from_dict(columns).save_to_disk(str(tmp_path / "data"))

    spec_path = write_tabular_example(tmp_path, "csv:table.csv" if form == "csv" else "hf-disk:data")
    spec_hash = lambda: build_context(find_spec(str(spec_path)), tmp_path / "cache").spec.spec_hash  # noqa
    columns = tabular_columns()
    write(columns)
    first = spec_hash()
    assert spec_hash() == first
    columns["c"][7] += 0.5  # one value of one row, nothing else
    write(columns)
    assert spec_hash() != first


def input_gradients(state: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(n, P): each example's cross-entropy gradient for the CNN of `my_cnn` holding `state`, by autograd."""
    import my_cnn

    model = my_cnn.build_cnn(channels=4).double()
    model.load_state_dict(state)
    rows = []
    for xi, yi in zip(x, y):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(xi[None]), yi[None]).backward()
        rows.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    return torch.stack(rows)


def test_user_checkpoints_feed_tracin_and_pt_files_load_weights_only(cnn_example, tmp_path, monkeypatch):
    """TracIn's score is Σ_c lr_c ∇ℓ(test; θ_c)·∇ℓ(train; θ_c) over the user's checkpoints, read from
    their files; .pt files (final weights, a checkpoint) go through torch.load(weights_only=True)."""
    from safetensors.torch import save_file

    final = read_weights(str(tmp_path / "final.safetensors"))
    noise = torch.Generator().manual_seed(1)
    states = [{k: v * 0.5 for k, v in final.items()},
              {k: v + 0.05 * torch.randn(v.shape, generator=noise, dtype=v.dtype) for k, v in final.items()}]
    save_file(states[0], str(tmp_path / "epoch2.safetensors"))
    torch.save(states[1], tmp_path / "epoch4.pt")
    torch.save(final, tmp_path / "final.pt")
    raw = yaml.safe_load(cnn_example.read_text())
    raw["model"] |= {"weights": "final.pt", "checkpoints": [{"weights": "epoch2.safetensors", "lr": 0.01, "epoch": 2},
                                                            {"weights": "epoch4.pt", "lr": 0.03, "epoch": 4}]}
    cnn_example.write_text(yaml.safe_dump(raw))
    calls, real_load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: calls.append(kwargs) or real_load(*args, **kwargs))
    ctx = build_context(find_spec(str(cnn_example)), tmp_path / "cache")
    assert len(calls) == 2 and all(kwargs.get("weights_only") is True for kwargs in calls)
    assert all(torch.equal(ctx.model.state_dict()[k], v) for k, v in final.items())
    assert [(c.epoch, c.lr) for c in ctx.checkpoints] == [(2, 0.01), (4, 0.03)]
    assert all(torch.equal(c.params[k], s[k]) for c, s in zip(ctx.checkpoints, states) for k in s)
    tracin = make_estimator("tracin").fit(ctx)
    assert tracin.describe()["checkpoints"] == [2, 4] and tracin.describe()["final_model_only_because"] is None
    test_idx, train_idx = np.arange(3), np.arange(6)
    expected = sum(lr * input_gradients(s, ctx.test.x[test_idx], ctx.test.y[test_idx])
                   @ input_gradients(s, ctx.train.x[train_idx], ctx.train.y[train_idx]).T
                   for lr, s in ((0.01, states[0]), (0.03, states[1])))
    np.testing.assert_allclose(tracin.score(test_idx, train_idx), expected.numpy(), rtol=1e-9, atol=1e-14)


class RunsCodeWhenUnpickled:
    """Unpickling it calls open(marker, 'w'): a stand-in for what a malicious .pt file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pt_file_holding_a_pickled_object_is_refused_unrun(cnn_example, tmp_path):
    marker, evil = tmp_path / "code-ran", tmp_path / "final.pt"
    torch.save({"4.bias": RunsCodeWhenUnpickled(marker)}, evil)
    torch.load(evil, weights_only=False)  # the file does run code when unpickled
    assert marker.exists()
    marker.unlink()
    raw = yaml.safe_load(cnn_example.read_text())
    raw["model"]["weights"] = "final.pt"
    cnn_example.write_text(yaml.safe_dump(raw))
    proc = run_cli(env_with(tmp_path), "compare", "--task", str(cnn_example), "--estimators", "grad-dot",
                   "--no-progress", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert "final.pt holds pickled objects other than tensors" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "cache" / "gold").exists()
