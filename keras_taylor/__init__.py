"""keras_taylor: neural Taylor approximations, regret and exploration for Keras rectifier networks.

Balduzzi, McWilliams, Butler-Yeoman, "Neural Taylor Approximations: Convergence
and Exploration in Rectifier Networks", ICML 2017.

Names are imported on first use, so that the NumPy-only parts (run storage,
sufficient statistics, the Taylor snapshot's algebra) load without TensorFlow.
"""

import importlib

__version__ = "0.1.0"

_ATTRIBUTES = {
    "LayerFactors": ("keras_taylor.taylor", "LayerFactors"),
    "TaylorSnapshot": ("keras_taylor.taylor", "TaylorSnapshot"),
    "activation_masks": ("keras_taylor.masks", "activation_masks"),
    "load_run": ("keras_taylor.storage", "load_run"),
    "taylor_snapshot": ("keras_taylor.snapshot", "taylor_snapshot"),
}
_SUBMODULES = (
    "analysis",
    "callbacks",
    "data",
    "errors",
    "experiments",
    "exploration",
    "jacobians",
    "layers",
    "losses",
    "models",
    "open_questions",
    "optimizers",
    "plotting",
    "quadratic_terms",
    "schedules",
    "schema",
    "storage",
)

__all__ = sorted(_ATTRIBUTES) + list(_SUBMODULES)


def __getattr__(name):
    if name in _ATTRIBUTES:
        module, attribute = _ATTRIBUTES[name]
        return getattr(importlib.import_module(module), attribute)
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_taylor.{name}")
    raise AttributeError(f"module 'keras_taylor' has no attribute {name!r}")


def __dir__():
    return __all__
