"""Keras callbacks that record what the regret and exploration analyses need.

`TaylorRecorder` writes the loss of every recorded round and, per layer and scale, the
data of the Taylor optimum along the route its plan chose (`keras_taylor.recording`).
`ActivationRecorder` writes the activation configuration of every rectifier on a fixed
probe set, bit-packed. Both work from `model.fit(callbacks=[...])` and from a custom
training loop (`attach`, `step`, `close`; see their docstrings).
"""

from keras_taylor.callbacks.activation_recorder import ActivationRecorder
from keras_taylor.callbacks.taylor_recorder import TaylorRecorder

__all__ = ["ActivationRecorder", "TaylorRecorder"]
