"""`taylor_snapshot`: the neural Taylor approximation of a Keras model at its current weights."""

from typing import Mapping

import keras
import numpy as np
import tensorflow as tf

from keras_taylor import jacobians, walker
from keras_taylor.errors import ShapeMismatchError
from keras_taylor.losses import resolve_loss
from keras_taylor.taylor import TaylorSnapshot


def _parameter_slots(model: keras.Model) -> tuple:
    owners = {}
    for layer in walker.weighted_layers(model):
        for part, variable in enumerate(walker.layer_weights(layer)):
            owners[id(variable)] = (layer.name, part)
    slots = []
    for variable in model.trainable_weights:
        if id(variable) not in owners:
            raise ValueError(
                f"Trainable weight '{variable.path}' belongs to no Dense/Conv2D layer; "
                "keras_taylor cannot linearize it."
            )
        slots.append(owners[id(variable)])
    return tuple(slots)


def taylor_snapshot(
    model: keras.Model,
    x,
    y,
    loss=None,
    *,
    training: bool = False,
    dropout_masks: Mapping | None = None,
    layers=None,
    convex: bool = False,
) -> TaylorSnapshot:
    """The neural Taylor approximation T^n of `model` on `(x, y)` at its current weights.

    The expansion point W^n is the model's current weights. Outside a training step
    the model runs in inference mode (`training=False`): dropout is off. With
    `training=True` dropout draws its masks from each layer's seed generator (or
    reuses `dropout_masks`) and the snapshot linearizes exactly that pass; the masks
    used are in `.dropout_masks`.

    A model ending in a softmax (sigmoid) trained with a probability-space (binary)
    cross-entropy is linearized at its logits, where the loss is the from-logits
    cross-entropy; this keeps the Taylor loss convex. `.outputs` are then the logits.

    Args:
        model: A built Sequential or functional model of supported layers.
        x: Inputs `[B, ...]`.
        y: Targets as the loss reads them.
        loss: A Keras loss (name, function or object); default the model's compiled loss.
        training: Run the forward pass in training mode.
        dropout_masks: Dropout layer name -> scaled keep mask to reuse.
        layers: Layers to expand (names or layers); default all. The network scale
            needs all trainable layers.
        convex: Declare a loss outside the known convex ones convex in the outputs.

    Returns:
        A `TaylorSnapshot`.

    Raises:
        UnsupportedLayerError: naming a layer that cannot be linearized.
        NonConvexLossError: for a loss not known to be convex in the outputs.
        ShapeMismatchError: for targets that do not fit the outputs.
    """
    layer_names = walker.weighted_layer_names(model, layers)
    slots = _parameter_slots(model)
    if loss is None:
        loss = getattr(model, "loss", None)
    x = tf.convert_to_tensor(x, dtype=model.inputs[0].dtype)
    if x.shape[0] is not None and np.shape(y)[:1] != (x.shape[0],):
        raise ShapeMismatchError(
            f"x has {x.shape[0]} examples but y has shape {np.shape(y)}."
        )
    with tf.GradientTape(persistent=True) as tape:
        trace = walker.forward(model, x, training=training, dropout_masks=dropout_masks)
        resolved = resolve_loss(loss, output_activation=trace.output_activation, convex=convex)
        outputs = jacobians.linearization_outputs(trace, resolved.at_logits)
    outputs_np = np.asarray(outputs)
    targets = resolved.convex_loss.check_targets(outputs_np.shape, np.asarray(y))
    real_loss = float(resolved.keras_loss(y, trace.model_outputs))
    factors = jacobians.factors_from_trace(model, tape, trace, outputs, layer_names)
    return TaylorSnapshot(
        outputs=outputs_np,
        targets=targets,
        loss=real_loss,
        convex_loss=resolved.convex_loss,
        factors=factors,
        parameter_slots=slots,
        masks=walker.to_numpy(trace.masks),
        dropout_masks=walker.to_numpy(trace.dropout_masks),
        at_logits=resolved.at_logits,
        training=training,
    )
