"""NumPy convex losses against Keras's own losses, loss resolution, and each loss end to end.

The end-to-end test trains a small model with every supported non-quadratic loss under
TaylorRecorder and checks the post-hoc regret (keras_taylor.analysis) against an
independent bounded solver over the Taylor snapshots of the same rounds: the loss
classes are what carries a loss through recording, the manifest and the analysis.
"""

import keras
import numpy as np
import pytest
import scipy.optimize
import tensorflow as tf

import keras_taylor as kt
from keras_taylor import analysis, losses, schedules
from keras_taylor.callbacks import TaylorRecorder
from keras_taylor.errors import NonConvexLossError, ShapeMismatchError

from conftest import WeightLog, assert_close, floatx

BATCH, OUTPUTS = 7, 5


def _targets(kind, rng):
    if kind == "dense":
        return rng.normal(size=(BATCH, OUTPUTS))
    if kind == "binary":
        return rng.integers(0, 2, size=(BATCH, OUTPUTS)).astype(np.float64)
    if kind == "probabilities":
        return rng.uniform(size=(BATCH, OUTPUTS))
    if kind == "signs":
        return rng.choice([-1.0, 1.0], size=(BATCH, OUTPUTS))
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
    pytest.param(keras.losses.BinaryCrossentropy(from_logits=True, dtype="float64"), "binary", id="bce"),
    pytest.param(keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.3, dtype="float64"), "probabilities", id="bce_smooth_soft"),
    pytest.param(keras.losses.BinaryCrossentropy(from_logits=True, reduction="sum", dtype="float64"), "binary", id="bce_sum"),
    pytest.param(keras.losses.Huber(dtype="float64"), "dense", id="huber"),
    pytest.param(keras.losses.Huber(delta=0.4, reduction="sum", dtype="float64"), "dense", id="huber_delta_sum"),
    pytest.param(keras.losses.LogCosh(dtype="float64"), "dense", id="log_cosh"),
    pytest.param(keras.losses.SquaredHinge(dtype="float64"), "binary", id="squared_hinge_01"),
    pytest.param(keras.losses.SquaredHinge(dtype="float64"), "signs", id="squared_hinge_signs"),
]
# Keras computes log-cosh's constant log 2 in floatx (float32 here): its float64 values sit up to 2e-9 higher.
_VALUE_ATOL = {"log_cosh": 1e-8}


@pytest.mark.parametrize("keras_loss, target_kind", KERAS_LOSS_CASES)
def test_value_and_gradient_match_keras(keras_loss, target_kind, rng):
    outputs = rng.normal(size=(BATCH, OUTPUTS)) * 3
    targets = _targets(target_kind, rng)
    resolved = losses.resolve_loss(keras_loss)
    outputs_tensor = tf.constant(outputs)
    with tf.GradientTape() as tape:
        tape.watch(outputs_tensor)
        expected = keras_loss(targets, outputs_tensor)
    expected_gradient = tape.gradient(expected, outputs_tensor).numpy()
    checked = resolved.convex_loss.check_targets(outputs.shape, targets)
    atol = _VALUE_ATOL.get(resolved.convex_loss.name, 0.0)
    assert resolved.convex_loss(outputs, checked) == pytest.approx(float(expected), rel=1e-10, abs=atol)
    np.testing.assert_allclose(resolved.convex_loss.gradient(outputs, checked), expected_gradient, rtol=1e-9, atol=1e-12)



@pytest.mark.parametrize("keras_loss, target_kind", KERAS_LOSS_CASES)
def test_hessian_products_match_keras_second_derivatives(keras_loss, target_kind, rng):
    """Each example's output Hessian applied to a direction, against TensorFlow's forward-over-backward product
    of the Keras loss (summed over the batch, so per example: the reduction's factor divided out)."""
    outputs = rng.normal(size=(BATCH, OUTPUTS)) * 3
    directions = rng.normal(size=(BATCH, OUTPUTS))
    targets = _targets(target_kind, rng)
    convex_loss = losses.resolve_loss(keras_loss).convex_loss
    checked = convex_loss.check_targets(outputs.shape, targets)
    outputs_tensor = tf.constant(outputs)
    with tf.autodiff.ForwardAccumulator(outputs_tensor, tf.constant(directions)) as accumulator:
        with tf.GradientTape() as tape:
            tape.watch(outputs_tensor)
            value = keras_loss(targets, outputs_tensor)
        gradient = tape.gradient(value, outputs_tensor)
    expected = accumulator.jvp(gradient).numpy() / losses.reduction_scale(BATCH, convex_loss.reduction)
    np.testing.assert_allclose(convex_loss.per_example_hessian_product(outputs, checked, directions), expected,
                               rtol=1e-9, atol=1e-12)

@pytest.mark.parametrize(
    "loss, activation, expected_type, at_logits",
    [
        pytest.param("mse", "softmax", losses.MeanSquaredError, False, id="mse_string"),
        pytest.param(keras.losses.mean_squared_error, None, losses.MeanSquaredError, False, id="mse_function"),
        pytest.param("categorical_crossentropy", "softmax", losses.CategoricalCrossentropyFromLogits, True, id="cce_probabilities"),
        pytest.param(keras.losses.SparseCategoricalCrossentropy(), "softmax", losses.SparseCategoricalCrossentropyFromLogits, True, id="scce_probabilities"),
        pytest.param("binary_crossentropy", "sigmoid", losses.BinaryCrossentropyFromLogits, True, id="bce_probabilities"),
        pytest.param(keras.losses.BinaryCrossentropy(from_logits=True), None, losses.BinaryCrossentropyFromLogits, False, id="bce_logits"),
        # Keras reads the logits cached on a sigmoid's output even with from_logits=True (and warns).
        pytest.param(keras.losses.BinaryCrossentropy(from_logits=True), "sigmoid", losses.BinaryCrossentropyFromLogits, True, id="bce_logits_on_sigmoid"),
        pytest.param("mse", "sigmoid", losses.MeanSquaredError, False, id="mse_on_sigmoid"),
        pytest.param("huber", None, losses.Huber, False, id="huber"),
        pytest.param(keras.losses.LogCosh(), None, losses.LogCosh, False, id="log_cosh"),
        pytest.param("squared_hinge", None, losses.SquaredHinge, False, id="squared_hinge"),
    ],
)
def test_resolution(loss, activation, expected_type, at_logits):
    resolved = losses.resolve_loss(loss, output_activation=activation)
    assert isinstance(resolved.convex_loss, expected_type)
    assert resolved.at_logits is at_logits


def test_huber_delta_is_read_from_the_keras_object():
    assert losses.resolve_loss(keras.losses.Huber(delta=0.25)).convex_loss.delta == 0.25
    with pytest.raises(NonConvexLossError, match="delta must be positive"):
        losses.resolve_loss(keras.losses.Huber(delta=-1.0))


@pytest.mark.parametrize(
    "loss, activation, message",
    [
        pytest.param("categorical_crossentropy", None, "does not end in a softmax", id="cce_no_softmax"),
        pytest.param("binary_crossentropy", None, "does not end in a sigmoid", id="bce_no_sigmoid"),
        pytest.param("binary_crossentropy", "softmax", "ends in a softmax.*as sigmoid logits", id="bce_on_softmax"),
        pytest.param(keras.losses.CategoricalCrossentropy(from_logits=True), "sigmoid", "ends in a sigmoid", id="cce_on_sigmoid"),
    ],
)
def test_cross_entropy_on_the_wrong_output_is_refused(loss, activation, message):
    with pytest.raises(NonConvexLossError, match=message):
        losses.resolve_loss(loss, output_activation=activation)


# Every refused Keras loss, with a fragment of its stated reason.
REFUSED_CASES = [
    pytest.param("mae", "not differentiable where an output equals its target.*huber", id="mae"),
    pytest.param("mape", "not differentiable", id="mape"),
    pytest.param(keras.losses.Hinge(), "not differentiable where y·f = 1.*squared_hinge", id="hinge"),
    pytest.param("categorical_hinge", "not differentiable", id="categorical_hinge"),
    pytest.param(keras.losses.Poisson(), "log link", id="poisson"),
    pytest.param("kl_divergence", "train with categorical_crossentropy", id="kl_divergence"),
    pytest.param(keras.losses.CosineSimilarity(), "not convex", id="cosine"),
    pytest.param("msle", "not convex", id="msle"),
    pytest.param(keras.losses.BinaryFocalCrossentropy(from_logits=True), "non-convex in the logits", id="binary_focal"),
    pytest.param("categorical_focal_crossentropy", "non-convex in the logits", id="categorical_focal"),
    pytest.param("dice", "not convex", id="dice"),
]


@pytest.mark.parametrize("loss, reason", REFUSED_CASES)
def test_refused_losses_name_the_reason(loss, reason):
    with pytest.raises(NonConvexLossError, match=f"not supported: .*{reason}.*convex=True"):
        losses.resolve_loss(loss)
    resolved = losses.resolve_loss(loss, convex=True)  # the caller's declaration overrides
    assert isinstance(resolved.convex_loss, losses.DeclaredConvexLoss)


def test_an_unknown_loss_is_refused_unless_declared_convex():
    def quartic(y_true, y_pred):
        return keras.ops.mean((y_pred - y_true) ** 4, axis=-1)

    with pytest.raises(NonConvexLossError, match="'quartic' is not known to be convex.*convex=True"):
        losses.resolve_loss(quartic)
    assert isinstance(losses.resolve_loss(quartic, convex=True).convex_loss, losses.DeclaredConvexLoss)


# Refused as non-convex: each with targets of one example and two outputs.
NON_CONVEX_CASES = [
    pytest.param(keras.losses.MeanSquaredLogarithmicError(dtype="float64"), [[0.0, 0.0]], id="msle"),
    pytest.param(keras.losses.BinaryFocalCrossentropy(from_logits=True, dtype="float64"), [[1.0, 1.0]], id="binary_focal"),
    pytest.param(keras.losses.CosineSimilarity(dtype="float64"), [[1.0, -0.5]], id="cosine"),
]


@pytest.mark.parametrize("keras_loss, targets", NON_CONVEX_CASES)
def test_losses_refused_as_non_convex_are_not_convex_along_some_chord(keras_loss, targets, rng):
    """The stated reason holds: Keras's own loss breaks Jensen between two random outputs."""
    targets = np.array(targets)
    for _ in range(1000):
        start, end = rng.uniform(-10, 10, size=(2, *targets.shape))
        ends = [float(keras_loss(targets, start)), float(keras_loss(targets, end))]
        for t in (0.25, 0.5, 0.75):
            middle = float(keras_loss(targets, (1 - t) * start + t * end))
            if middle > (1 - t) * ends[0] + t * ends[1] + 1e-9:
                return
    pytest.fail("Jensen held along 1000 random chords")


def test_supported_losses_are_convex_along_random_chords(rng):
    for param in KERAS_LOSS_CASES:
        keras_loss, target_kind = param.values
        convex_loss = losses.resolve_loss(keras_loss).convex_loss
        targets = convex_loss.check_targets((BATCH, OUTPUTS), _targets(target_kind, rng))
        start, end = rng.normal(size=(2, BATCH, OUTPUTS)) * 4
        values = np.array([convex_loss((1 - t) * start + t * end, targets) for t in np.linspace(0, 1, 41)])
        second_differences = values[:-2] - 2 * values[1:-1] + values[2:]
        assert second_differences.min() >= -1e-12 * np.abs(values).max(), param.id


@pytest.mark.parametrize("loss", [losses.MeanSquaredError("sum"), losses.CategoricalCrossentropyFromLogits(0.2),
                                  losses.SparseCategoricalCrossentropyFromLogits(), losses.BinaryCrossentropyFromLogits(0.1, "sum"),
                                  losses.Huber(0.3), losses.LogCosh(), losses.SquaredHinge("sum")], ids=str)
def test_a_manifest_record_rebuilds_the_loss(loss):
    record = {"name": loss.name, "at_logits": True, "quadratic": False, **loss.config()}  # as TaylorRecorder writes it
    assert losses.convex_loss_from_record(record) == loss
    assert losses.CONVEX_LOSSES[loss.name] is type(loss)


def test_a_record_of_an_older_run_still_rebuilds():
    record = {"name": "mean_squared_error", "reduction": "sum", "label_smoothing": 0.0, "at_logits": False}
    assert losses.convex_loss_from_record(record) == losses.MeanSquaredError("sum")


def test_reduction_none_is_refused():
    with pytest.raises(ValueError, match="reduction=None"):
        losses.resolve_loss(keras.losses.MeanSquaredError(reduction=None))


@pytest.mark.parametrize(
    "loss, targets, message",
    [
        pytest.param(losses.MeanSquaredError(), np.zeros((BATCH, OUTPUTS + 1)), "shaped like the outputs", id="mse_shape"),
        pytest.param(losses.SparseCategoricalCrossentropyFromLogits(), np.full(BATCH, OUTPUTS), "class indices", id="scce_range"),
        pytest.param(losses.SparseCategoricalCrossentropyFromLogits(), np.zeros((BATCH, 2)), r"\[B\] or \[B, 1\]", id="scce_shape"),
        pytest.param(losses.CategoricalCrossentropyFromLogits(), np.zeros((BATCH + 1, OUTPUTS)), "one-hot", id="cce_shape"),
        pytest.param(losses.BinaryCrossentropyFromLogits(), np.zeros((BATCH, OUTPUTS - 1)), "shaped like the outputs", id="bce_shape"),
        pytest.param(losses.Huber(), np.zeros(BATCH), "shaped like the outputs", id="huber_rank"),
    ],
)
def test_target_shape_errors(loss, targets, message):
    with pytest.raises(ShapeMismatchError, match=message):
        loss.check_targets((BATCH, OUTPUTS), targets)


def test_binary_targets_of_a_single_output_may_be_a_vector(rng):
    targets = rng.integers(0, 2, BATCH)
    checked = losses.BinaryCrossentropyFromLogits().check_targets((BATCH, 1), targets)
    np.testing.assert_array_equal(checked, targets[:, None])
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        losses.BinaryCrossentropyFromLogits().check_targets((BATCH, 1), targets + 1.5)


# ---------------------------------------------------------------------------
# End to end: recorder → manifest → analysis, for every supported non-quadratic loss.

ROUNDS = 3

# id -> (output activation, Keras loss factory, targets kind, outputs)
END_TO_END = {
    # A binary classifier with two sigmoid outputs (multi-label), probability-space loss: at the logits.
    "bce_sigmoid": ("sigmoid", lambda: "binary_crossentropy", "binary", 2),
    # One logit with [B] labels (Keras expands them), smoothed.
    "bce_logits_smoothed": (None, lambda: keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
                            "binary_vector", 1),
    "huber": (None, lambda: keras.losses.Huber(delta=0.5), "dense", 2),
    "log_cosh": (None, lambda: "log_cosh", "dense", 2),
    "squared_hinge": (None, lambda: keras.losses.SquaredHinge(reduction="sum"), "binary", 2),
}


def _end_to_end_targets(kind, rng, count, outputs):
    if kind == "binary_vector":
        return rng.integers(0, 2, count).astype("float64")
    if kind == "binary":
        return rng.integers(0, 2, size=(count, outputs)).astype("float64")
    return rng.normal(size=(count, outputs))


def _flat(parts):
    return np.concatenate([np.ravel(part) for part in parts])


def _bounded_minimum(snapshots, layer, neuron, radius):
    """min Σ_n 𝒯^n(V) over ‖V − W^0‖ ≤ radius, by SciPy's trust-region interior-point method
    (not the analysis's Newton solver) on the snapshots' own Taylor losses."""
    shapes = [part.shape for part in snapshots[0].weights(layer, neuron)]
    splits = np.cumsum([int(np.prod(shape)) for shape in shapes])[:-1]

    def unflatten(v):
        return [piece.reshape(shape) for piece, shape in zip(np.split(v, splits), shapes)]

    center = _flat(snapshots[0].weights(layer, neuron))
    ball = scipy.optimize.NonlinearConstraint(
        lambda v: np.sum((v - center) ** 2), -np.inf, radius**2, jac=lambda v: 2 * (v - center)[None],
        hess=lambda v, multiplier: 2 * multiplier[0] * np.eye(len(v)))
    result = scipy.optimize.minimize(
        lambda v: sum(s.taylor_loss(unflatten(v), layer, neuron) for s in snapshots), center,
        jac=lambda v: sum(_flat(s.taylor_loss_gradient(unflatten(v), layer, neuron)) for s in snapshots),
        hess=scipy.optimize.BFGS(), method="trust-constr", constraints=[ball],
        options={"gtol": 1e-10, "xtol": 1e-12, "maxiter": 5000})
    assert result.status in (1, 2), result.message  # gtol or xtol reached
    return result.fun


@pytest.mark.parametrize("case_id", END_TO_END)
def test_recorded_regret_matches_a_bounded_solver_over_snapshots(case_id, tmp_path, rng):
    activation, loss_factory, target_kind, outputs = END_TO_END[case_id]
    batch = 6
    with floatx("float64"):
        inputs = keras.Input((4,))
        hidden = keras.layers.Dense(5, activation="relu", name="first")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(outputs, activation=activation, name="out")(hidden))
        for variable in model.weights:
            variable.assign(rng.normal(size=variable.shape) * 0.8)
        x = rng.normal(size=(ROUNDS * batch, 4))
        y = _end_to_end_targets(target_kind, rng, len(x), outputs)
        loss = loss_factory()
        model.compile(keras.optimizers.SGD(0.1), loss)
        log = WeightLog()
        recorder = TaylorRecorder(tmp_path / "run", schedule=schedules.every_step(), dtype="float64", verbose=0)
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[log, recorder])
        snapshots = []
        for index, weights in enumerate(log.weights):
            model.set_weights(weights)
            rows = slice(index * batch, (index + 1) * batch)
            snapshots.append(kt.taylor_snapshot(model, x[rows], y[rows], loss))

    manifest = kt.load_run(tmp_path / "run").manifest
    assert manifest["loss"]["name"] == snapshots[0].convex_loss.name
    assert manifest["loss"]["at_logits"] is (activation is not None)
    assert manifest["layers"]["out"]["jacobian_is_identity"] is True  # f = z_out, the logits for a sigmoid
    for layer, neuron in (("first", None), ("first", 2), ("out", 0)):
        curve = analysis.regret_curve(tmp_path / "run", layer, neuron, rounds=[1, ROUNDS])
        assert np.all(np.isfinite(curve.regret)) and curve.diagnostics.converged.all(), (layer, neuron)
        assert_close(curve.cumulative_loss, np.cumsum([s.loss for s in snapshots])[[0, ROUNDS - 1]], "float64")
        trajectory = np.stack([_flat(s.weights(layer, neuron)) for s in snapshots])
        radius = max(np.linalg.norm(a - b) for a in trajectory for b in trajectory)
        for position, count in enumerate(curve.rounds):
            expected = _bounded_minimum(snapshots[:count], layer, neuron, radius)
            np.testing.assert_allclose(curve.cumulative_taylor_optimum[position], expected, rtol=1e-5,
                                       err_msg=f"{layer}, neuron {neuron}, N={count}")
