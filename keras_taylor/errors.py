"""Exceptions that name what is wrong with the caller's model, loss or arrays.

All of them subclass `ValueError`, as Keras does for bad arguments, so callers
that already catch `ValueError` keep working.
"""


class UnsupportedLayerError(ValueError):
    """A layer that the Taylor machinery cannot linearize (named in the message)."""


class UnsupportedModelError(ValueError):
    """A model structure (subclassed, multi-output, nested) that cannot be walked."""


class NonConvexLossError(ValueError):
    """A loss that is not known to be convex and differentiable in the network outputs (the message says why)."""


class ShapeMismatchError(ValueError):
    """Arrays whose shapes do not fit the model, the loss or the chosen scale."""
