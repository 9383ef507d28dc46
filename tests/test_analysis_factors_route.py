"""analysis.factors_route: the bounded cross-entropy optimum against an independent solver on real recordings."""

import keras
import numpy as np
import pytest
import scipy.optimize

from keras_taylor import analysis, schedules
from keras_taylor.callbacks import TaylorRecorder

from conftest import ROUND_BATCH, assert_close, floatx, round_snapshots, train_recorded

BATCH = ROUND_BATCH


def _classifier(rng, conv=False):
    if conv:
        inputs = keras.Input((6, 6, 2))
        hidden = keras.layers.Conv2D(3, 3, strides=2, padding="same", activation="relu", name="conv")(inputs)
        hidden = keras.layers.Flatten()(hidden)
    else:
        inputs = keras.Input((6,))
        hidden = keras.layers.Dense(5, activation="relu", name="first")(inputs)
    outputs = keras.layers.Dense(3, name="out")(hidden)
    model = keras.Model(inputs, outputs)
    for variable in model.weights:
        variable.assign(rng.normal(size=variable.shape) * 0.7)
    return model


@pytest.mark.parametrize("conv,examples", [(False, None), (True, None), (True, 3)],
                         ids=["dense", "conv", "conv_3_examples_per_round"])
def test_cross_entropy_optimum_matches_an_independent_bounded_solver(tmp_path, conv, examples):
    with floatx("float64"):
        rng = np.random.default_rng(7 + conv)
        x = rng.normal(size=(3 * BATCH,) + ((6, 6, 2) if conv else (6,)))
        y = rng.integers(0, 3, size=3 * BATCH)
        model = _classifier(np.random.default_rng(3), conv)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        recorder = TaylorRecorder(tmp_path / "ce", schedule=schedules.every_step(), dtype="float64", verbose=0,
                                  examples_per_round=examples)
        weights = train_recorded(model, x, y, recorder, loss=loss, epochs=1)
        snapshots = round_snapshots(model, x, y, weights, loss, examples=examples)
    layer = "conv" if conv else "first"
    for neuron, bound in ((None, None), (1, None), (1, 0.05)):  # 0.05: the ball binds
        curve = analysis.regret_curve(tmp_path / "ce", layer, neuron, rounds=[1, 3], radius=bound)
        reference = snapshots[0].weights(layer, neuron)
        shapes = [part.shape for part in reference]

        def unflatten(v):
            parts, start = [], 0
            for shape in shapes:
                size = int(np.prod(shape))
                parts.append(v[start:start + size].reshape(shape))
                start += size
            return parts

        trajectory = np.stack([np.concatenate([p.reshape(-1) for p in s.weights(layer, neuron)]) for s in snapshots])
        center = trajectory[0]
        radius = bound or max(np.linalg.norm(a - b) for a in trajectory for b in trajectory)
        for position, count in enumerate(curve.rounds):
            def objective(v):
                return sum(s.taylor_loss(unflatten(v), layer, neuron) for s in snapshots[:count])

            def gradient(v):
                return sum(np.concatenate([g.reshape(-1) for g in s.taylor_loss_gradient(unflatten(v), layer, neuron)])
                           for s in snapshots[:count])

            result = scipy.optimize.minimize(
                objective, center, jac=gradient, method="SLSQP", options={"ftol": 1e-14, "maxiter": 1000},
                constraints=[{"type": "ineq", "fun": lambda v: radius**2 - np.sum((v - center) ** 2),
                              "jac": lambda v: -2 * (v - center)}])
            assert result.success
            np.testing.assert_allclose(curve.cumulative_taylor_optimum[position], result.fun, rtol=1e-5)
        assert curve.diagnostics.converged.all()
        incurred = np.cumsum([s.loss for s in snapshots])[curve.rounds - 1]
        assert_close(curve.cumulative_loss, incurred, "float32")


def test_a_neuron_band_read_in_one_pass_equals_single_neuron_curves(tmp_path):
    with floatx("float64"):
        rng = np.random.default_rng(5)
        x, y = rng.normal(size=(3 * BATCH, 6, 6, 2)), rng.integers(0, 3, size=3 * BATCH)
        model = _classifier(np.random.default_rng(3), conv=True)
        recorder = TaylorRecorder(tmp_path / "ce", schedule=schedules.every_step(), dtype="float64", verbose=0)
        train_recorded(model, x, y, recorder, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), epochs=1)
    band = analysis.neuron_regret_band(tmp_path / "ce", "conv", rounds=[1, 3])  # neurons 1, 2 read together
    assert band.neurons.tolist() == [0, 1, 2]
    for index, neuron in enumerate(band.neurons):
        curve = analysis.regret_curve(tmp_path / "ce", "conv", int(neuron), rounds=[1, 3])
        assert_close(band.cumulative_taylor_optimum[index], curve.cumulative_taylor_optimum, "float64")
    assert_close(band.cumulative_loss, curve.cumulative_loss, "float64")


def test_nonfinite_rounds_are_left_out_of_the_bounded_optimum(tmp_path):
    """A NaN input in the last of three rounds: rounds 1 and 2 are what the optimum and the incurred
    loss sum at N = 3, and the analysis says which step it left out."""
    with floatx("float64"):
        rng = np.random.default_rng(9)
        x, y = rng.normal(size=(3 * BATCH, 6)), rng.integers(0, 3, size=3 * BATCH)
        x[2 * BATCH + 1, 2] = np.nan
        model = _classifier(np.random.default_rng(4))
        model.compile(keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[TaylorRecorder(
            tmp_path / "ce", schedule=schedules.every_step(), dtype="float64", verbose=0)])
    with pytest.warns(analysis.NonFiniteRoundsWarning, match=r"1 of 3 recorded rounds .*steps \[2\]"):
        curve = analysis.regret_curve(tmp_path / "ce", "first", rounds=[1, 2, 3])
    assert np.all(np.isfinite(curve.regret))
    assert curve.cumulative_loss[2] == curve.cumulative_loss[1] > curve.cumulative_loss[0]
    assert curve.cumulative_taylor_optimum[2] == curve.cumulative_taylor_optimum[1]
