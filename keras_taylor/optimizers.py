"""Optimizers the paper discusses that Keras does not ship, and name lookup for the rest."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_taylor")
class SignSGD(keras.optimizers.Optimizer):
    """Steps along the signed gradient: W ← W − lr · sign(∇).

    The paper's Observation 3 links RMS normalization to RProp: sign(∇) is the
    vertex of the ℓ∞ unit ball that maximizes ⟨x, ∇⟩, and so the point of largest
    ℓ1 norm on the ball with ⟨x, ∇⟩ ≥ 0. RMSProp with decay → 0 and ε → 0 takes
    exactly this step.

    Args:
        learning_rate: Step length per coordinate.
        **kwargs: Any `keras.optimizers.Optimizer` argument.
    """

    def __init__(self, learning_rate=1e-3, name="sign_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        self.assign_sub(variable, learning_rate * ops.sign(gradient))
