"""Estimators: the base contract, the inner-product template and the built-in estimators.

Importing this package registers the built-ins in `tdabench.registry.estimators` (the registry
imports it on first use); the adapters to other libraries are registered by address and imported
only when used, and each imports its library only when fitted, so the libraries are not needed to
list (an adapter is told by its class's `adapter_of`) or run the native estimators.
"""

from tdabench.estimators.arnoldi import ArnoldiInfluence
from tdabench.estimators.base import Estimator, clone
from tdabench.estimators.datainf import DataInf
from tdabench.estimators.grad_dot import GradCos, GradDot
from tdabench.estimators.horizon import HorizonLissa
from tdabench.estimators.influence import ExplicitInfluence
from tdabench.estimators.inner_product import InnerProductEstimator
from tdabench.estimators.iterative import ConjugateGradientInfluence, LissaInfluence
from tdabench.estimators.kfac import EKFAC, KFAC
from tdabench.estimators.tracin import TracIn
from tdabench.estimators.trak import Trak
from tdabench.registry import estimators as _registry

# Adapters to the reference libraries: registered by address, imported on first use.
ADAPTERS = {
    "tracin-captum": "tdabench.adapters.captum_tracin:TracInCaptum",
    "if-dattri": "tdabench.adapters.dattri_influence:InfluenceDattri",
    "trak-traker": "tdabench.adapters.traker_trak:TrakTraker",
    "ekfac-kronfluence": "tdabench.adapters.kronfluence_ekfac:EkfacKronfluence",
}
for _name, _target in ADAPTERS.items():
    _registry.register_lazy(_name, _target)

__all__ = ["ArnoldiInfluence", "ConjugateGradientInfluence", "DataInf", "EKFAC", "Estimator", "ExplicitInfluence",
           "GradCos", "GradDot", "HorizonLissa", "InnerProductEstimator", "KFAC", "LissaInfluence", "TracIn", "Trak",
           "clone"]
