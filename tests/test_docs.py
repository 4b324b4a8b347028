"""docs/ is kept true by the code: the generated spec reference is current, and the plugin guide's
code runs verbatim (its estimator passes check_estimator and installs as an entry-point plugin)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tdabench import cli
from tdabench.scoring.metrics import METRICS
from tdabench.task import DEFAULT_TASK, find_spec, spec_reference

DOCS = Path(__file__).resolve().parents[1] / "docs"
GUIDE = DOCS / "plugins.md"
_BLOCK = re.compile(r"(?:<!-- file: (?P<file>\S+) -->\n)?```(?P<lang>\w+)\n(?P<code>.*?)```", re.DOTALL)


def blocks(lang: str) -> list[tuple[str | None, str]]:
    """(file name or None, code) of each fenced block of the guide in language `lang`, in order."""
    return [(m["file"], m["code"]) for m in _BLOCK.finditer(GUIDE.read_text()) if m["lang"] == lang]


def test_spec_reference_is_generated_from_the_dataclasses():
    committed = (DOCS / "spec-reference.md").read_text()
    assert committed == spec_reference.render(), (
        "docs/spec-reference.md is out of date: run `python -m tdabench.task.spec_reference` (make docs)")


def test_spec_reference_lists_every_field_of_every_section():
    text = spec_reference.render()
    for cls in spec_reference._sections(spec_reference.TaskSpec, []):
        section = text.split(f"## {cls.__name__}\n", 1)[1].split("\n## ", 1)[0]
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in section, f"{cls.__name__}.{f.name} missing from the reference"


def test_spec_reference_check_mode_detects_drift(tmp_path):
    stale = tmp_path / "ref.md"
    stale.write_text("old\n")
    assert spec_reference.main(["--out", str(stale), "--check"]) == 1
    assert spec_reference.main(["--out", str(stale)]) == 0
    assert spec_reference.main(["--out", str(stale), "--check"]) == 0


def test_plugin_guide_code_runs_verbatim(monkeypatch):
    """Every python block, in order, in one namespace; the file block becomes the importable module
    `diag_influence`, so the later blocks' `from diag_influence import ...` finds it."""
    python = blocks("python")
    assert len(python) >= 4, "the guide lost code blocks"
    namespace: dict = {"__name__": "plugin_guide"}
    for file, code in python:
        if file is not None:
            name = file.removesuffix("/__init__.py").removesuffix(".py")
            module = types.ModuleType(name)
            module.__file__ = file
            exec(compile(code, file, "exec"), module.__dict__)
            monkeypatch.setitem(sys.modules, name, module)
        else:
            exec(compile(code, str(GUIDE), "exec"), namespace)
    # The parametrised-test block defines a test; run its checks too.
    for args in namespace["test_diag_influence_contract"].pytestmark[0].args[1]:
        namespace["test_diag_influence_contract"](*args)


def test_plugin_guide_package_installs_and_registers(tmp_path):
    files = {file: code for file, code in blocks("python") + blocks("toml") if file is not None}
    assert set(files) == {"diag_influence/__init__.py", "pyproject.toml"}
    source = tmp_path / "src"
    for file, code in files.items():
        (source / file).parent.mkdir(parents=True, exist_ok=True)
        (source / file).write_text(code)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(source)], check=True, timeout=300, capture_output=True)
    env_path = f"{site}:{Path(__file__).resolve().parents[1]}"
    proc = subprocess.run([sys.executable, "-m", "tdabench.cli", "list", "--json"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": env_path}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    entry = {e["name"]: e for e in json.loads(proc.stdout)["estimators"]}["diag-if"]
    assert (entry["kind"], entry["distribution"], entry["version"]) == ("plugin", "diag-influence", "0.1.0")


@pytest.mark.parametrize("page", ["README.md", "method.md", "plugins.md", "spec-reference.md"])
def test_docs_pages_exist_and_link_within_docs(page):
    text = (DOCS / page).read_text()
    for target in re.findall(r"\]\(([\w.-]+\.md)(?:#[\w-]+)?\)", text):
        assert (DOCS / target).exists(), f"{page} links to missing {target}"


def test_compare_help_states_the_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "one of " + ", ".join(METRICS) in text
    horizons = ",".join(map(str, find_spec(DEFAULT_TASK).gold_standard.horizons))
    assert f"({horizons} for {DEFAULT_TASK})" in text
    assert "not the adapters" in text and "{METRICS}" not in text and "{DEFAULT_HORIZONS}" not in text
