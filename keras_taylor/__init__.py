"""keras_taylor: neural Taylor approximations, regret and exploration for Keras rectifier networks.

Balduzzi, McWilliams, Butler-Yeoman, "Neural Taylor Approximations: Convergence
and Exploration in Rectifier Networks", ICML 2017.
"""

__version__ = "0.1.0"

from keras_taylor import data
from keras_taylor import errors
from keras_taylor import jacobians
from keras_taylor import layers
from keras_taylor import losses
from keras_taylor import models
from keras_taylor import optimizers
from keras_taylor.masks import activation_masks
from keras_taylor.snapshot import taylor_snapshot
from keras_taylor.taylor import LayerFactors
from keras_taylor.taylor import TaylorSnapshot

__all__ = [
    "LayerFactors",
    "TaylorSnapshot",
    "activation_masks",
    "data",
    "errors",
    "jacobians",
    "layers",
    "losses",
    "models",
    "optimizers",
    "taylor_snapshot",
]
