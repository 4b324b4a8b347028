"""The file of `tdabench downstream`: DIR/downstream.json, its own schema version, and a text table.

Layout (schema version 1)::

    {"schema_version": 1, "kind": "tdabench-downstream", "tdabench_version": ..., "git_hash": ...,
     "date": ..., "task": {"name", "version", "spec_hash"}, "device": where it ran (e.g. "cpu", "cuda:0"),
     "settings": {..., "estimators": [label], "estimator_params": {label: resolved parameters}},
     "checks": {"mislabel": {"task": {...noisy variant...}, "n_flipped", "estimators": {label: detection},
                             "not_applicable": {label: why} (e.g. a constant self-influence: no AUC),
                             "gold": [{"horizon": h, ...detection}]},
                "randomization": {label: {"mean", "sem", "ci_low", "ci_high", "n", "n_skipped"}},
                "cardinality": {label: {"k", "distinct", "n_test", "n_train"}},
                "brittleness": {"ks", "steps", "test_idx", "estimators": {label: flips}, "random": flips},
                    (flips: {"share", "share_low", "share_high", "smallest_k"[, "retrained": flips]})
                "shortcut": {"task": {...shortcut variant...}, "class", "n_planted", "n_train", "test_idx",
                             "patch_effect": {"clean", "patched", "n"},
                             "estimators": {label: {"k", "share", "share_low", "share_high", "chance",
                                                    "auc", "auc_low", "auc_high"}}}},
     "errors": {label: {check: "what went wrong"}},
     "cost": {"final_model_checks_s", "mislabel_s", "shortcut_s": wall-clock seconds of each part}}

Fields may be added; none is renamed or removed without raising DOWNSTREAM_SCHEMA_VERSION, and a
file of another version is refused on reading. No NaN or Infinity is written (None → null).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tdabench.storage import read_payload, write_payload

DOWNSTREAM_SCHEMA_VERSION = 1
FILE_NAME = "downstream.json"
KIND = "tdabench-downstream"


def write_downstream(payload: dict[str, Any], out_dir: str | Path) -> Path:
    """Write `payload` (with its schema version) to out_dir/downstream.json atomically."""
    return write_payload(payload, Path(out_dir) / FILE_NAME, KIND, DOWNSTREAM_SCHEMA_VERSION, indent=2)


def read_downstream(path_or_dir: str | Path) -> dict[str, Any]:
    """Read a downstream file (or DIR/downstream.json); another schema version or kind is refused."""
    return read_payload(path_or_dir, FILE_NAME, KIND, DOWNSTREAM_SCHEMA_VERSION, "downstream results file")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_table(payload: dict[str, Any]) -> str:
    """One row per estimator: mislabel AUC [interval] and precision at the flipped fraction,
    randomisation Spearman [interval], top-k cardinality, the share of flips at the largest k (further
    training; retraining with --retrain), and the shortcut share@k (chance in the last row)."""
    checks, labels = payload["checks"], payload["settings"]["estimators"]
    mis, rnd = checks.get("mislabel", {}), checks.get("randomization", {})
    card, brit, cut = checks.get("cardinality", {}), checks.get("brittleness", {}), checks.get("shortcut", {})
    header = (f"{'estimator':<28} {'AUC [95%]':<22} {'P@flip':>6} {'rand rho [95%]':<22} {'card':>5} "
              f"{'flip@kmax':>9} {'retrain':>7} {'cut@k':>6}")
    rows = [header, "-" * len(header)]

    def row(label: str, det: dict | None, rho: dict | None, c: dict | None, flips: dict | None,
            short: float | None = None) -> str:
        a = f"{_fmt(det['auc'])} [{_fmt(det['auc_low'])}, {_fmt(det['auc_high'])}]" if det else "-"
        retrained = flips and flips.get("retrained")
        r = f"{_fmt(rho['mean'])} [{_fmt(rho['ci_low'])}, {_fmt(rho['ci_high'])}]" if rho else "-"
        return (f"{label:<28} {a:<22} {_fmt(det and det['precision_at_flipped']):>6} {r:<22} "
                f"{(str(c['distinct']) if c else '-'):>5} {_fmt(flips and flips['share'][-1]):>9} "
                f"{_fmt(retrained and retrained['share'][-1]):>7} {_fmt(short):>6}")
    for label in labels:
        found = cut.get("estimators", {}).get(label)
        rows.append(row(label, mis.get("estimators", {}).get(label), rnd.get(label), card.get(label),
                        brit.get("estimators", {}).get(label), found and found["share"]))
    for gold in mis.get("gold", []):
        rows.append(row(f"gold self-infl. h={gold['horizon']}", gold, None, None, None))
    if brit:
        rows.append(row("random removal", None, None, None, brit["random"]))
    if cut:
        rows.append(row("shortcut chance", None, None, None, None, cut["n_planted"] / cut["n_train"]))
    for label, why in mis.get("not_applicable", {}).items():
        rows.append(f"note: {label} mislabel: {why}")
    for label, errors in payload.get("errors", {}).items():
        rows += [f"error: {label} {check}: {msg}" for check, msg in errors.items()]
    return "\n".join(rows)
