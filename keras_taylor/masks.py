"""`activation_masks`: which rectifiers are on, for any Keras model.

The activation configuration of the paper (Sec. 3.3) is, per data point, the
set of ReLUs whose pre-activation is positive. For every rectifier form the
rectifier's output is positive exactly where its pre-activation is, so the mask
is read off each rectifier's output. The layers' `call` is wrapped for one
forward pass, which works for Sequential, functional and subclassed models.
"""

import contextlib

import keras
import numpy as np

from keras_taylor import layers as kt_layers

_RECTIFIED_TYPES = (kt_layers.RectifiedDense, kt_layers.RectifiedConv2D)


def is_rectifier(layer) -> bool:
    """Whether `layer` ends in a plain ReLU (any of the forms keras_taylor knows)."""
    if isinstance(layer, _RECTIFIED_TYPES):
        return True
    if isinstance(layer, keras.layers.ReLU):
        return layer.max_value is None and layer.negative_slope == 0 and layer.threshold == 0
    if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D, keras.layers.Activation)):
        return getattr(layer.activation, "__name__", None) == "relu"
    return False


def rectifier_layers(model: keras.Model) -> list:
    """Every rectifier layer of `model`, nested models included, in layer order."""
    found = []
    for layer in model.layers:
        if is_rectifier(layer):
            found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(rectifier_layers(layer))
    return found


@contextlib.contextmanager
def _capturing_outputs(layers, captured):
    originals = {}
    for layer in layers:
        original_call = layer.call

        def capture(*args, _layer=layer, _call=original_call, **kwargs):
            outputs = _call(*args, **kwargs)
            if _layer.name in captured:
                raise ValueError(
                    f"Rectifier layer '{_layer.name}' ran twice in one forward pass; "
                    "activation_masks does not support shared layers."
                )
            captured[_layer.name] = outputs[0] if isinstance(outputs, tuple) else outputs
            return outputs

        originals[layer] = original_call
        layer.call = capture
    try:
        yield
    finally:
        for layer, original_call in originals.items():
            layer.call = original_call


def activation_masks(model: keras.Model, x, training: bool = False) -> dict[str, np.ndarray]:
    """The boolean activation mask of every rectifier in `model` on the batch `x`.

    Args:
        model: Any Keras model.
        x: Inputs `[B, ...]`.
        training: Passed to the model call (dropout, batch statistics).

    Returns:
        Layer name -> bool array `[B, *units]`, True where the unit is on.

    Raises:
        ValueError: if the model has no rectifier.
    """
    layers = rectifier_layers(model)
    if not layers:
        raise ValueError(
            f"Model '{model.name}' has no rectifier (ReLU) layer, so it has no activation masks."
        )
    captured = {}
    with _capturing_outputs(layers, captured):
        model(x, training=training)
    return {layer.name: np.asarray(captured[layer.name]) > 0 for layer in layers if layer.name in captured}
