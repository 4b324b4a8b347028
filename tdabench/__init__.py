"""tdabench: gradient-based training-data attribution measured against further training.

Conventions (docs/method.md): score matrices are float arrays of shape (n_test, n_train); a positive
score means that removing (down-weighting) the training instance *increases* the target.
The Python API is `tdabench.api` (task_from_module, compare).
"""

__version__ = "0.1.0"
