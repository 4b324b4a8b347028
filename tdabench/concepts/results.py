"""The file of `tdabench concepts`: DIR/concepts.json, its own schema version, and text tables.

Layout (schema version 1)::

    {"schema_version": 1, "kind": "tdabench-concepts", "tdabench_version", "git_hash", "date",
     "task": {"name", "version", "spec_hash"}, "concept": "closed-loop", "settings": {...},
     "final_model": {"train": {...}, "test": {...}}, "n_train", "n_test", "concept_share": {"train", "test"},
     "layers": [{"layer", "dim", "accuracy", "loss", "train_accuracy", "l1_c", "nonzero",
                 "nonzero_share", "l1_accuracy"}, ...],            (the final model's probes, forward order)
     "best_layer": "4",
     "agreement": {layer: {"records": [{"estimator", "horizon", "metric", "mean", "ci_low", "ci_high",
                                         "n_test", "n_skipped"}],
                           "noise_ceiling": [{"horizon", "metric", "value"}],
                           "gold_standard": {"mode", "seeds", "horizons", "horizon_unit",
                                             "n_train_evaluated", "n_test", "seconds"},
                           "errors": {label: "what went wrong"}}},
     "removal": null | {"estimator", "layer", "test_idx", "ks", "fractions", "seeds", "removed" (the
                 top max(ks) instances, in order), "removed_concept_share" (per k: the share of the
                 top k that have the concept), "score_s", "further": {"horizon", "horizon_unit", "steps"},
                 "modes": {"retrain" | "further": {"conditions": ["none", "top-k"…, "random-k"…], "layers",
                           "per_seed": [seed][condition][layer] layer entries as above,
                           "summary": {condition: {layer: {metric: {"value" | "delta" | "vs_random":
                                                                     {"mean", "low", "high"}}}}},
                           "best_layer": {condition: layer}, "seconds"}}},
     "seconds": {"probes_s", "agreement_s"}}

Fields may be added; none is renamed or removed without raising CONCEPTS_SCHEMA_VERSION, and a file
of another version or kind is refused on reading. No NaN or Infinity is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tdabench.storage import read_payload, write_payload

CONCEPTS_SCHEMA_VERSION = 1
FILE_NAME = "concepts.json"
KIND = "tdabench-concepts"


def write_concepts(payload: dict[str, Any], out_dir: str | Path) -> Path:
    """Write `payload` (with its schema version) to out_dir/concepts.json atomically."""
    return write_payload(payload, Path(out_dir) / FILE_NAME, KIND, CONCEPTS_SCHEMA_VERSION)


def read_concepts(path_or_dir: str | Path) -> dict[str, Any]:
    """Read a concepts file (or DIR/concepts.json); another schema version or kind is refused."""
    return read_payload(path_or_dir, FILE_NAME, KIND, CONCEPTS_SCHEMA_VERSION, "concepts results file")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ci(entry: dict[str, float | None]) -> str:
    return f"{_fmt(entry['mean'])} [{_fmt(entry['low'])},{_fmt(entry['high'])}]"


def agreement_at_longest(entry: dict[str, Any], estimator: str, metric: str) -> dict | None:
    """The record of `estimator` in `metric` at the longest horizon it has a mean at (None: none)."""
    found = [r for r in entry["records"] if r["estimator"] == estimator and r["metric"] == metric
             and r["mean"] is not None]
    return max(found, key=lambda r: r["horizon"]) if found else None


def layers_table(payload: dict[str, Any], metric: str = "pearson") -> str:
    """One row per layer: dim, probe test accuracy, L1 C, non-zero share, and each estimator's
    agreement (`metric`, longest horizon) with the layer's gold standard."""
    estimators = payload["settings"]["estimators"] if payload["agreement"] else []
    header = f"{'layer':<22} {'dim':>6} {'acc':>6} {'loss':>6} {'L1 C':>6} {'nonzero':>8} " + " ".join(
        f"{e[:14]:>15}" for e in estimators)
    rows = [header, "-" * len(header)]
    for p in payload["layers"]:
        cells = []
        for e in estimators:
            record = agreement_at_longest(payload["agreement"].get(p["layer"], {"records": []}), e, metric)
            cells.append(f"{_fmt(record and record['mean']):>15}")
        best = " *" if p["layer"] == payload["best_layer"] else ""
        rows.append(f"{p['layer'] + best:<22} {p['dim']:>6} {p['accuracy']:>6.3f} {p['loss']:>6.3f} {p['l1_c']:>6.3g} "
                    f"{p['nonzero_share']:>8.3f} " + " ".join(cells))
    return "\n".join(rows)


def removal_table(payload: dict[str, Any], metrics: tuple[str, ...] = ("accuracy", "loss")) -> str:
    """Per removal mode, condition and layer: the change of each of `metrics` against none, and for
    top-k its difference from random-k, with 95% t-intervals over seeds."""
    removal = payload.get("removal")
    if not removal:
        return ""
    rows = [f"removal: {removal['estimator']} attributions to probe:{removal['layer']}, "
            f"{len(removal['test_idx'])} concept test points, {removal['seeds']} seeds; share of the concept "
            f"among the top k: " + ", ".join(f"k={k} {_fmt(v, 2)}" for k, v in
                                             zip(removal["ks"], removal.get("removed_concept_share", []))) +
            f" (training split {_fmt(payload['concept_share']['train'], 2)}); probe test "
            f"{' and '.join(metrics)}: mean change [95% t-interval]"]
    for mode, entry in removal["modes"].items():
        rows.append(f"\n{mode}: best layer per condition: " +
                    ", ".join(f"{c} {layer}" for c, layer in entry["best_layer"].items()))
        rows.append(f"{'condition':<11} {'layer':<16} " + " ".join(
            f"{'Δ' + m + ' vs none':<26} {'Δ' + m + ' top − random':<26}" for m in metrics))
        for condition in entry["conditions"][1:]:
            for layer in entry["layers"]:
                cells = []
                for m in metrics:
                    cell = entry["summary"][condition][layer][m]
                    cells.append(f"{_ci(cell['delta']):<26} {(_ci(cell['vs_random']) if 'vs_random' in cell else ''):<26}")
                rows.append(f"{condition:<11} {layer:<16} " + " ".join(cells))
    return "\n".join(rows)
