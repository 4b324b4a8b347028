"""What each estimator declares it reads (`uses`), and that the declaration is what it reads."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tdabench.errors import TdabenchError
from tdabench.estimators.base import Estimator
from tdabench.estimators.inputs import INPUT_LABELS, INPUTS, input_error
from tdabench.registry import estimator_names, estimators, get_estimator, make_estimator
from tdabench.results import Record, Results
from tdabench.task.context import Checkpoint
from tdabench.testing import planted_duplicate_context
from test_results import sample

FINAL_MODEL_ONLY = ["grad-dot", "grad-cos", "if-explicit", "if-cg", "if-lissa", "if-arnoldi", "kfac", "ekfac",
                    "datainf", "trak"]


class _NoRecipe:
    """A task spec whose gold standard (and so its further-training recipe) cannot be read."""

    def __init__(self, spec) -> None:
        self._spec = spec

    def __getattr__(self, name: str):
        if name == "gold_standard":
            raise RuntimeError("the further-training recipe is not available")
        return getattr(self._spec, name)


def _without_recipe():
    ctx = planted_duplicate_context()
    return dataclasses.replace(ctx, spec=_NoRecipe(ctx.spec))


def test_labels_cover_every_input() -> None:
    assert list(INPUT_LABELS) == list(INPUTS) == ["final-model", "training-checkpoints",
                                                   "further-training-recipe", "retrained-models"]


@pytest.mark.parametrize("name", estimator_names())
def test_every_registered_estimator_declares_a_valid_input(name: str) -> None:
    assert input_error(get_estimator(name).uses, name) is None


def test_declarations_of_the_built_ins() -> None:
    declared = {n: get_estimator(n).uses for n in estimator_names()}
    assert declared["if-lissa-horizon"] == "further-training-recipe"
    assert declared["tracin"] == declared["tracin-captum"] == "training-checkpoints"
    assert all(declared[n] == "final-model" for n in FINAL_MODEL_ONLY)


def test_registry_refuses_a_class_without_uses(monkeypatch) -> None:
    estimators.names()
    monkeypatch.setattr(estimators, "_entries", dict(estimators._entries))
    with pytest.raises(TdabenchError) as err:
        estimators.register("test-no-uses")(type("NoUses", (Estimator,), {}))
    message = str(err.value)
    assert "\n" not in message and "test-no-uses" in message and "does not declare `uses`" in message
    assert all(repr(v) in message for v in INPUTS)
    with pytest.raises(TdabenchError, match="declares uses='everything'"):
        estimators.register("test-bad-uses")(type("BadUses", (Estimator,), {"uses": "everything"}))
    assert "test-no-uses" not in estimators and "test-bad-uses" not in estimators


@pytest.mark.parametrize("name", FINAL_MODEL_ONLY + ["tracin"])
def test_final_model_estimators_never_read_the_recipe(name: str) -> None:
    fitted = make_estimator(name).fit(_without_recipe())
    assert np.isfinite(fitted.score(np.arange(3), np.arange(5))).all()
    assert fitted.fitted_input() in ("final-model", "training-checkpoints")


def test_horizon_lissa_reads_the_recipe() -> None:
    with pytest.raises(RuntimeError, match="further-training recipe is not available"):
        make_estimator("if-lissa-horizon").fit(_without_recipe())
    assert make_estimator("if-lissa-horizon").fit(planted_duplicate_context()).fitted_input() == \
        "further-training-recipe"


def test_tracin_says_when_it_had_no_checkpoints() -> None:
    ctx = planted_duplicate_context()
    assert ctx.checkpoints == ()
    assert make_estimator("tracin").fit(ctx).fitted_input() == "final-model"
    with_checkpoint = dataclasses.replace(ctx, checkpoints=(Checkpoint(5, ctx.params, 0.1),))
    assert make_estimator("tracin").fit(with_checkpoint).fitted_input() == "training-checkpoints"
    assert make_estimator("tracin", use_checkpoints=False).fit(with_checkpoint).fitted_input() == "final-model"


def test_uses_round_trips_through_results_json() -> None:
    base = sample()
    record = dataclasses.replace(base.records[0], uses="further-training-recipe")
    results = dataclasses.replace(base, records=[record])
    assert Results.from_json(results.to_json()).records[0].uses == "further-training-recipe"
    old = {k: v for k, v in vars(base.records[0]).items() if k != "uses"}  # a file from before the field
    assert Record(**old).uses is None
