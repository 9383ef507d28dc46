"""The model walker: supported structures, refusals that name the problem, dropout fidelity."""

import keras
import numpy as np
import pytest

import keras_taylor as kt
from keras_taylor import walker
from keras_taylor.errors import (
    NonConvexLossError,
    ShapeMismatchError,
    UnsupportedLayerError,
    UnsupportedModelError,
)


def _mlp_with(layer, input_dim=4):
    inputs = keras.Input((input_dim,))
    hidden = keras.layers.Dense(5, activation="relu", name="first")(inputs)
    hidden = layer(hidden)
    outputs = keras.layers.Dense(3, name="out")(hidden)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize(
    "layer, fragment",
    [
        pytest.param(keras.layers.BatchNormalization(name="bn"), "'bn' (BatchNormalization)", id="batchnorm"),
        pytest.param(keras.layers.Dense(5, activation="tanh", name="squash"), "'squash' (Dense)", id="tanh"),
        pytest.param(keras.layers.LeakyReLU(name="leaky"), "'leaky' (LeakyReLU)", id="leaky"),
        pytest.param(keras.layers.ReLU(max_value=6.0, name="relu6"), "'relu6' (ReLU)", id="relu6"),
    ],
)
def test_unsupported_layers_are_named(layer, fragment, rng):
    model = _mlp_with(layer)
    x = rng.normal(size=(2, 4))
    with pytest.raises(UnsupportedLayerError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        kt.taylor_snapshot(model, x, rng.normal(size=(2, 3)), "mse")


def test_subclassed_model_is_refused_but_masks_still_work(rng):
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(6, activation="relu", name="hidden")
            self.out = keras.layers.Dense(2, name="out")

        def call(self, inputs):
            return self.out(self.hidden(inputs))

    model = Subclassed()
    x = rng.normal(size=(4, 3)).astype("float32")
    model(x)
    with pytest.raises(UnsupportedModelError, match="subclassed"):
        kt.taylor_snapshot(model, x, rng.normal(size=(4, 2)), "mse")
    masks = kt.activation_masks(model, x)
    preactivation = x @ np.asarray(model.hidden.kernel) + np.asarray(model.hidden.bias)
    np.testing.assert_array_equal(masks["hidden"], preactivation > 0)


def test_nested_and_multi_output_models_are_refused(rng):
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="inner_dense")], name="inner")
    inputs = keras.Input((4,))
    nested = keras.Model(inputs, keras.layers.Dense(2)(inner(inputs)))
    with pytest.raises(UnsupportedModelError, match="Nested model 'inner'"):
        kt.taylor_snapshot(nested, rng.normal(size=(2, 4)), rng.normal(size=(2, 2)), "mse")
    two_outputs = keras.Model(inputs, [keras.layers.Dense(2)(inputs), keras.layers.Dense(3)(inputs)])
    with pytest.raises(UnsupportedModelError, match="2 outputs"):
        kt.taylor_snapshot(two_outputs, rng.normal(size=(2, 4)), rng.normal(size=(2, 2)), "mse")


def test_loss_and_shape_refusals(rng):
    model = _mlp_with(keras.layers.Dropout(0.5))
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 3))
    with pytest.raises(NonConvexLossError, match="'mean_absolute_error'"):
        kt.taylor_snapshot(model, x, y, "mae")
    with pytest.raises(ShapeMismatchError, match=r"targets.shape=\(3, 4\)"):
        kt.taylor_snapshot(model, x, rng.normal(size=(3, 4)), "mse")
    with pytest.raises(ShapeMismatchError, match="x has 3 examples"):
        kt.taylor_snapshot(model, x, y[:2], "mse")
    snapshot = kt.taylor_snapshot(model, x, y, "mse")
    with pytest.raises(ShapeMismatchError, match=r"\(5, 3\), \(3,\)"):
        snapshot.taylor_loss([np.zeros((3, 5)), np.zeros(3)], layer="out")
    with pytest.raises(ShapeMismatchError, match="takes 4 arrays"):
        snapshot.taylor_loss(snapshot.weights()[:3])
    with pytest.raises(ValueError, match="3 neurons. Received: neuron=3"):
        snapshot.taylor_loss(snapshot.weights("out", 0), layer="out", neuron=3)
    with pytest.raises(ValueError, match="no layer 'missing'"):
        snapshot.weights("missing")


def test_snapshot_outside_training_runs_inference_mode(rng):
    model = _mlp_with(keras.layers.Dropout(0.5, name="drop"))
    x = rng.normal(size=(8, 4)).astype("float32")
    snapshot = kt.taylor_snapshot(model, x, rng.normal(size=(8, 3)), "mse")
    np.testing.assert_allclose(snapshot.outputs, np.asarray(model(x, training=False)), rtol=1e-5, atol=1e-6)
    assert snapshot.dropout_masks == {}


def test_training_forward_draws_the_mask_dropout_call_would(rng):
    dropout = keras.layers.Dropout(0.4, seed=3, name="drop")
    model = _mlp_with(dropout)
    x = rng.normal(size=(16, 4)).astype("float32")
    state = dropout.seed_generator.state.numpy()
    expected = np.asarray(model(x, training=True))
    dropout.seed_generator.state.assign(state)
    trace = walker.forward(model, x, training=True)
    np.testing.assert_allclose(np.asarray(trace.model_outputs), expected, rtol=1e-6, atol=1e-6)
    keep = np.asarray(trace.dropout_masks["drop"])
    assert 0 < np.mean(keep == 0) < 1
    # Reusing the recorded masks reproduces the pass whatever the generator state.
    again = walker.forward(model, x, training=True, dropout_masks={"drop": keep})
    np.testing.assert_allclose(np.asarray(again.model_outputs), expected, rtol=1e-6, atol=1e-6)


def test_masks_cover_every_rectifier_form(rng):
    inputs = keras.Input((4,))
    hidden = kt.layers.RectifiedDense(5, name="rectified")(inputs)
    hidden = keras.layers.Dense(5, activation="relu", name="dense_relu")(hidden)
    hidden = keras.layers.Dense(5, name="linear")(hidden)
    hidden = keras.layers.ReLU(name="relu_layer")(hidden)
    hidden = keras.layers.Dense(5, name="linear_2")(hidden)
    hidden = keras.layers.Activation("relu", name="activation")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(hidden))
    for variable in model.weights:
        variable.assign(rng.normal(size=variable.shape))
    x = rng.normal(size=(6, 4)).astype("float32")
    masks = kt.activation_masks(model, x)
    assert list(masks) == ["rectified", "dense_relu", "relu_layer", "activation"]
    trace = walker.forward(model, x)
    for name, mask in masks.items():
        assert mask.shape == (6, 5) and mask.dtype == bool
        np.testing.assert_array_equal(mask, np.asarray(trace.masks[name]))


def test_model_without_rectifiers_has_no_masks(rng):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="has no rectifier"):
        kt.activation_masks(model, rng.normal(size=(2, 3)))


CONV_GEOMETRIES = {
    "valid_3x3": dict(kernel_size=(3, 3), strides=(1, 1), padding="valid", dilation_rate=(1, 1)),
    "same_stride2": dict(kernel_size=(3, 2), strides=(2, 2), padding="same", dilation_rate=(1, 1)),
    "same_dilated": dict(kernel_size=(2, 3), strides=(1, 1), padding="same", dilation_rate=(2, 1)),
    "valid_stride_3x1": dict(kernel_size=(3, 1), strides=(3, 1), padding="valid", dilation_rate=(1, 1)),
}


@pytest.mark.parametrize("name", sorted(CONV_GEOMETRIES))
def test_convolution_patches_equal_the_numpy_reference_and_the_convolution(rng, name):
    """walker.conv_patches (TensorFlow, in the step) against taylor.conv_patches (NumPy, post hoc)."""
    geometry = CONV_GEOMETRIES[name]
    layer = keras.layers.Conv2D(4, **geometry)
    inputs = rng.normal(size=(2, 9, 8, 3)).astype("float32")
    layer.build(inputs.shape)
    patches = np.asarray(walker.conv_patches(inputs, layer))
    reference = kt.taylor.conv_patches(inputs, **geometry)
    batch, height, width = reference.shape[:3]
    flat_reference = reference.transpose(0, 1, 2, 4, 5, 3).reshape(batch, height, width, -1)
    np.testing.assert_allclose(patches, flat_reference, rtol=0, atol=0)
    kernel = np.asarray(layer.kernel)
    convolved = np.einsum("bhwcij,ijco->bhwo", reference, kernel) + np.asarray(layer.bias)
    np.testing.assert_allclose(convolved, np.asarray(layer(inputs)), rtol=1e-5, atol=1e-5)


@pytest.fixture(params=["mixed_float16", "mixed_bfloat16"])
def mixed_policy(request):
    """Sets a global mixed-precision policy for the test, and restores the previous one after."""
    previous = keras.config.dtype_policy()
    keras.mixed_precision.set_global_policy(request.param)
    try:
        yield request.param
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_mixed_precision_recording_is_refused_naming_the_policy(mixed_policy, tmp_path, rng):
    from keras_taylor.callbacks import TaylorRecorder  # pylint: disable=import-outside-toplevel

    model = _mlp_with(keras.layers.Dense(4, activation="relu", name="second"))
    model.compile("sgd", "mse")
    x, y = rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 3)).astype("float32")
    with pytest.raises(UnsupportedModelError, match=f"Layer 'first' has dtype policy '{mixed_policy}'"):
        walker.check_full_precision(model)
    with pytest.raises(UnsupportedModelError, match=f"'{mixed_policy}'.*does not record mixed precision"):
        model.fit(x, y, batch_size=4, verbose=0, callbacks=[TaylorRecorder(tmp_path / "run", verbose=0)])
    assert not (tmp_path / "run").exists()
    keras.mixed_precision.set_global_policy("float32")
    full_precision = _mlp_with(keras.layers.Dense(4, activation="relu", name="second"))
    walker.check_full_precision(full_precision)  # the same model in float32 is accepted
    full_precision.compile("sgd", "mse")
    full_precision.fit(x, y, batch_size=4, verbose=0, callbacks=[TaylorRecorder(tmp_path / "run", verbose=0)])
    assert (tmp_path / "run" / "manifest.json").exists()
