"""interactions.json (schema: salient.SCHEMA_VERSION, kind KIND) and its terminal table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tdabench.interactions.salient import KIND, SCHEMA_VERSION
from tdabench.storage import read_payload, write_payload

FILE_NAME = "interactions.json"


def write_interactions(payload: dict[str, Any], out_dir: str | Path) -> Path:
    """`out_dir/interactions.json` (written atomically, with its kind and schema version); returns its path."""
    return write_payload(payload, Path(out_dir) / FILE_NAME, KIND, SCHEMA_VERSION)


def read_interactions(path_or_dir: str | Path) -> dict[str, Any]:
    """The payload of `write_interactions` (a folder: its interactions.json); TdabenchError for another
    kind of file or schema version."""
    return read_payload(path_or_dir, FILE_NAME, KIND, SCHEMA_VERSION, "interactions results file")


def _players(features: list[int]) -> str:
    return "{" + ",".join(map(str, features)) + "}"


def _sparsity_lines(payload: dict[str, Any], point: dict[str, Any]) -> list[str]:
    orders = sorted(point["states"][0]["sparsity"]["by_order"], key=int)
    head = f"  {'model':<14} {'v(x)':>9} {'v(b)':>9} {'sum I':>9} {'max |I|':>9} {'thresh.':>9} {'share':>7} " + \
        " ".join(f"{'order ' + k:>8}" for k in orders)
    lines = [head]
    for state, stats in zip(payload["states"], point["states"]):
        sp = stats["sparsity"]
        lines.append(f"  {state['name']:<14} {stats['v_x']:>9.4f} {stats['v_baseline']:>9.4f} "
                     f"{stats['sum_interactions']:>9.4f} {stats['max_abs']:>9.4f} {sp['threshold']:>9.2e} "
                     f"{sp['share_above']:>7.1%} " + " ".join(f"{sp['by_order'][k]:>8.1%}" for k in orders))
    return lines


def _top_lines(payload: dict[str, Any], point: dict[str, Any], top: int) -> list[str]:
    names = [s["name"] if s["horizon"] == 0 else f"t={s['horizon']}" for s in payload["states"]]
    lines = [f"  {'S':<16} " + " ".join(f"{n:>9}" for n in names)]
    for entry in point["interactions"][:top]:
        lines.append(f"  {_players(entry['features']):<16} " + " ".join(f"{v:>9.4f}" for v in entry["values"]))
    return lines


def render_interactions(payload: dict[str, Any], top: int = 15) -> str:
    """Per test point: v(x), v(baseline), Σ I, and the share of |I(S)| above the threshold (overall and
    per order) at each model state; then the `top` interactions by |I| at the final model."""
    threshold = payload["threshold"]
    rule = (f"|I| > {threshold['absolute']}" if "absolute" in threshold
            else f"|I| > {threshold['relative']:.0%} of max |I|")
    lines = [f"task {payload['task']['name']}: Harsanyi interactions of order <= {payload['max_order']}, "
             f"v = {payload['value']}, further training: reference seed {payload['further_training']['seed']}, "
             f"horizons in {payload['horizon_unit']}s; sparsity: share of S with {rule}"]
    for point in payload["points"]:
        lines += ["", f"test point {point['test_index']} (label {point['label']})"]
        lines += _sparsity_lines(payload, point) + [""] + _top_lines(payload, point, top)
    return "\n".join(lines)
