"""An example task plugin: `wine-tiny`, a small MLP on scikit-learn's wine data, built by the factory
below (the spec names it as `tdabench_example_tasks:build_mlp`)."""

from pathlib import Path

from torch import nn


def specs_folder() -> Path:
    """The folder of this package's task specs (the `tdabench.tasks` entry point)."""
    return Path(__file__).parent / "specs"


def build_mlp(n_inputs: int, width: int, n_classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_inputs, width), nn.Tanh(), nn.Linear(width, n_classes))
