"""RectifiedDense / RectifiedConv2D: masks, validation, serialization."""

import keras
import numpy as np
import pytest

from keras_taylor.layers import RectifiedConv2D, RectifiedDense

LAYER_CASES = [
    pytest.param(lambda: RectifiedDense(7), (5, 4), id="dense"),
    pytest.param(lambda: RectifiedConv2D(3, 3, padding="same"), (5, 6, 6, 2), id="conv_same"),
    pytest.param(lambda: RectifiedConv2D(4, (2, 3), strides=2), (5, 7, 7, 2), id="conv_strided"),
]


def _randomize(layer, rng):
    for variable in layer.weights:
        variable.assign(rng.normal(size=variable.shape))


@pytest.mark.parametrize("make_layer, input_shape", LAYER_CASES)
def test_mask_is_positive_preactivation_and_outputs_are_relu(make_layer, input_shape, rng):
    layer = make_layer()
    inputs = rng.normal(size=input_shape).astype("float32")
    layer.build(inputs.shape)
    _randomize(layer, rng)
    outputs, mask = layer(inputs, return_mask=True)
    # The same affine map as the parent class with a linear activation.
    parent = (keras.layers.Dense if isinstance(layer, RectifiedDense) else keras.layers.Conv2D)
    linear = parent.from_config({**layer.get_config(), "activation": None})
    linear.build(inputs.shape)
    linear.set_weights(layer.get_weights())
    preactivation = np.asarray(linear(inputs))
    np.testing.assert_array_equal(np.asarray(mask), preactivation > 0)
    np.testing.assert_allclose(np.asarray(outputs), np.maximum(preactivation, 0), rtol=1e-6, atol=1e-6)
    assert 0 < np.mean(mask) < 1
    np.testing.assert_array_equal(np.asarray(layer(inputs)), np.asarray(outputs))


@pytest.mark.parametrize("make_layer, input_shape", LAYER_CASES)
def test_config_round_trip(make_layer, input_shape):
    layer = make_layer()
    rebuilt = type(layer).from_config(layer.get_config())
    assert rebuilt.get_config() == layer.get_config()
    assert "activation" not in layer.get_config()


def test_saved_model_round_trip(tmp_path, rng):
    inputs = keras.Input((6, 6, 2))
    hidden, conv_mask = RectifiedConv2D(3, 3, name="conv")(inputs, return_mask=True)
    hidden = keras.layers.Flatten()(hidden)
    outputs = RectifiedDense(4, name="dense")(hidden)
    model = keras.Model(inputs, [outputs, conv_mask])
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    batch = rng.normal(size=(3, 6, 6, 2)).astype("float32")
    for expected, actual in zip(model(batch), loaded(batch)):
        np.testing.assert_array_equal(np.asarray(expected), np.asarray(actual))
    assert isinstance(loaded.get_layer("dense"), RectifiedDense)


@pytest.mark.parametrize(
    "make, message",
    [
        pytest.param(lambda: RectifiedDense(0), "units=0", id="zero_units"),
        pytest.param(lambda: RectifiedDense(2.5), "units=2.5", id="float_units"),
        pytest.param(lambda: RectifiedDense(3, activation="tanh"), "activation='tanh'", id="dense_activation"),
        pytest.param(lambda: RectifiedConv2D(-1, 3), "filters=-1", id="negative_filters"),
        pytest.param(lambda: RectifiedConv2D(2, 3, activation="relu"), "activation='relu'", id="conv_activation"),
    ],
)
def test_constructor_rejects_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()
