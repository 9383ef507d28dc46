"""SignSGD and the paper's Observation 3."""

import keras
import numpy as np
import pytest
from scipy import optimize

from keras_taylor.optimizers import SignSGD


@pytest.mark.parametrize("dimension", [3, 17, 100], ids=lambda d: f"d{d}")
def test_signsgd_step_solves_observation_3_linear_program(dimension, rng):
    gradient = rng.normal(size=dimension)
    variable = keras.Variable(rng.normal(size=dimension), dtype="float64")
    start = variable.numpy()
    learning_rate = 0.25
    SignSGD(learning_rate).apply_gradients([(keras.ops.convert_to_tensor(gradient), variable)])
    direction = (start - variable.numpy()) / learning_rate

    # max <x, g> over the l-infinity unit ball, by an LP solver.
    solution = optimize.linprog(-gradient, bounds=[(-1, 1)] * dimension, method="highs")
    assert solution.status == 0
    np.testing.assert_allclose(direction, solution.x, atol=1e-12)
    # It is admissible (<x, g> >= 0) and attains the largest l1 norm on the ball.
    assert direction @ gradient >= 0
    assert np.abs(direction).sum() == pytest.approx(dimension)
    assert np.max(np.abs(direction)) == pytest.approx(1.0)


def test_signsgd_round_trips_its_config():
    optimizer = SignSGD(0.01)
    rebuilt = SignSGD.from_config(optimizer.get_config())
    assert float(rebuilt.learning_rate) == pytest.approx(0.01)
