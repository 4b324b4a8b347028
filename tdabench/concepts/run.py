"""`tdabench concepts`: a concept across the layers of the final model, and what removing the data it
is attributed to does to it (Konz et al. 2023, "Attributing Learned Concepts in Neural Networks to
Training Data").

Flow: validate every setting and estimator (options.py; before anything trains) → final model
(cached) → per layer, the probes on the final model (probes.py) → per layer, each estimator's
agreement with the gold standard of the target probe:LAYER (agreement.py, `tdabench compare`'s
machinery) → the removal experiment (removal.py, summary.py) → one payload for results.py.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import torch

from tdabench import __version__
from tdabench.compare import CompareOptions
from tdabench.concepts.agreement import agreement_by_layer
from tdabench.concepts.layers import layer_activations
from tdabench.concepts.options import ConceptOptions, check_task
from tdabench.concepts.probes import LayerProbe, best_layer, layer_probe
from tdabench.concepts.removal import (FURTHER, RETRAIN, concept_test_points, condition_names, copy_probes,
                                       keep_masks, metric_array, random_order, removal_order, trained_copies)
from tdabench.concepts.results import CONCEPTS_SCHEMA_VERSION, KIND
from tdabench.concepts.summary import best_layers, summarise
from tdabench.errors import TdabenchError
from tdabench.estimators.base import Estimator
from tdabench.progress import bar, shown
from tdabench.registry import make_estimator
from tdabench.results import git_hash, now_iso
from tdabench.task import TaskContext, build_context, find_spec
from tdabench.task.concepts import concept_labels
from tdabench.task.context import load_task_data
from tdabench.task.models import model_for_data
from tdabench.task.schedule import steps_per_epoch


def run_concepts(options: ConceptOptions) -> dict[str, Any]:
    """Everything of `options` on its task; the payload of results.py (module docstring)."""
    spec = find_spec(options.task)
    labels = [r.label for r in options.estimators]
    if len(set(labels)) != len(labels):
        raise TdabenchError(f"an estimator is listed twice: {', '.join(labels)}")
    for request in options.estimators:
        make_estimator(request.name, **request.params)  # a bad name or parameter fails here
    remover = make_estimator(options.removal_estimator.name, **options.removal_estimator.params)
    data = load_task_data(spec, options.cache_dir)
    layers, ks = check_task(spec, options, data, model_for_data(spec.model, data, getattr(torch, spec.dtype)))
    started = time.perf_counter()
    with shown(options.progress):
        ctx = build_context(spec, options.cache_dir, data=data)
        y_train, y_test = concept_labels(spec.concept, ctx.train), concept_labels(spec.concept, ctx.test)
        probes = final_model_probes(ctx, layers, y_train, y_test, options)
        seconds = {"probes_s": round(time.perf_counter() - started, 2)}
        agreement = agreement_by_layer(_compare_options(options), layers) if options.estimators else {}
        seconds["agreement_s"] = round(time.perf_counter() - started - seconds["probes_s"], 2)
        removal = (removal_experiment(ctx, remover, probes, ks, y_train, y_test, options)
                   if options.removal else None)
    return {"schema_version": CONCEPTS_SCHEMA_VERSION, "kind": KIND, "tdabench_version": __version__,
            "git_hash": git_hash(), "date": now_iso(),
            "task": {"name": spec.name, "version": spec.version, "spec_hash": spec.spec_hash},
            "concept": spec.concept, "settings": options.settings(), "final_model": ctx.final_metrics,
            "n_train": len(ctx.train), "n_test": len(ctx.test),
            "concept_share": {"train": float(np.mean(y_train)), "test": float(np.mean(y_test))},
            "layers": [p.to_json() for p in probes], "best_layer": best_layer(probes),
            "agreement": agreement, "removal": removal, "seconds": seconds}


def final_model_probes(ctx: TaskContext, layers: Sequence[str], y_train: np.ndarray, y_test: np.ndarray,
                       options: ConceptOptions) -> list[LayerProbe]:
    """Both probes of every layer on the final model (the L1 probe's C chosen on validation)."""
    train = layer_activations(ctx.model, ctx.params, ctx.buffers, ctx.train.x, layers)
    test = layer_activations(ctx.model, ctx.params, ctx.buffers, ctx.test.x, layers)
    return [layer_probe(layer, train[layer], test[layer], y_train, y_test, ctx.spec.concept, None, options.l1_grid,
                        options.seed) for layer in layers]


def _compare_options(options: ConceptOptions) -> CompareOptions:
    """The comparison of each layer's probe target (its `target` is set per layer)."""
    return CompareOptions(task=options.task, estimators=options.estimators, seeds=options.gold_seeds,
                          horizons=options.gold_horizons, n_train=options.gold_n_train, n_test=options.gold_n_test,
                          cache_dir=options.cache_dir, progress=options.progress)


def further_steps(ctx: TaskContext, horizon: int | None) -> tuple[int, int]:
    """(horizon in the spec's unit (None: its longest), optimizer steps of further training)."""
    gold = ctx.spec.gold_standard
    horizon = horizon or gold.horizons[-1]
    per_epoch = steps_per_epoch(len(ctx.train), gold.further_training.batch_size)
    return horizon, horizon * per_epoch if gold.horizon_unit == "epoch" else horizon


def removal_experiment(ctx: TaskContext, remover: Estimator, probes: list[LayerProbe], ks: list[int],
                       y_train: np.ndarray, y_test: np.ndarray, options: ConceptOptions) -> dict[str, Any]:
    """Rank by the estimator's attribution to the probe of the removal layer, then train the copies of
    every seed in each removal mode and re-fit their probes (removal.py, summary.py)."""
    layers = [p.layer for p in probes]
    layer = options.removal_layer or best_layer(probes)
    test_idx = concept_test_points(y_test, options.n_concept_test, options.seed)
    started = time.perf_counter()
    scores = remover.fit(ctx.with_target(f"probe:{layer}")).score(test_idx, np.arange(len(ctx.train)))
    order = removal_order(scores)
    horizon, steps = further_steps(ctx, options.horizon)
    out = {"estimator": options.removal_estimator.label, "layer": layer, "test_idx": [int(i) for i in test_idx],
           "ks": ks, "fractions": list(options.fractions), "seeds": options.seeds,
           "removed": [int(i) for i in order[:ks[-1]]], "score_s": round(time.perf_counter() - started, 2),
           "removed_concept_share": [float(np.mean(y_train[order[:k]])) for k in ks],
           "further": {"horizon": horizon, "horizon_unit": ctx.spec.gold_standard.horizon_unit, "steps": steps},
           "modes": {}}
    conditions, l1_cs = condition_names(ks), {p.layer: p.l1_c for p in probes}
    for mode in options.removal:
        started = time.perf_counter()
        per_seed = []
        units = ctx.spec.training.epochs if mode == RETRAIN else steps
        with bar(units * options.seeds, f"concept removal, {mode}", "epoch" if mode == RETRAIN else "step") as progress:
            for seed in range(options.seeds):
                keep = keep_masks(order, random_order(len(ctx.train), seed), ks)
                stacked = trained_copies(ctx, keep, mode, seed, steps, lambda: progress.update(1))
                per_seed.append(copy_probes(ctx, stacked, layers, y_train, y_test, l1_cs))
        values = metric_array(per_seed)
        out["modes"][mode] = {"conditions": conditions, "layers": layers,
                              "per_seed": [[[p.to_json() for p in row] for row in seed] for seed in per_seed],
                              "summary": summarise(values, conditions, layers),
                              "best_layer": best_layers(values, conditions, layers),
                              "seconds": round(time.perf_counter() - started, 2)}
    return out


__all__ = ["ConceptOptions", "FURTHER", "RETRAIN", "run_concepts"]
