"""The frozen part of a pretrained model, computed once per data set and cached.

For a `minilm` task only the last `trainable_layers` encoder layers, the pooler and the head are
fine-tuned and attributed; the embeddings and the first 6 − k layers never change. Their outputs
on every example are computed once (`text_models.minilm_features`), saved under
`<cache>/features/`, and become the inputs `x` of the task, so neither final training, further
training nor any estimator pays for the frozen layers again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from tdabench.storage import UnitStore, run_units
from tdabench.task.data import Dataset
from tdabench.task.spec import TaskSpec, canonical_settings

FEATURES_FORMAT = 2  # 2: mean-pooled sentence embeddings (1 took the [CLS] state)


def _settings(spec: TaskSpec) -> dict:
    """What the frozen features depend on. Data fields added to the spec later enter only when they
    differ from their defaults (`canonical_settings`), so a new field does not recompute the features."""
    data = canonical_settings({"data": dataclasses.asdict(spec.data)})["data"]
    return {"format": FEATURES_FORMAT, "data": data,
            "frozen_layers": 6 - spec.model.trainable_layers, "dtype": spec.dtype}


def _entry(spec: TaskSpec, root: Path) -> Path:
    blob = json.dumps(_settings(spec), sort_keys=True).encode()
    return root / "features" / f"minilm-{hashlib.sha256(blob).hexdigest()[:16]}"


def with_frozen_features(spec: TaskSpec, data: Dataset, root: Path) -> Dataset:
    """`data` with token ids replaced by the frozen layers' outputs (cached)."""
    from tdabench.task.text_models import MINILM_LAYERS, minilm_features

    def compute(_: str) -> dict[str, torch.Tensor]:
        frozen = MINILM_LAYERS - spec.model.trainable_layers
        return {name: minilm_features(getattr(data, name).x, frozen).to(getattr(torch, spec.dtype))
                for name in ("train", "test")}

    done, _ = run_units(UnitStore(_entry(spec, root), _settings(spec), keys=("train", "test")), ["features"], compute)
    saved = done["features"]
    return dataclasses.replace(data, train=dataclasses.replace(data.train, x=saved["train"]),
                               test=dataclasses.replace(data.test, x=saved["test"]))
