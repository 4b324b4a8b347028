"""Estimators: the base contract, the inner-product template and the built-in estimators.

Importing this package registers the built-ins (`grad-dot`, `grad-cos`, `if-explicit`) in
`tdabench.registry.estimators`; the registry imports it on first use.
"""

from tdabench.estimators.base import Estimator, clone
from tdabench.estimators.grad_dot import GradCos, GradDot
from tdabench.estimators.influence import ExplicitInfluence
from tdabench.estimators.inner_product import InnerProductEstimator

__all__ = ["Estimator", "ExplicitInfluence", "GradCos", "GradDot", "InnerProductEstimator", "clone"]
