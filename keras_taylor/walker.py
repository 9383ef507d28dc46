"""Walk a Keras model layer by layer, exposing what the Taylor machinery needs.

The neural Taylor approximation needs, for every layer with weights, the
layer's input and its pre-activation on the same forward pass that produced
the output, with every random choice of that pass (dropout) pinned. Keras does
not expose those intermediates, so this module re-executes a Sequential or
functional model op by op with the model's own variables:

- `Dense` / `Conv2D` (and the rectified forms) are computed as an explicit
  affine map followed by their activation, so the pre-activation is a tensor
  on the caller's `tf.GradientTape`.
- `Dropout` in training mode draws its mask from the layer's own seed
  generator, exactly as `Dropout.call` would, or reuses masks passed in.
- A final softmax or sigmoid is split off: the linearization point is the
  logits, which is what keeps the Taylor loss of a cross-entropy convex.

Any other layer is refused by name (`UnsupportedLayerError`).
"""

import dataclasses
from typing import Any, Mapping

import keras
import numpy as np
import tensorflow as tf

from keras_taylor import layers as kt_layers
from keras_taylor.errors import UnsupportedLayerError, UnsupportedModelError

_WEIGHTED_TYPES = {
    keras.layers.Dense: "dense",
    kt_layers.RectifiedDense: "dense",
    keras.layers.Conv2D: "conv2d",
    kt_layers.RectifiedConv2D: "conv2d",
}
_PASSTHROUGH_TYPES = (
    keras.layers.MaxPooling2D,
    keras.layers.Flatten,
    keras.layers.Reshape,
)
_SUPPORTED_DESCRIPTION = (
    "Supported layers: Dense and Conv2D (activation linear or relu, or softmax "
    "or sigmoid on the model output), RectifiedDense, RectifiedConv2D, ReLU(), "
    "Activation('relu' | 'linear' | 'softmax' | 'sigmoid'), Softmax (on the output), "
    "MaxPooling2D, Flatten, Reshape, Dropout, InputLayer."
)


def _activation_name(activation: Any) -> str | None:
    name = getattr(activation, "__name__", None)
    return name if name in ("relu", "linear", "softmax", "sigmoid") else None


def _unsupported(layer, why: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(
        f"Layer '{layer.name}' ({type(layer).__name__}) is not supported: {why}. "
        + _SUPPORTED_DESCRIPTION
    )


def classify_layer(layer) -> str:
    """Says how the walker treats `layer`, or refuses it.

    Returns:
        One of "input", "dense", "conv2d", "relu", "linear", "softmax",
        "sigmoid", "dropout", "passthrough". For "dense" / "conv2d" the layer's own
        activation is given by `layer_activation`.

    Raises:
        UnsupportedLayerError: naming the layer and why it cannot be linearized.
    """
    layer_type = type(layer)
    if isinstance(layer, keras.Model):
        raise UnsupportedModelError(
            f"Nested model '{layer.name}' is not supported: build one flat "
            "Sequential or functional model."
        )
    if layer_type is keras.layers.InputLayer:
        return "input"
    if layer_type in _WEIGHTED_TYPES:
        kind = _WEIGHTED_TYPES[layer_type]
        if layer_activation(layer) is None:
            raise _unsupported(layer, f"activation {layer.activation!r}")
        if kind == "conv2d":
            if layer.data_format != "channels_last":
                raise _unsupported(layer, "data_format must be 'channels_last'")
            if layer.groups != 1:
                raise _unsupported(layer, f"groups={layer.groups} (only 1)")
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            raise _unsupported(layer, "LoRA or quantized kernels")
        return kind
    if layer_type is keras.layers.ReLU:
        if layer.max_value is not None or layer.negative_slope != 0 or layer.threshold != 0:
            raise _unsupported(layer, "only the plain rectifier max(x, 0)")
        return "relu"
    if layer_type is keras.layers.Activation:
        name = _activation_name(layer.activation)
        if name is None:
            raise _unsupported(layer, f"activation {layer.activation!r}")
        return name
    if layer_type is keras.layers.Softmax:
        if layer.axis not in (-1, [-1], (-1,)):
            raise _unsupported(layer, f"softmax over axis {layer.axis}")
        return "softmax"
    if layer_type is keras.layers.Dropout:
        return "dropout"
    if layer_type in _PASSTHROUGH_TYPES:
        return "passthrough"
    raise _unsupported(
        layer,
        "the Taylor approximation only knows how to linearize the layers listed below "
        "(BatchNormalization, for one, mixes examples in training mode)",
    )


def layer_activation(layer) -> str | None:
    """The activation ("linear", "relu", "softmax", "sigmoid") of a Dense/Conv2D-type layer."""
    if type(layer) in (kt_layers.RectifiedDense, kt_layers.RectifiedConv2D):
        return "relu"
    return _activation_name(layer.activation)


def model_layers(model: keras.Model) -> list:
    """The model's layers in execution order, after checking the model can be walked.

    Raises:
        UnsupportedModelError: for subclassed, multi-input or multi-output models.
        UnsupportedLayerError: for the first layer that cannot be linearized.
    """
    if not (isinstance(model, keras.Sequential) or _is_functional(model)):
        raise UnsupportedModelError(
            f"Model '{model.name}' ({type(model).__name__}) is a subclassed model; "
            "keras_taylor walks Sequential and functional models only."
        )
    if not model.built:
        raise UnsupportedModelError(
            f"Model '{model.name}' is not built: call it on a batch or give it an Input first."
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedModelError(
            f"Model '{model.name}' has {len(model.inputs)} inputs and "
            f"{len(model.outputs)} outputs; keras_taylor supports exactly one of each."
        )
    for layer in model.layers:
        classify_layer(layer)
    return list(model.layers)


def check_full_precision(model: keras.Model) -> None:
    """Refuses a model whose layers compute in lower precision than their variables.

    Under a mixed-precision policy ("mixed_float16", "mixed_bfloat16") Keras casts each
    layer's inputs and variables to float16 inside `Layer.__call__`. `forward` runs the
    layers' math itself, so in a training step it would not reproduce that pass (it
    would mix float32 inputs with float16 kernels: recording would change training),
    and the statistics of `keras_taylor.recording` assume one float dtype throughout
    (float16 Jacobians met float32 kernels in a MatMul). Recording from float16
    compute would need the walker to autocast as Keras does and cast every captured
    tensor to float32; until then such a model is refused. (`taylor_snapshot`, which
    runs outside a training step, evaluates the float32 network at the float32
    weights and is not affected.)

    Raises:
        UnsupportedModelError: naming the first such layer and its dtype policy.
    """
    for layer in model_layers(model):
        policy = layer.dtype_policy
        if classify_layer(layer) != "input" and policy.compute_dtype != policy.variable_dtype:
            raise UnsupportedModelError(
                f"Layer '{layer.name}' has dtype policy '{policy.name}' (computes in {policy.compute_dtype}, "
                f"variables in {policy.variable_dtype}): TaylorRecorder does not record mixed precision, "
                "because its re-executed forward pass does not autocast as Keras does. Record a float32 "
                "run: keras.mixed_precision.set_global_policy('float32') before building the model."
            )


def _is_functional(model) -> bool:
    return hasattr(model, "_run_through_graph") and hasattr(model, "_nodes_by_depth")


def weighted_layers(model: keras.Model) -> list:
    """The layers with kernels (Dense/Conv2D types), in execution order."""
    return [layer for layer in model_layers(model) if classify_layer(layer) in ("dense", "conv2d")]


def resolve_layer(model: keras.Model, layer) -> keras.layers.Layer:
    """Accepts a layer name or object and returns the model's weighted layer.

    Raises:
        ValueError: if the model has no such layer or the layer has no kernel.
    """
    candidates = weighted_layers(model)
    for candidate in candidates:
        if candidate is layer or candidate.name == layer:
            return candidate
    names = [candidate.name for candidate in candidates]
    shown = layer if isinstance(layer, str) else getattr(layer, "name", layer)
    raise ValueError(
        f"Model '{model.name}' has no Dense/Conv2D layer {shown!r}; its layers with "
        f"weights are {names}."
    )


def weighted_layer_names(model: keras.Model, layers=None) -> list[str]:
    """The names of `layers` (names or objects; default every Dense/Conv2D layer), checked to exist."""
    if layers is None:
        return [layer.name for layer in weighted_layers(model)]
    return [resolve_layer(model, layer).name for layer in layers]


def layer_weights(layer) -> list:
    """`[kernel, bias]`, or `[kernel]` for a layer built with `use_bias=False`."""
    return [layer.kernel] if layer.bias is None else [layer.kernel, layer.bias]


def conv_patches(inputs: tf.Tensor, layer) -> tf.Tensor:
    """Convolution patches `[B, H', W', kh * kw * C_in]` in the kernel's (kh, kw, C_in) order."""
    kernel_h, kernel_w = layer.kernel_size
    stride_h, stride_w = layer.strides
    rate_h, rate_w = layer.dilation_rate
    return tf.image.extract_patches(
        inputs,
        sizes=[1, kernel_h, kernel_w, 1],
        strides=[1, stride_h, stride_w, 1],
        rates=[1, rate_h, rate_w, 1],
        padding=layer.padding.upper(),
    )


@dataclasses.dataclass
class ForwardTrace:
    """One forward pass, with the intermediates the Taylor machinery reads.

    Attributes:
        outputs: `[B, p_L]`, the point of linearization: the model output, or the
            logits when the model ends in a softmax or sigmoid.
        model_outputs: what the model itself returns (probabilities after a softmax
            or sigmoid).
        output_activation: "softmax" or "sigmoid" when that final activation was split
            off (`outputs` are then its logits), else None.
        layer_inputs: per weighted layer, its input `[B, ...]`.
        preactivations: per weighted layer, its pre-activation `[B, ..., units]`.
        masks: per rectifier layer, `preactivation > 0`.
        dropout_masks: per dropout layer applied in training mode, the scaled keep
            mask that multiplied its input.
        per_example_weights: the tiled `[B, *kernel]` / `[B, *bias]` copies used by
            the full-Jacobian route, for the layer that asked for them.
        weight_values: per weighted layer, the `(kernel, bias)` values the pass read.
    """

    outputs: tf.Tensor
    model_outputs: tf.Tensor
    output_activation: str | None
    layer_inputs: dict
    preactivations: dict
    masks: dict
    dropout_masks: dict
    per_example_weights: dict
    weight_values: dict


class _Walker:
    """Executes one forward pass; see `forward`."""

    def __init__(self, training, dropout_masks, weights, per_example_layer):
        self.training = training
        self.given_dropout_masks = dict(dropout_masks or {})
        self.weights = dict(weights or {})
        self.per_example_layer = per_example_layer
        self.layer_inputs = {}
        self.preactivations = {}
        self.masks = {}
        self.dropout_masks = {}
        self.per_example_weights = {}
        self.weight_values = {}
        self.split_logits = {}
        # Keeps every split-off output alive for the whole pass: `split_logits` is keyed
        # by id(), and a freed tensor's id is reused by later tensors.
        self.split_outputs = []

    def call(self, layer, *args, **kwargs):
        inputs = args[0]
        kind = classify_layer(layer)
        if kind in ("input", "linear"):
            return inputs
        if kind in ("dense", "conv2d"):
            outputs, mask = self._weighted(layer, kind, inputs)
            if kwargs.get("return_mask", False):
                return outputs, mask
            return outputs
        if kind == "relu":
            return self._rectify(layer.name, inputs)[0]
        if kind in ("softmax", "sigmoid"):
            return self._split_off(kind, inputs)
        if kind == "dropout":
            return self._dropout(layer, inputs)
        return layer(inputs)

    def _weighted(self, layer, kind, inputs):
        if layer.name in self.layer_inputs:
            raise UnsupportedModelError(
                f"Layer '{layer.name}' is called more than once in the model; shared "
                "layers are not supported."
            )
        kernel, bias = self.weights.get(layer.name, (layer.kernel, layer.bias))
        # Keep a read of W^n that precedes any update in the same step (tf.function
        # orders reads and writes of a variable as written). The affine map below
        # uses the variables themselves, exactly as Dense.call / Conv2D.call do.
        self.weight_values[layer.name] = (
            tf.convert_to_tensor(kernel), None if bias is None else tf.convert_to_tensor(bias)
        )
        if layer.name == self.per_example_layer:
            preactivation = self._per_example_affine(layer, kind, inputs, kernel, bias)
        elif kind == "dense":
            if len(inputs.shape) != 2:
                raise UnsupportedLayerError(
                    f"Layer '{layer.name}' (Dense) receives a rank-{len(inputs.shape)} input; "
                    "keras_taylor supports Dense on [B, d] inputs (add a Flatten)."
                )
            # The same Keras ops as Dense.call / Conv2D.call (ops.add becomes a fused
            # BiasAdd), so a recorded training step is bit-identical to Keras's own.
            preactivation = keras.ops.matmul(inputs, kernel)
            if bias is not None:
                preactivation = keras.ops.add(preactivation, bias)
        else:
            preactivation = layer.convolution_op(inputs, kernel)
            if bias is not None:
                preactivation = keras.ops.add(preactivation, keras.ops.reshape(bias, (1, 1, 1, -1)))
        self.layer_inputs[layer.name] = inputs
        self.preactivations[layer.name] = preactivation
        activation = layer_activation(layer)
        if activation == "relu":
            return self._rectify(layer.name, preactivation)
        if activation in ("softmax", "sigmoid"):
            return self._split_off(activation, preactivation), None
        return preactivation, None

    def _per_example_affine(self, layer, kind, inputs, kernel, bias):
        batch_size = tf.shape(inputs)[0]
        kernel_per_example = tf.tile(kernel[None], [batch_size] + [1] * len(kernel.shape))
        self.per_example_weights[layer.name] = [kernel_per_example]
        if kind == "dense":
            preactivation = tf.einsum("bi,bij->bj", inputs, kernel_per_example)
        else:
            patches = conv_patches(inputs, layer)
            flat_kernel = tf.reshape(kernel_per_example, [batch_size, -1, kernel.shape[-1]])
            preactivation = tf.einsum("bhwk,bkc->bhwc", patches, flat_kernel)
        if bias is not None:
            bias_per_example = tf.tile(bias[None], [batch_size, 1])
            self.per_example_weights[layer.name].append(bias_per_example)
            preactivation = preactivation + tf.reshape(
                bias_per_example,
                [batch_size] + [1] * (len(preactivation.shape) - 2) + [bias.shape[-1]],
            )
        return preactivation

    def _rectify(self, name, preactivation):
        mask = preactivation > 0
        self.masks[name] = mask
        return tf.nn.relu(preactivation), mask

    def _split_off(self, activation, logits):
        # keras.activations.softmax / sigmoid (what Keras's own layers call) cache the
        # logits on their output, so a Keras cross-entropy of these probabilities is
        # computed from the logits, unclipped, exactly as on model(x).
        if activation == "softmax":
            probabilities = keras.activations.softmax(logits, axis=-1)
        else:
            probabilities = keras.activations.sigmoid(logits)
        self.split_logits[id(probabilities)] = (activation, logits)
        self.split_outputs.append(probabilities)
        return probabilities

    def _dropout(self, layer, inputs):
        if not self.training or layer.rate == 0:
            return inputs
        if layer.name in self.given_dropout_masks:
            keep_mask = tf.convert_to_tensor(self.given_dropout_masks[layer.name], inputs.dtype)
        else:
            # Same draw as Dropout.call: same op, same seed generator state.
            keep_mask = keras.random.dropout(
                tf.ones_like(inputs),
                layer.rate,
                noise_shape=layer.noise_shape,
                seed=layer.seed_generator,
            )
        self.dropout_masks[layer.name] = keep_mask
        return inputs * keep_mask


def forward(
    model: keras.Model,
    inputs,
    *,
    training: bool = False,
    dropout_masks: Mapping[str, Any] | None = None,
    weights: Mapping[str, tuple] | None = None,
    per_example_layer: str | None = None,
) -> ForwardTrace:
    """Runs `model` on `inputs` op by op, recording intermediates.

    Call it inside a `tf.GradientTape` to differentiate through the recorded
    pre-activations.

    Args:
        model: A built Sequential or functional model of supported layers.
        inputs: `[B, ...]` batch.
        training: Whether dropout is active (it draws masks unless given).
        dropout_masks: Dropout layer name -> scaled keep mask to reuse.
        weights: Layer name -> `(kernel, bias)` to use instead of the layer's variables.
        per_example_layer: A layer whose kernel and bias are tiled to `[B, ...]`
            copies first, so that `batch_jacobian` can differentiate per example.

    Returns:
        The `ForwardTrace` of the pass.
    """
    layers = model_layers(model)
    walker = _Walker(training, dropout_masks, weights, per_example_layer)
    inputs = tf.convert_to_tensor(inputs, dtype=model.inputs[0].dtype)
    if isinstance(model, keras.Sequential):
        model_outputs = inputs
        for layer in layers:
            model_outputs = walker.call(layer, model_outputs)
    else:
        model_outputs = model._run_through_graph(  # pylint: disable=protected-access
            [inputs], operation_fn=lambda layer: lambda *a, **k: walker.call(layer, *a, **k)
        )
        if isinstance(model_outputs, (list, tuple)):
            (model_outputs,) = model_outputs
    output_activation, outputs = walker.split_logits.get(id(model_outputs), (None, model_outputs))
    inner = [activation for key, (activation, _) in walker.split_logits.items() if key != id(model_outputs)]
    if inner:
        raise UnsupportedModelError(
            f"Model '{model.name}' applies a {inner[0]} before its output; only a final "
            "softmax or sigmoid (split off at the logits) is supported."
        )
    if len(outputs.shape) != 2:
        raise UnsupportedModelError(
            f"Model '{model.name}' returns shape {tuple(outputs.shape)}; keras_taylor needs "
            "outputs [B, p_L] (add a Flatten before the loss)."
        )
    return ForwardTrace(
        outputs=outputs,
        model_outputs=model_outputs,
        output_activation=output_activation,
        layer_inputs=walker.layer_inputs,
        preactivations=walker.preactivations,
        masks=walker.masks,
        dropout_masks=walker.dropout_masks,
        per_example_weights=walker.per_example_weights,
        weight_values=walker.weight_values,
    )


def to_numpy(tensors: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Converts a name -> tensor mapping to name -> numpy array."""
    return {name: np.asarray(tensor) for name, tensor in tensors.items()}
