"""tdabench: gradient-based training-data attribution measured against further training.

Conventions (see docs/method.md): score matrices are float arrays of shape (n_test, n_train); a positive
score means that removing (down-weighting) the training instance *increases* the target.
"""

__version__ = "0.1.0"
