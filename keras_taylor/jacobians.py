"""Per-example Jacobians G_l of the network output w.r.t. a layer's weights.

Two routes, both on `tf.GradientTape.batch_jacobian`:

- `weight_jacobian`: the full tensor `[B, p_L, *kernel.shape]`, by giving every
  example its own copy of the kernel and differentiating per example. It holds
  p_L × |W_l| numbers per example (for the MNIST autoencoder's first layer
  784 × 39,200 ≈ 31M), so it refuses past `max_elements`.
- `layer_factors`: the factored form that everything large uses, ∂f/∂z_l
  `[B, p_L, p_l]` plus the layer input (dense) or input patches (conv), from which
  every contraction with G_l follows (`keras_taylor.taylor.LayerFactors`).
"""

from typing import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_taylor import walker
from keras_taylor.taylor import LayerFactors

_DEFAULT_MAX_ELEMENTS = 50_000_000


def linearization_outputs(trace: walker.ForwardTrace, at_logits: bool) -> tf.Tensor:
    """The tensor the Taylor expansion is taken of: logits or model outputs."""
    if at_logits:
        if trace.output_activation is None:
            raise ValueError("at_logits=True, but the model does not end in a softmax or sigmoid.")
        return trace.outputs
    return trace.model_outputs


def factors_from_trace(
    model: keras.Model,
    tape: tf.GradientTape,
    trace: walker.ForwardTrace,
    outputs: tf.Tensor,
    layer_names: Sequence[str],
) -> dict[str, LayerFactors]:
    """Builds `LayerFactors` for `layer_names` from a forward pass on a persistent tape."""
    factors = {}
    for name in layer_names:
        layer = model.get_layer(name)
        jac_out_wrt_preact = tape.batch_jacobian(
            outputs,
            trace.preactivations[name],
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        geometry = {}
        if walker.classify_layer(layer) == "conv2d":
            geometry = dict(
                kernel_size=tuple(layer.kernel_size),
                strides=tuple(layer.strides),
                padding=layer.padding,
                dilation_rate=tuple(layer.dilation_rate),
            )
        factors[name] = LayerFactors(
            name=name,
            kind=walker.classify_layer(layer),
            inputs=np.asarray(trace.layer_inputs[name]),
            jac_out_wrt_preact=np.asarray(jac_out_wrt_preact),
            kernel=np.asarray(layer.kernel),
            bias=None if layer.bias is None else np.asarray(layer.bias),
            **geometry,
        )
    return factors


def layer_factors(
    model: keras.Model,
    inputs,
    layers=None,
    *,
    at_logits: bool = False,
    training: bool = False,
    dropout_masks: Mapping | None = None,
) -> dict[str, LayerFactors]:
    """The factored Taylor data of each chosen layer on one batch.

    Args:
        model: A built Sequential or functional model of supported layers.
        inputs: `[B, ...]` batch.
        layers: Layer names or layers; default every layer with weights.
        at_logits: Differentiate the logits before a final softmax or sigmoid.
        training: Run dropout in training mode.
        dropout_masks: Dropout layer name -> keep mask to reuse.

    Returns:
        Layer name -> `LayerFactors` (∂f/∂z `[B, p_L, *z.shape]` and the layer input).
    """
    names = walker.weighted_layer_names(model, layers)
    with tf.GradientTape(persistent=True) as tape:
        trace = walker.forward(model, inputs, training=training, dropout_masks=dropout_masks)
        outputs = linearization_outputs(trace, at_logits)
    return factors_from_trace(model, tape, trace, outputs, names)


def weight_jacobian(
    model: keras.Model,
    inputs,
    layer,
    *,
    weight: str = "kernel",
    at_logits: bool = False,
    training: bool = False,
    dropout_masks: Mapping | None = None,
    max_elements: int = _DEFAULT_MAX_ELEMENTS,
) -> np.ndarray:
    """The per-example Jacobian G_l of the output w.r.t. a layer's kernel (or bias).

    Args:
        model: A built Sequential or functional model of supported layers.
        inputs: `[B, ...]` batch.
        layer: Layer name or layer with weights.
        weight: "kernel" for `[B, p_L, *kernel.shape]`, "bias" for `[B, p_L, units]`.
        at_logits: Differentiate the logits before a final softmax or sigmoid.
        training: Run dropout in training mode.
        dropout_masks: Dropout layer name -> keep mask to reuse.
        max_elements: Refuse to materialize more numbers than this.

    Returns:
        G_l as a NumPy array, one slice per output component.

    Raises:
        ValueError: for an unknown weight, a layer without bias, or a G_l larger
            than `max_elements` (use `layer_factors` then).
    """
    layer = walker.resolve_layer(model, layer)
    if weight not in ("kernel", "bias"):
        raise ValueError(f"weight must be 'kernel' or 'bias'. Received: weight={weight!r}")
    if weight == "bias" and layer.bias is None:
        raise ValueError(f"Layer '{layer.name}' has no bias.")
    batch_size = int(np.shape(inputs)[0])
    num_outputs = int(np.prod(model.outputs[0].shape[1:]))
    target = layer.kernel if weight == "kernel" else layer.bias
    elements = batch_size * num_outputs * int(np.prod(target.shape))
    if elements > max_elements:
        raise ValueError(
            f"G for layer '{layer.name}' {weight} would hold {elements:,} numbers "
            f"([B={batch_size}, p_L={num_outputs}, *{tuple(target.shape)}]), more than "
            f"max_elements={max_elements:,}. Use keras_taylor.jacobians.layer_factors, the "
            "factored form."
        )
    with tf.GradientTape() as tape:
        trace = walker.forward(
            model,
            inputs,
            training=training,
            dropout_masks=dropout_masks,
            per_example_layer=layer.name,
        )
        outputs = linearization_outputs(trace, at_logits)
    per_example = trace.per_example_weights[layer.name][0 if weight == "kernel" else 1]
    jacobian = tape.batch_jacobian(
        outputs, per_example, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    return np.asarray(jacobian)
