"""Tests of the per-example weight Jacobians (keras_taylor.jacobians) and activation masks.

Every fast path is checked against a slow one that is correct by construction:

- `weight_jacobian` (one batched `batch_jacobian` on tiled weights) against a loop over
  examples and output components of plain `tf.GradientTape.gradient` through the
  model's own `call`, and against central finite differences of the Keras variables;
- `LayerFactors.weight_jacobian` (assembled from ∂f/∂z and the layer input or patches)
  against the full `weight_jacobian`;
- `activation_masks` against the sign of the pre-activation recomputed from each
  rectifier's input with `keras.ops`.

A full Jacobian costs a traced `batch_jacobian`, so each (model case, layer, weight)
Jacobian is computed once (`_full_jacobian`) and shared by the tests that read it.
"""

import dataclasses
import functools
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_taylor
from keras_taylor import jacobians
from keras_taylor import layers as kt_layers

from conftest import (
    CONVNET_WEIGHTED_LAYERS,
    MLP_WEIGHTED_LAYERS,
    MODEL_BUILDERS,
    assert_close,
    floatx,
    random_inputs,
    weighted_layer_names,
)

BATCH_SIZE = 4

# model case -> (model builder, dtype)
MODEL_CASES = {
    "mlp_seq": ("mlp_seq", "float64"),
    "convnet_fun": ("convnet_fun", "float64"),
    "softmax_layer_fun": ("softmax_layer_fun", "float64"),
    "softmax_dense_seq": ("softmax_dense_seq", "float64"),
    "sigmoid_dense_fun": ("sigmoid_dense_fun", "float64"),
    "sigmoid_layer_seq": ("sigmoid_layer_seq", "float64"),
    "convnet_seq-float32": ("convnet_seq", "float32"),
}
WEIGHTS = ("kernel", "bias")

# (model case, layer): where the full Jacobian is checked against the per-example loop.
TAPE_GRID = (
    [("mlp_seq", name) for name in MLP_WEIGHTED_LAYERS]
    + [("convnet_fun", name) for name in CONVNET_WEIGHTED_LAYERS]
    + [("softmax_layer_fun", "rectified_dense"), ("softmax_layer_fun", "logits")]
    + [("convnet_seq-float32", "conv_stride2_same"), ("convnet_seq-float32", "logits")]
)
# Every kind of geometry once: valid, strided same, dilated same convolution; dense.
FINITE_DIFFERENCE_GRID = [("convnet_fun", name) for name in CONVNET_WEIGHTED_LAYERS[:4]] + [
    ("mlp_seq", "rectified_dense")
]
FACTORED_CASES = ("mlp_seq", "convnet_fun", "softmax_layer_fun")
SPLIT_OUTPUT_CASES = ("softmax_layer_fun", "softmax_dense_seq", "sigmoid_dense_fun", "sigmoid_layer_seq")
MASK_MODELS = ("mlp_seq", "mlp_fun", "convnet_seq", "convnet_fun", "softmax_layer_fun")


def _grid_ids(grid) -> list[str]:
    return [f"{case_id}-{layer}" for case_id, layer in grid]


@dataclasses.dataclass(frozen=True)
class ModelCase:
    model: keras.Model
    x: np.ndarray
    dtype: str


@functools.cache
def _model_case(case_id: str) -> ModelCase:
    builder, dtype = MODEL_CASES[case_id]
    rng = np.random.default_rng(zlib.crc32(case_id.encode()))
    with floatx(dtype):
        model = MODEL_BUILDERS[builder](rng)
    return ModelCase(model, random_inputs(model, rng, BATCH_SIZE), dtype)


@functools.cache
def _full_jacobian(case_id: str, layer: str, weight: str, at_logits: bool = False) -> np.ndarray:
    case = _model_case(case_id)
    return jacobians.weight_jacobian(case.model, case.x, layer, weight=weight, at_logits=at_logits)


@functools.cache
def _factors(case_id: str) -> dict:
    case = _model_case(case_id)
    return jacobians.layer_factors(case.model, case.x)


def _logits(model: keras.Model, x):
    """The pre-softmax (pre-sigmoid) outputs: the last Dense layer's affine map, applied by hand to its input."""
    logits_layer = model.get_layer("logits")
    hidden = keras.Model(model.inputs[0], logits_layer.input)(x, training=False)
    return keras.ops.matmul(hidden, logits_layer.kernel) + logits_layer.bias


def per_example_jacobian(outputs_fn, x, variable) -> np.ndarray:
    """∂outputs_fn(x[b:b+1])[0, p] / ∂variable for every example b and output p, one gradient each."""
    rows = []
    for b in range(x.shape[0]):
        with tf.GradientTape(persistent=True) as tape:
            outputs = outputs_fn(x[b : b + 1])
            components = [outputs[0, p] for p in range(outputs.shape[-1])]
        rows.append(
            [
                tape.gradient(component, variable, unconnected_gradients=tf.UnconnectedGradients.ZERO)
                for component in components
            ]
        )
        del tape
    return np.asarray(rows)


def _model_outputs(model):
    return lambda inputs: model(inputs, training=False)


# ---------------------------------------------------------------------------
# weight_jacobian against references.


@pytest.mark.parametrize("weight", WEIGHTS)
@pytest.mark.parametrize("case_id, layer", TAPE_GRID, ids=_grid_ids(TAPE_GRID))
def test_weight_jacobian_matches_per_example_tape(case_id, layer, weight):
    case = _model_case(case_id)
    variable = getattr(case.model.get_layer(layer), weight)

    full = _full_jacobian(case_id, layer, weight)

    expected = per_example_jacobian(_model_outputs(case.model), case.x, variable)
    assert full.shape == (BATCH_SIZE, case.model.outputs[0].shape[-1], *variable.shape)
    assert np.any(expected != 0)
    assert_close(full, expected, case.dtype)


def finite_difference_jacobian(outputs_fn, variable, step) -> np.ndarray:
    """∂outputs/∂variable by central differences, perturbing the Keras variable entry by entry.

    Returns:
        `[B, p_L, *variable.shape]`.
    """
    original = np.asarray(variable)
    columns = {}
    try:
        for index in np.ndindex(original.shape):
            perturbed = original.copy()
            perturbed[index] += step
            variable.assign(perturbed)
            plus = np.asarray(outputs_fn())
            perturbed[index] -= 2 * step
            variable.assign(perturbed)
            minus = np.asarray(outputs_fn())
            columns[index] = (plus - minus) / (2 * step)
    finally:
        variable.assign(original)
    stacked = np.stack([columns[index] for index in np.ndindex(original.shape)], axis=-1)
    return stacked.reshape(*stacked.shape[:2], *original.shape)


@pytest.mark.parametrize("case_id, layer", FINITE_DIFFERENCE_GRID, ids=_grid_ids(FINITE_DIFFERENCE_GRID))
def test_weight_jacobian_matches_finite_differences(case_id, layer):
    case = _model_case(case_id)
    assert case.dtype == "float64", "finite differences need float64"
    outputs_fn = tf.function(lambda: case.model(case.x, training=False))
    for weight in WEIGHTS:
        variable = getattr(case.model.get_layer(layer), weight)
        expected = finite_difference_jacobian(outputs_fn, variable, step=1e-6)
        assert np.any(expected != 0)
        assert_close(_full_jacobian(case_id, layer, weight), expected, case.dtype, weight)


@pytest.mark.parametrize("layer", ["rectified_dense", "logits"])
@pytest.mark.parametrize("case_id", SPLIT_OUTPUT_CASES)
def test_weight_jacobian_at_logits_differentiates_the_logits(case_id, layer):
    case = _model_case(case_id)
    kernel = case.model.get_layer(layer).kernel

    at_logits = _full_jacobian(case_id, layer, "kernel", at_logits=True)

    expected = per_example_jacobian(lambda inputs: _logits(case.model, inputs), case.x, kernel)
    assert_close(at_logits, expected, case.dtype)
    # And it is not the Jacobian of the probabilities.
    of_probabilities = per_example_jacobian(_model_outputs(case.model), case.x, kernel)
    assert np.max(np.abs(at_logits - of_probabilities)) > 1e-3 * np.max(np.abs(expected))


def test_weight_jacobian_at_logits_needs_a_softmax():
    case = _model_case("mlp_seq")
    with pytest.raises(ValueError, match="does not end in a softmax"):
        jacobians.weight_jacobian(case.model, case.x, "logits", at_logits=True)


def test_weight_jacobian_refuses_past_max_elements():
    case = _model_case("mlp_seq")
    kernel_shape = tuple(case.model.get_layer("logits").kernel.shape)
    elements = BATCH_SIZE * case.model.outputs[0].shape[-1] * int(np.prod(kernel_shape))

    with pytest.raises(ValueError, match="layer_factors"):
        jacobians.weight_jacobian(case.model, case.x, "logits", max_elements=elements - 1)
    at_the_limit = jacobians.weight_jacobian(case.model, case.x, "logits", max_elements=elements)
    assert_close(at_the_limit, _full_jacobian("mlp_seq", "logits", "kernel"), case.dtype)


# ---------------------------------------------------------------------------
# The factored form.


@pytest.mark.parametrize("case_id", FACTORED_CASES)
def test_factored_weight_jacobian_matches_full(case_id):
    case = _model_case(case_id)
    factors = _factors(case_id)
    assert list(factors) == weighted_layer_names(case.model)
    for name, layer_factors in factors.items():
        for weight in WEIGHTS:
            assert_close(
                layer_factors.weight_jacobian(weight),
                _full_jacobian(case_id, name, weight),
                case.dtype,
                f"{name} {weight}",
            )


@pytest.mark.parametrize("case_id", FACTORED_CASES)
def test_layer_factors_jacobian_is_wrt_the_preactivation(case_id):
    case = _model_case(case_id)
    num_outputs = case.model.outputs[0].shape[-1]
    for name, layer_factors in _factors(case_id).items():
        layer = case.model.get_layer(name)
        # [B, p_L, p_l] with p_l the layer's units (and its spatial grid for a convolution).
        assert layer_factors.jac_out_wrt_preact.shape == (BATCH_SIZE, num_outputs, *layer.output.shape[1:])
        layer_input = keras.Model(case.model.inputs[0], layer.input)(case.x)
        np.testing.assert_array_equal(layer_factors.inputs, layer_input)
        np.testing.assert_array_equal(layer_factors.kernel, layer.kernel)
        np.testing.assert_array_equal(layer_factors.bias, layer.bias)


def test_layer_factors_of_chosen_layers():
    case = _model_case("convnet_fun")
    chosen = ["dense_relu", "conv_stride2_same"]

    factors = jacobians.layer_factors(case.model, case.x, layers=chosen)

    assert list(factors) == chosen
    for name in chosen:
        all_layers = _factors("convnet_fun")
        assert_close(factors[name].jac_out_wrt_preact, all_layers[name].jac_out_wrt_preact, case.dtype)


# ---------------------------------------------------------------------------
# Activation masks.


def _is_rectifier_after_affine(layer) -> bool:
    """Dense/Conv2D-type layers that apply ReLU themselves."""
    if isinstance(layer, (kt_layers.RectifiedDense, kt_layers.RectifiedConv2D)):
        return True
    is_affine = isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))
    return is_affine and layer.activation is keras.activations.relu


def _preactivation(model, layer, x) -> np.ndarray:
    """What the rectifier `layer` rectifies, recomputed from its input with keras.ops."""
    layer_input = keras.Model(model.inputs[0], layer.input)(x, training=False)
    if not _is_rectifier_after_affine(layer):
        return np.asarray(layer_input)  # a ReLU() or Activation("relu") layer
    if isinstance(layer, keras.layers.Conv2D):
        affine = keras.ops.conv(
            layer_input,
            layer.kernel,
            strides=layer.strides,
            padding=layer.padding,
            dilation_rate=layer.dilation_rate,
        )
    else:
        affine = keras.ops.matmul(layer_input, layer.kernel)
    return np.asarray(affine + layer.bias)


@pytest.mark.parametrize("model_name", MASK_MODELS)
def test_activation_masks_are_the_sign_of_the_preactivation(model_name, float64, rng):
    model = MODEL_BUILDERS[model_name](rng)
    x = random_inputs(model, rng, BATCH_SIZE)
    rectifiers = [
        layer
        for layer in model.layers
        if _is_rectifier_after_affine(layer)
        or isinstance(layer, keras.layers.ReLU)
        or (isinstance(layer, keras.layers.Activation) and layer.activation is keras.activations.relu)
    ]

    masks = keras_taylor.activation_masks(model, x)

    assert list(masks) == [layer.name for layer in rectifiers]
    for layer in rectifiers:
        expected = _preactivation(model, layer, x) > 0
        assert expected.any() and not expected.all(), f"{layer.name}: a trivial mask tests nothing"
        assert masks[layer.name].dtype == bool
        np.testing.assert_array_equal(masks[layer.name], expected, err_msg=layer.name)
