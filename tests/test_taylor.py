"""Tests of the Taylor snapshot (keras_taylor.snapshot, keras_taylor.taylor).

The properties of the neural Taylor approximation T^n(V) = f_W(x) + Σ_l ⟨G_l, V_l − W_l⟩
(Balduzzi et al., ICML 2017, Sec. 2) checked here, at the network, layer and neuron scale:

T1  the Taylor loss at V = W^n equals the real Keras loss;
T2  its gradient at W^n equals backprop through the real Keras loss, and its gradient
    anywhere equals central finite differences of the Taylor loss;
T3  the Taylor loss is convex along random chords (and the check would catch a
    non-convex loss: the real loss of a ReLU net fails it);
Observation 2  at layer scale T^n is the network with its activation configuration
    clamped, and equals the network itself while no rectifier (or max-pool choice) flips.

A snapshot costs about a second (one traced `batch_jacobian` per layer), so each
(model, loss) case is built once and shared by the T1–T3 tests through `_case`.
"""

import dataclasses
import functools
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_taylor
from keras_taylor import layers as kt_layers
from keras_taylor.errors import UnsupportedModelError

from conftest import (
    MLP_INPUT_SHAPE,
    MODEL_BUILDERS,
    NUM_OUTPUTS,
    assert_at_most,
    assert_close,
    build_convnet,
    build_sigmoid_classifier,
    build_softmax_classifier,
    floatx,
    random_inputs,
    tolerance,
    weighted_layer_names,
)

# ---------------------------------------------------------------------------
# The grid: losses, and the (model, loss, dtype) cases they are checked on.

# name -> (factory called under the case's floatx, kind of targets it reads)
LOSSES = {
    "mse_string": (lambda: "mse", "real"),
    "mse_object": (keras.losses.MeanSquaredError, "real"),
    "cce_logits": (lambda: keras.losses.CategoricalCrossentropy(from_logits=True), "one_hot"),
    "cce_logits_smoothed": (
        lambda: keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
        "soft",
    ),
    "scce_logits": (lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True), "index"),
    # Probability-space cross-entropies on a softmax output: linearized at the logits.
    "cce_probs": (keras.losses.CategoricalCrossentropy, "one_hot"),
    "scce_probs_string": (lambda: "sparse_categorical_crossentropy", "index"),
    "bce_logits": (lambda: keras.losses.BinaryCrossentropy(from_logits=True), "binary"),
    "bce_logits_smoothed_sum": (
        lambda: keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2, reduction="sum"),
        "probabilities",
    ),
    # Probability-space binary cross-entropy on sigmoid outputs: linearized at the logits.
    "bce_probs": (keras.losses.BinaryCrossentropy, "binary"),
    "bce_probs_string": (lambda: "binary_crossentropy", "probabilities"),
    "huber_small_delta": (lambda: keras.losses.Huber(delta=0.3), "real"),
    "log_cosh": (lambda: "log_cosh", "real"),
    "squared_hinge": (keras.losses.SquaredHinge, "signs"),
}

# case id -> (model, loss, dtype)
CASES = {
    "mlp_seq-mse_string": ("mlp_seq", "mse_string", "float64"),
    "convnet_fun-mse_object": ("convnet_fun", "mse_object", "float64"),
    "mlp_fun-cce_logits": ("mlp_fun", "cce_logits", "float64"),
    "convnet_seq-cce_logits_smoothed": ("convnet_seq", "cce_logits_smoothed", "float64"),
    "mlp_seq-scce_logits": ("mlp_seq", "scce_logits", "float64"),
    "softmax_dense_seq-cce_probs": ("softmax_dense_seq", "cce_probs", "float64"),
    "softmax_layer_fun-scce_probs_string": ("softmax_layer_fun", "scce_probs_string", "float64"),
    "mlp_fun-mse_object-float32": ("mlp_fun", "mse_object", "float32"),
    "mlp_seq-bce_logits": ("mlp_seq", "bce_logits", "float64"),
    "convnet_fun-bce_logits_smoothed_sum": ("convnet_fun", "bce_logits_smoothed_sum", "float64"),
    "sigmoid_dense_fun-bce_probs": ("sigmoid_dense_fun", "bce_probs", "float64"),
    "sigmoid_layer_seq-bce_probs_string": ("sigmoid_layer_seq", "bce_probs_string", "float64"),
    "sigmoid_dense_fun-bce_probs-float32": ("sigmoid_dense_fun", "bce_probs", "float32"),
    "mlp_fun-huber_small_delta": ("mlp_fun", "huber_small_delta", "float64"),
    "convnet_seq-log_cosh": ("convnet_seq", "log_cosh", "float64"),
    "mlp_seq-squared_hinge": ("mlp_seq", "squared_hinge", "float64"),
}
FLOAT64_CASES = [case_id for case_id, (_, _, dtype) in CASES.items() if dtype == "float64"]

BATCH_SIZE = 5


def random_targets(kind: str, rng: np.random.Generator, batch_size: int, dtype: str) -> np.ndarray:
    """Targets of the given kind for `NUM_OUTPUTS` outputs."""
    if kind == "real":
        return rng.normal(size=(batch_size, NUM_OUTPUTS)).astype(dtype)
    if kind == "one_hot":
        return np.eye(NUM_OUTPUTS, dtype=dtype)[rng.integers(NUM_OUTPUTS, size=batch_size)]
    if kind == "soft":
        return rng.dirichlet(np.ones(NUM_OUTPUTS), size=batch_size).astype(dtype)
    if kind == "index":
        return rng.integers(NUM_OUTPUTS, size=batch_size)
    if kind == "binary":  # multi-label: each output its own 0/1 label
        return rng.integers(2, size=(batch_size, NUM_OUTPUTS)).astype(dtype)
    if kind == "probabilities":
        return rng.uniform(size=(batch_size, NUM_OUTPUTS)).astype(dtype)
    if kind == "signs":
        return rng.choice([-1.0, 1.0], size=(batch_size, NUM_OUTPUTS)).astype(dtype)
    raise ValueError(f"Unknown target kind {kind!r}")


def keras_loss_value(loss, targets, predictions):
    """The loss Keras trains on: a string names a per-example function, averaged over the batch."""
    if isinstance(loss, str):
        return keras.ops.mean(keras.losses.get(loss)(targets, predictions))
    return loss(targets, predictions)


@dataclasses.dataclass(frozen=True)
class Case:
    model: keras.Model
    x: np.ndarray
    y: np.ndarray
    loss: object
    dtype: str
    snapshot: keras_taylor.TaylorSnapshot
    neurons: dict  # layer name -> a few live units checked at the neuron scale


@functools.cache
def _case(case_id: str) -> Case:
    model_name, loss_name, dtype = CASES[case_id]
    rng = np.random.default_rng(zlib.crc32(case_id.encode()))
    with floatx(dtype):
        model = MODEL_BUILDERS[model_name](rng)
        loss_factory, target_kind = LOSSES[loss_name]
        loss = loss_factory()
        x = random_inputs(model, rng, BATCH_SIZE)
        y = random_targets(target_kind, rng, BATCH_SIZE, dtype)
        snapshot = keras_taylor.taylor_snapshot(model, x, y, loss)
    neurons = {}
    for name, factors in snapshot.factors.items():
        # Units that reach the output for some example: a dead unit's Taylor loss is flat.
        jacobian = factors.jac_out_wrt_preact
        live = np.flatnonzero(np.any(jacobian.reshape(-1, jacobian.shape[-1]) != 0, axis=0))
        assert live.size, f"{case_id}: every unit of {name} is dead"
        neurons[name] = sorted(rng.choice(live, size=min(live.size, 3), replace=False).tolist())
    return Case(model, x, y, loss, dtype, snapshot, neurons)


def _scales(case: Case):
    """(id, layer, neuron) for the network scale, every layer and the case's neurons."""
    yield "network", None, None
    for name, neurons in case.neurons.items():
        yield name, name, None
        for neuron in neurons:
            yield f"{name}[{neuron}]", name, neuron


def _backprop_gradient(case: Case) -> dict:
    """∂(Keras loss)/∂variable by tf.GradientTape, keyed by id(variable)."""
    variables = case.model.trainable_weights
    with tf.GradientTape() as tape:
        predictions = case.model(case.x, training=False)
        value = keras_loss_value(case.loss, case.y, predictions)
    return {id(v): np.asarray(g) for v, g in zip(variables, tape.gradient(value, variables))}


def _at_scale(per_variable: dict, model: keras.Model, layer, neuron):
    """Picks the entries of a per-variable mapping laid out like V at the given scale."""
    if layer is None:
        return [per_variable[id(v)] for v in model.trainable_weights]
    target = model.get_layer(layer)
    parts = [per_variable[id(target.kernel)], per_variable[id(target.bias)]]
    return parts if neuron is None else [part[..., neuron] for part in parts]


def _random_point(reference, rng, scale):
    """W + scale · N(0, 1), entry by entry, as float arrays of W's dtype (0-d arrays kept)."""
    return [np.array(w + scale * rng.normal(size=np.shape(w)), dtype=w.dtype) for w in reference]


# ---------------------------------------------------------------------------
# T1: the Taylor loss equals the loss at the expansion point.


@pytest.mark.parametrize("case_id", CASES)
def test_taylor_loss_at_expansion_point_equals_keras_loss(case_id):
    case = _case(case_id)
    snapshot = case.snapshot
    keras_loss = float(keras_loss_value(case.loss, case.y, case.model(case.x, training=False)))

    for expansion_point, variable in zip(snapshot.weights(), case.model.trainable_weights):
        np.testing.assert_array_equal(expansion_point, np.asarray(variable))
    assert_close(snapshot.loss, keras_loss, case.dtype)
    for scale_id, layer, neuron in _scales(case):
        taylor_loss = snapshot.taylor_loss(snapshot.weights(layer, neuron), layer, neuron)
        assert_close(taylor_loss, keras_loss, case.dtype, scale_id)


def test_loss_is_keras_own_value_when_the_softmax_saturates(float64, rng):
    """Keras computes a cross-entropy on a softmax output from the cached logits, unclipped.

    With the least likely class as target the probabilities are below Keras's
    epsilon (1e-7), where a probability-space cross-entropy would be clipped to
    −log(1e-7) ≈ 16.1; the Taylor loss, built on the logits, is not.
    """
    model = build_softmax_classifier(rng, softmax="dense")
    logits_layer = model.get_layer("logits")
    logits_layer.kernel.assign(60.0 * logits_layer.kernel)
    x = random_inputs(model, rng, BATCH_SIZE)
    probabilities = np.asarray(model(x))
    y = np.eye(NUM_OUTPUTS)[np.argmin(probabilities, axis=-1)]
    assert probabilities.min(axis=-1).max() < 1e-9, "the case must saturate the softmax"
    loss = keras.losses.CategoricalCrossentropy()

    snapshot = keras_taylor.taylor_snapshot(model, x, y, loss, layers=["logits"])

    keras_loss = float(loss(y, model(x)))
    assert keras_loss > 2 * -np.log(keras.config.epsilon())
    assert_close(snapshot.loss, keras_loss, float64)
    assert_close(snapshot.taylor_loss(snapshot.weights("logits"), "logits"), keras_loss, float64)


def test_binary_loss_is_keras_own_value_when_the_sigmoid_saturates(float64, rng):
    """As for the softmax: Keras reads the logits cached on the sigmoid's output, unclipped.

    Labels opposite to saturated sigmoids put p below Keras's epsilon, where a
    probability-space binary cross-entropy would be clipped to −log(1e-7) ≈ 16.1.
    """
    model = build_sigmoid_classifier(rng, functional=True, sigmoid="layer")
    logits_layer = model.get_layer("logits")
    logits_layer.kernel.assign(300.0 * logits_layer.kernel)
    logits_layer.bias.assign(300.0 * logits_layer.bias)
    x = random_inputs(model, rng, BATCH_SIZE)
    probabilities = np.asarray(model(x))
    y = (probabilities < 0.5).astype("float64")  # every label the wrong way round
    loss = keras.losses.BinaryCrossentropy()

    snapshot = keras_taylor.taylor_snapshot(model, x, y, loss, layers=["logits"])

    keras_loss = float(loss(y, model(x)))
    # Clipped, no output could cost more than −log(ε); the mean over all of them does.
    assert keras_loss > 2 * -np.log(keras.config.epsilon())
    assert_close(snapshot.loss, keras_loss, float64)
    assert_close(snapshot.taylor_loss(snapshot.weights("logits"), "logits"), keras_loss, float64)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_split_activation_before_the_output_is_refused(float64, rng, activation):
    model = keras.Sequential(
        [keras.Input(MLP_INPUT_SHAPE), keras.layers.Dense(4, activation=activation, name="inner"),
         keras.layers.Dense(NUM_OUTPUTS, activation="sigmoid")]
    )
    x, y = rng.normal(size=(2, *MLP_INPUT_SHAPE)), rng.uniform(size=(2, NUM_OUTPUTS))
    with pytest.raises(UnsupportedModelError, match=f"applies a {activation} before its output"):
        keras_taylor.taylor_snapshot(model, x, y, "binary_crossentropy")


def test_softmax_before_the_output_is_refused(float64, rng):
    """Only a final softmax can be split off; one inside the network must be refused every time.

    (The walker recognizes softmax outputs by id(); a freed id reused by the model
    output once let such a model through, linearized at the wrong tensor.)
    """
    model = keras.Sequential(
        [
            keras.Input(MLP_INPUT_SHAPE),
            keras.layers.Dense(4, activation="softmax", name="inner_softmax"),
            keras.layers.ReLU(),
            keras.layers.Activation("relu"),
            keras.layers.Dense(NUM_OUTPUTS),
        ]
    )
    for _ in range(5):
        x = rng.normal(size=(2, *MLP_INPUT_SHAPE))
        y = rng.normal(size=(2, NUM_OUTPUTS))
        with pytest.raises(UnsupportedModelError, match="softmax before its output"):
            keras_taylor.taylor_snapshot(model, x, y, "mse")


# ---------------------------------------------------------------------------
# T2: the gradient of the Taylor loss.


@pytest.mark.parametrize("case_id", CASES)
def test_taylor_gradient_at_expansion_point_equals_backprop(case_id):
    case = _case(case_id)
    snapshot = case.snapshot
    backprop = _backprop_gradient(case)

    for scale_id, layer, neuron in _scales(case):
        taylor_gradient = snapshot.taylor_loss_gradient(snapshot.weights(layer, neuron), layer, neuron)
        expected = _at_scale(backprop, case.model, layer, neuron)
        assert len(taylor_gradient) == len(expected), scale_id
        if neuron is None:
            assert any(np.any(part != 0) for part in expected), f"{scale_id}: no gradient to compare"
        for actual, desired in zip(taylor_gradient, expected):
            assert_close(actual, desired, case.dtype, scale_id)


def central_differences(fn, values, step):
    """∂fn/∂V entry by entry, (fn(V + h e_j) − fn(V − h e_j)) / 2h, for V a list of arrays."""
    values = [np.array(value) for value in values]
    gradient = [np.zeros_like(value) for value in values]
    for value, partial in zip(values, gradient):
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + step
            plus = fn(values)
            value[index] = original - step
            minus = fn(values)
            value[index] = original
            partial[index] = (plus - minus) / (2 * step)
    return gradient


@pytest.mark.parametrize("case_id", FLOAT64_CASES)
def test_taylor_gradient_equals_finite_differences_away_from_expansion_point(case_id, rng):
    case = _case(case_id)
    snapshot = case.snapshot
    scales = [("network", None, None)] + [
        (f"{name}[{neurons[0]}]", name, neurons[0]) for name, neurons in case.neurons.items()
    ] + [(name, name, None) for name in case.neurons]

    for scale_id, layer, neuron in scales:
        point = _random_point(snapshot.weights(layer, neuron), rng, scale=0.5)
        analytic = snapshot.taylor_loss_gradient(point, layer, neuron)
        numeric = central_differences(
            lambda values: snapshot.taylor_loss(values, layer, neuron), point, step=1e-6
        )
        # One comparison per scale: the differences' rounding (~1e-10) is the same for every
        # entry, so a small part (one neuron's bias) is judged against the whole gradient's size.
        assert_close(np.concatenate([part.ravel() for part in analytic]),
                     np.concatenate([part.ravel() for part in numeric]), case.dtype, scale_id)


def test_dropout_snapshot_gradient_equals_backprop_with_the_same_masks(float64, rng):
    model = build_convnet(rng)
    x = random_inputs(model, rng, BATCH_SIZE)
    y = random_targets("real", rng, BATCH_SIZE, float64)
    loss = keras.losses.MeanSquaredError()

    snapshot = keras_taylor.taylor_snapshot(model, x, y, loss, training=True)

    keep_mask = snapshot.dropout_masks["dropout"]
    assert set(snapshot.dropout_masks) == {"dropout"}
    assert set(np.unique(keep_mask)) == {0.0, 1 / 0.75}, "dropout must drop some units and keep others"

    def forward_with_masks():
        hidden = tf.convert_to_tensor(x)
        for layer in model.layers:
            is_dropout = isinstance(layer, keras.layers.Dropout)
            hidden = hidden * keep_mask if is_dropout else layer(hidden, training=False)
        return hidden

    variables = model.trainable_weights
    with tf.GradientTape() as tape:
        outputs = forward_with_masks()
        value = loss(y, outputs)
    backprop = {id(v): np.asarray(g) for v, g in zip(variables, tape.gradient(value, variables))}
    with tf.GradientTape() as tape:
        inference_value = loss(y, model(x, training=False))
    inference_gradient = tape.gradient(inference_value, variables)

    assert_close(snapshot.outputs, outputs, float64)
    assert_close(snapshot.loss, float(value), float64)
    assert_close(snapshot.taylor_loss(snapshot.weights()), float(value), float64)
    network_gradient = snapshot.taylor_loss_gradient(snapshot.weights())
    for actual, desired in zip(network_gradient, _at_scale(backprop, model, None, None)):
        assert_close(actual, desired, float64)
    for name in weighted_layer_names(model):
        taylor_gradient = snapshot.taylor_loss_gradient(snapshot.weights(name), name)
        for actual, desired in zip(taylor_gradient, _at_scale(backprop, model, name, None)):
            assert_close(actual, desired, float64)
    # The masks matter: without them the gradient is a different one.
    differences = [
        np.max(np.abs(np.asarray(g) - backprop[id(v)])) for v, g in zip(variables, inference_gradient)
    ]
    assert max(differences) > 1e-3


# ---------------------------------------------------------------------------
# T3: convexity along chords.

CHORD_POINTS = np.linspace(0.0, 1.0, 21)


def assert_convex_along_chord(values, dtype) -> None:
    """Jensen at every grid point and nonnegative second differences of values on `CHORD_POINTS`."""
    values = np.asarray(values, dtype=np.float64)
    secant = (1 - CHORD_POINTS) * values[0] + CHORD_POINTS * values[-1]
    assert_at_most(values, secant, dtype)
    second_differences = values[:-2] - 2 * values[1:-1] + values[2:]
    slack = tolerance(dtype) * np.max(np.abs(values))
    assert np.all(second_differences >= -slack), (
        f"negative second difference {second_differences.min():.3e} (slack {slack:.1e})"
    )


def _along_chord(fn, start, end):
    return [fn([(1 - t) * a + t * b for a, b in zip(start, end)]) for t in CHORD_POINTS]


@pytest.mark.parametrize("case_id", CASES)
def test_taylor_loss_is_convex_along_random_chords(case_id, rng):
    case = _case(case_id)
    snapshot = case.snapshot
    for scale_id, layer, neuron in _scales(case):
        reference = snapshot.weights(layer, neuron)
        start = _random_point(reference, rng, scale=1.0)
        end = _random_point(reference, rng, scale=1.0)
        values = _along_chord(lambda v: snapshot.taylor_loss(v, layer, neuron), start, end)
        assert np.ptp(values) > 0, scale_id
        assert_convex_along_chord(values, case.dtype)


def test_convexity_check_rejects_the_real_loss_of_a_relu_net(float64, rng):
    """The same check passes the Taylor loss and fails the real loss along one chord."""
    case = _case("mlp_seq-mse_string")
    snapshot = case.snapshot
    clone = keras.models.clone_model(case.model)

    def real_loss(values):
        clone.set_weights(values)
        return float(keras_loss_value(case.loss, case.y, clone(case.x)))

    expansion_point = snapshot.weights()
    for _ in range(10):
        direction = _random_point([np.zeros_like(w) for w in expansion_point], rng, scale=1.0)
        start = [w - d for w, d in zip(expansion_point, direction)]
        end = [w + d for w, d in zip(expansion_point, direction)]
        assert_convex_along_chord(_along_chord(snapshot.taylor_loss, start, end), float64)
        try:
            assert_convex_along_chord(_along_chord(real_loss, start, end), float64)
        except AssertionError:
            return
    pytest.fail("The real loss was convex along 10 random chords: the check showed no teeth.")


# ---------------------------------------------------------------------------
# Observation 2: the layer-scale approximation clamps the activation configuration.


def _is_relu(layer) -> bool:
    if isinstance(layer, (kt_layers.RectifiedDense, keras.layers.ReLU)):
        return True
    return getattr(layer, "activation", None) is keras.activations.relu


def numpy_mlp(model, x, replaced=None, clamped_masks=None):
    """The dense MLP in NumPy: h ← h K + b layer by layer, ReLU as multiplication by a mask.

    Args:
        replaced: layer name -> (kernel, bias) used instead of the model's.
        clamped_masks: rectifier name -> fixed mask; None computes `z > 0` on the way.

    Returns:
        (outputs, masks used).
    """
    replaced = replaced or {}
    hidden = np.asarray(x, dtype=np.float64)
    masks = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if getattr(layer, "kernel", None) is not None:
            kernel, bias = replaced.get(layer.name, (np.asarray(layer.kernel), np.asarray(layer.bias)))
            hidden = hidden @ kernel + bias
        elif not _is_relu(layer):
            raise ValueError(f"numpy_mlp does not know layer {layer.name}")
        if _is_relu(layer):
            masks[layer.name] = hidden > 0 if clamped_masks is None else clamped_masks[layer.name]
            hidden = hidden * masks[layer.name]
    return hidden, masks


# T^n does not depend on the loss, so these tests reuse the cases' snapshots.
@pytest.mark.parametrize("case_id", ["mlp_seq-mse_string", "mlp_fun-cce_logits"])
def test_layer_scale_approximation_is_the_network_with_clamped_activations(case_id, float64, rng):
    case = _case(case_id)
    model, x, snapshot = case.model, case.x, case.snapshot
    outputs, masks_at_w = numpy_mlp(model, x)
    assert_close(outputs, model(x), float64)
    assert masks_at_w.keys() == snapshot.masks.keys()
    for name, mask in masks_at_w.items():
        np.testing.assert_array_equal(snapshot.masks[name], mask)
    clone = keras.models.clone_model(model)
    output_layer = weighted_layer_names(model)[-1]

    for name in weighted_layer_names(model):
        kernel, bias = snapshot.weights(name)
        # Large: entries of V − W several times the size of W's.
        new_kernel, new_bias = _random_point([kernel, bias], rng, scale=3.0)
        clamped, _ = numpy_mlp(model, x, {name: (new_kernel, new_bias)}, masks_at_w)
        approximation = snapshot.approximation([new_kernel, new_bias], name)
        assert_close(approximation, clamped, float64)

        neuron = int(rng.integers(kernel.shape[-1]))
        neuron_kernel, neuron_bias = _random_point(snapshot.weights(name, neuron), rng, scale=3.0)
        kernel_with_neuron, bias_with_neuron = kernel.copy(), bias.copy()
        kernel_with_neuron[:, neuron], bias_with_neuron[neuron] = neuron_kernel, neuron_bias
        clamped, _ = numpy_mlp(model, x, {name: (kernel_with_neuron, bias_with_neuron)}, masks_at_w)
        assert_close(snapshot.approximation([neuron_kernel, neuron_bias], name, neuron), clamped, float64)

        clone.set_weights(model.get_weights())
        clone.get_layer(name).kernel.assign(new_kernel)
        clone.get_layer(name).bias.assign(new_bias)
        true_outputs = np.asarray(clone(x))
        if name == output_layer:
            # No rectifier follows the output layer: T^n is exact in its weights.
            assert_close(approximation, true_outputs, float64)
        else:
            # Large moves flip rectifiers, and then T^n is not the network.
            assert np.max(np.abs(approximation - true_outputs)) > 1e-3 * np.max(np.abs(true_outputs))


def _configuration(model, x):
    """The activation masks, plus the winner of every max-pooling window."""
    configuration = dict(keras_taylor.activation_masks(model, x))
    for layer in model.layers:
        if isinstance(layer, keras.layers.MaxPooling2D):
            pooled_input = np.asarray(keras.Model(model.inputs[0], layer.input)(x))
            windows = np.lib.stride_tricks.sliding_window_view(pooled_input, layer.pool_size, axis=(1, 2))
            windows = windows[:, :: layer.strides[0], :: layer.strides[1]]
            configuration[layer.name] = windows.reshape(*windows.shape[:4], -1).argmax(axis=-1)
    return configuration


def _same_configuration(first, second) -> bool:
    return first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("case_id", ["mlp_fun-cce_logits", "convnet_seq-cce_logits_smoothed"])
def test_layer_scale_approximation_equals_network_while_no_unit_flips(case_id, float64, rng):
    case = _case(case_id)
    model, x, snapshot = case.model, case.x, case.snapshot
    configuration_at_w = _configuration(model, x)
    outputs_at_w = np.asarray(model(x))
    clone = keras.models.clone_model(model)

    for name in weighted_layer_names(model):
        direction = _random_point([np.zeros_like(w) for w in snapshot.weights(name)], rng, scale=1.0)
        for step in 10.0 ** -np.arange(1, 7):
            values = [w + step * d for w, d in zip(snapshot.weights(name), direction)]
            clone.set_weights(model.get_weights())
            clone.get_layer(name).kernel.assign(values[0])
            clone.get_layer(name).bias.assign(values[1])
            if _same_configuration(_configuration(clone, x), configuration_at_w):
                break
        else:
            pytest.fail(f"Layer {name}: some unit flipped even for a step of {step}")
        # Compare the changes, not the outputs, so that the check sees the step itself.
        true_change = np.asarray(clone(x)) - outputs_at_w
        assert np.max(np.abs(true_change)) > 0
        assert_close(snapshot.approximation(values, name) - snapshot.outputs, true_change, float64)
