"""Writing the leaderboard pages: finding and reading results files relative to the pages' folder,
then README.md, leaderboard.csv, index.html and the decay plots, each written atomically; with
downstream payloads also their sections, downstream.csv and plots/<task>_downstream.png/.svg; for
tables with a tuned track, best_damping.csv and the plot of the best damping per horizon against 1/(ηT).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Sequence

from tdabench.report.damping_plot import DAMPING_PLOT, best_damping_csv, best_damping_rows, write_damping_plot
from tdabench.report.downstream_pages import (Section, build_section, downstream_csv, downstream_html,
                                              downstream_markdown)
from tdabench.report.downstream_plot import write_downstream_plot
from tdabench.report.html import leaderboard_html
from tdabench.report.plots import plot_names, write_decay_plot
from tdabench.report.tables import Table
from tdabench.report.text import leaderboard_csv, leaderboard_markdown
from tdabench.results import Results, read_results
from tdabench.storage import atomic_write_text
from tdabench.task.catalog import BUILTIN_TASKS_DIR


def results_files(folder: str | Path) -> list[Path]:
    """Every `results.json` under `folder` (any depth), sorted; [] when the folder is missing."""
    return sorted(Path(folder).rglob("results.json")) if Path(folder).is_dir() else []


def read_relative(paths: list[str | Path], out_dir: str | Path) -> list[Results]:
    """Read results files (files or folders); each origin becomes the file's path relative to
    `out_dir`, with "/", so the pages link to it and do not depend on where the checkout lies."""
    out = Path(out_dir).resolve()
    results = []
    for p in paths:
        r = read_results(p)
        rel = Path(os.path.relpath(Path(r.origin or p).resolve(), out)).as_posix()
        results.append(dataclasses.replace(r, origin=rel))
    return results


def spec_links(tables: list[Table], out_dir: str | Path) -> dict[str, str]:
    """Task name → the path of its built-in spec file (`tasks/<name>.yaml`, variant suffix "@…"
    dropped) relative to `out_dir`, with "/"; tasks without a built-in spec are left out (a spec
    from $TDABENCH_TASKS_PATH would make the pages depend on the machine)."""
    out = Path(out_dir).resolve()
    links = {}
    for t in tables:
        path = BUILTIN_TASKS_DIR / f"{t.task.partition('@')[0]}.yaml"
        if path.is_file():
            links[t.task] = Path(os.path.relpath(path, out)).as_posix()
    return links


def _write_plots(tables: list[Table], names: list[str], folder: Path, keep: Sequence[Path] = ()) -> list[Path]:
    """`folder/<name>.png/.svg` per table; other *.png/*.svg files in `folder` (but `keep`) are removed."""
    folder.mkdir(exist_ok=True)
    paths: list[Path] = []
    for table, name in zip(tables, names):
        paths += write_decay_plot(table, folder / name)
    for old in sorted(folder.glob("*")):
        if old.suffix in (".png", ".svg") and old not in paths and old not in keep:
            old.unlink()
    return paths


def downstream_sections(payloads: list[dict], tables: list[Table], plots: bool = True) -> list[Section]:
    """One Section per payload, in their order; plot stems "<task>_downstream" ("-<k>" after a stem that
    two payloads share: k = the payload's position)."""
    stems = [re.sub(r"[^A-Za-z0-9_.-]", "-", p["task"]["name"]) + "_downstream" for p in payloads]
    stems = [s if stems.count(s) == 1 else f"{s}-{k}" for k, s in enumerate(stems)]
    return [build_section(p, tables, stem if plots else None) for p, stem in zip(payloads, stems)]


def _write_downstream_plots(sections: list[Section], payloads: list[dict], folder: Path) -> list[Path]:
    """`folder/<stem>.png/.svg` per section with a plot, x = its further-training agreement."""
    folder.mkdir(exist_ok=True)
    paths: list[Path] = []
    for s, p in zip(sections, payloads):
        if s.plot:
            xs = {label: point for label, (point, _) in s.further[1].items()} or None
            paths += write_downstream_plot(p, folder, metric=s.metric, xs=xs, stem=s.plot)
    return paths


def write_leaderboard(tables: list[Table], out_dir: str | Path, command: str | None = None,
                      plots: bool = True, downstream: list[dict] | None = None) -> list[Path]:
    """Write `README.md`, `leaderboard.csv`, `index.html` and (with `plots`) the decay plots
    `plots/<name>.png/.svg` into `out_dir`, atomically; with `downstream` payloads also their sections
    (after the task tables), `downstream.csv` and their plots; with a tuned damping in some table, also
    `best_damping.csv` and (with `plots`) `plots/best_damping.png/.svg`. Older *.png/*.svg files in
    `plots/` that this build did not write are removed. Returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = plot_names(tables) if plots else None
    payloads = sorted(downstream or [], key=lambda p: (p["task"]["name"], p.get("origin") or ""))  # input order free
    sections = downstream_sections(payloads, tables, plots)
    figure = f"plots/{DAMPING_PLOT}" if best_damping_rows(tables) and plots else None
    paths = [out / "README.md", out / "leaderboard.csv", out / "index.html"]
    markdown = leaderboard_markdown(tables, command, names, figure)
    extra = downstream_markdown(sections)
    atomic_write_text(paths[0], markdown + ("\n" + "\n".join(extra).rstrip("\n") + "\n" if extra else ""))
    atomic_write_text(paths[1], leaderboard_csv(tables))
    atomic_write_text(paths[2], leaderboard_html(tables, command, names, spec_links(tables, out),
                                                 downstream_html(sections), figure))
    if sections:
        paths.append(out / "downstream.csv")
        atomic_write_text(paths[-1], downstream_csv(sections, payloads))
    if best_damping_rows(tables):
        paths.append(out / f"{DAMPING_PLOT}.csv")
        atomic_write_text(paths[-1], best_damping_csv(tables))
    if names is not None:
        made = _write_downstream_plots(sections, payloads, out / "plots")
        made += write_damping_plot(tables, out / "plots") if figure else []
        paths += _write_plots(tables, names, out / "plots", keep=made) + made
    return paths
