"""NumPy convex losses against Keras's own losses, and loss resolution."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_taylor import losses
from keras_taylor.errors import NonConvexLossError, ShapeMismatchError

BATCH, OUTPUTS = 7, 5


def _targets(kind, rng):
    if kind == "dense":
        return rng.normal(size=(BATCH, OUTPUTS))
    if kind == "one_hot":
        return np.eye(OUTPUTS)[rng.integers(0, OUTPUTS, BATCH)]
    if kind == "soft":
        return rng.dirichlet(np.ones(OUTPUTS), size=BATCH)
    return rng.integers(0, OUTPUTS, BATCH)


KERAS_LOSS_CASES = [
    pytest.param(keras.losses.MeanSquaredError(dtype="float64"), "dense", id="mse"),
    pytest.param(keras.losses.MeanSquaredError(reduction="sum", dtype="float64"), "dense", id="mse_sum"),
    pytest.param(keras.losses.CategoricalCrossentropy(from_logits=True, dtype="float64"), "one_hot", id="cce"),
    pytest.param(keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2, dtype="float64"), "soft", id="cce_smooth"),
    pytest.param(keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64"), "sparse", id="scce"),
    pytest.param(keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum", dtype="float64"), "sparse", id="scce_sum"),
]


@pytest.mark.parametrize("keras_loss, target_kind", KERAS_LOSS_CASES)
def test_value_and_gradient_match_keras(keras_loss, target_kind, rng):
    outputs = rng.normal(size=(BATCH, OUTPUTS)) * 3
    targets = _targets(target_kind, rng)
    resolved = losses.resolve_loss(keras_loss, output_is_softmax=False)
    outputs_tensor = tf.constant(outputs)
    with tf.GradientTape() as tape:
        tape.watch(outputs_tensor)
        expected = keras_loss(targets, outputs_tensor)
    expected_gradient = tape.gradient(expected, outputs_tensor).numpy()
    checked = resolved.convex_loss.check_targets(outputs.shape, targets)
    assert resolved.convex_loss(outputs, checked) == pytest.approx(float(expected), rel=1e-10)
    np.testing.assert_allclose(resolved.convex_loss.gradient(outputs, checked), expected_gradient, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "loss, expected_type, at_logits",
    [
        pytest.param("mse", losses.MeanSquaredError, False, id="mse_string"),
        pytest.param(keras.losses.mean_squared_error, losses.MeanSquaredError, False, id="mse_function"),
        pytest.param("categorical_crossentropy", losses.CategoricalCrossentropyFromLogits, True, id="cce_probabilities"),
        pytest.param(keras.losses.SparseCategoricalCrossentropy(), losses.SparseCategoricalCrossentropyFromLogits, True, id="scce_probabilities"),
    ],
)
def test_resolution_on_softmax_model(loss, expected_type, at_logits):
    resolved = losses.resolve_loss(loss, output_is_softmax=True)
    assert isinstance(resolved.convex_loss, expected_type)
    assert resolved.at_logits is at_logits


def test_probability_crossentropy_without_softmax_is_refused():
    with pytest.raises(NonConvexLossError, match="does not end in a softmax"):
        losses.resolve_loss("categorical_crossentropy", output_is_softmax=False)


@pytest.mark.parametrize("loss", ["huber", "mean_absolute_percentage_error", keras.losses.CosineSimilarity()],
                         ids=["huber", "mape", "cosine"])
def test_unknown_losses_are_refused_unless_declared_convex(loss):
    with pytest.raises(NonConvexLossError, match="not known to be convex.*convex=True"):
        losses.resolve_loss(loss, output_is_softmax=False)
    if loss == "huber":
        resolved = losses.resolve_loss(loss, output_is_softmax=False, convex=True)
        assert isinstance(resolved.convex_loss, losses.DeclaredConvexLoss)


def test_reduction_none_is_refused():
    with pytest.raises(ValueError, match="reduction=None"):
        losses.resolve_loss(keras.losses.MeanSquaredError(reduction=None), output_is_softmax=False)


@pytest.mark.parametrize(
    "loss, targets, message",
    [
        pytest.param(losses.MeanSquaredError(), np.zeros((BATCH, OUTPUTS + 1)), "shaped like the outputs", id="mse_shape"),
        pytest.param(losses.SparseCategoricalCrossentropyFromLogits(), np.full(BATCH, OUTPUTS), "class indices", id="scce_range"),
        pytest.param(losses.SparseCategoricalCrossentropyFromLogits(), np.zeros((BATCH, 2)), r"\[B\] or \[B, 1\]", id="scce_shape"),
        pytest.param(losses.CategoricalCrossentropyFromLogits(), np.zeros((BATCH + 1, OUTPUTS)), "one-hot", id="cce_shape"),
    ],
)
def test_target_shape_errors(loss, targets, message):
    with pytest.raises(ShapeMismatchError, match=message):
        loss.check_targets((BATCH, OUTPUTS), targets)
