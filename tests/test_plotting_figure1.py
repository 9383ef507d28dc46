"""Fig. 1: `relu_net_1d` against slow references, and the two panels drawn from it."""

import numpy as np
import pytest

from conftest import assert_close
from keras_taylor import plotting

from plotting_helpers import assert_line, new_axes


# Hidden widths of the nets; () is a linear map (no hidden layer).
ARCHITECTURES = {"linear": (), "one_hidden": (16,), "three_hidden": (8, 12, 6)}


def _random_net(rng, hidden: tuple) -> tuple[list, list]:
    widths = (1, *hidden, 1)
    kernels = [rng.normal(0.0, 1.0, (fan_in, fan_out)) for fan_in, fan_out in zip(widths[:-1], widths[1:])]
    biases = [rng.normal(0.0, 1.0, fan_out) for fan_out in widths[1:]]
    return kernels, biases


def _reference_net(kernels, biases, x) -> tuple[np.ndarray, list]:
    """Per example, unit by unit: outputs `[K]` and each example's activation pattern."""
    outputs, patterns = [], []
    for x_k in x:
        hidden = [float(x_k)]
        pattern = []
        for layer, (kernel, bias) in enumerate(zip(kernels, biases)):
            fan_in, fan_out = kernel.shape
            preactivations = [
                sum(hidden[i] * kernel[i, j] for i in range(fan_in)) + bias[j] for j in range(fan_out)
            ]
            if layer < len(kernels) - 1:
                pattern += [value > 0 for value in preactivations]
                hidden = [max(value, 0.0) for value in preactivations]
            else:
                hidden = preactivations
        outputs.append(hidden[0])
        patterns.append(tuple(pattern))
    return np.array(outputs), patterns


@pytest.mark.parametrize("hidden", ARCHITECTURES.values(), ids=ARCHITECTURES.keys())
def test_relu_net_1d_matches_a_unit_by_unit_loop_and_central_differences(rng, hidden):
    kernels, biases = _random_net(rng, hidden)
    x = rng.uniform(-3.0, 3.0, 200)
    step = 1e-6
    f, df_dx = plotting.relu_net_1d(kernels, biases, x)
    reference_f, patterns = _reference_net(kernels, biases, x)
    assert_close(f, reference_f, "float64")

    # On a linear piece a central difference is exact up to rounding, so compare only
    # where x − step, x and x + step share one activation pattern.
    f_left, _ = plotting.relu_net_1d(kernels, biases, x - step)
    f_right, _ = plotting.relu_net_1d(kernels, biases, x + step)
    _, patterns_left = _reference_net(kernels, biases, x - step)
    _, patterns_right = _reference_net(kernels, biases, x + step)
    smooth = np.array([a == b == c for a, b, c in zip(patterns_left, patterns, patterns_right)])
    assert smooth.mean() > 0.9
    central = (f_right - f_left) / (2 * step)
    np.testing.assert_allclose(df_dx[smooth], central[smooth], rtol=1e-6, atol=1e-6 * np.abs(central).max())
    if hidden:  # several linear pieces, else the test would not see a shattered gradient
        assert len(set(patterns)) > 2 and np.unique(np.round(df_dx, 9)).size > 2


def test_relu_net_1d_one_hidden_layer_equals_the_closed_form(rng):
    kernels, biases = _random_net(rng, (10,))
    x = rng.uniform(-3.0, 3.0, 100)
    incoming, outgoing = kernels[0][0], kernels[1][:, 0]  # [H], [H]
    preactivations = x[:, None] * incoming + biases[0]  # [K, H]
    expected_f = np.maximum(preactivations, 0.0) @ outgoing + biases[1][0]
    expected_gradient = (preactivations > 0) @ (incoming * outgoing)
    f, df_dx = plotting.relu_net_1d(kernels, biases, x)
    assert_close(f, expected_f, "float64")
    assert_close(df_dx, expected_gradient, "float64")


def test_relu_net_1d_is_piecewise_linear_with_kinks_only_where_a_unit_switches(rng):
    kernels, biases = _random_net(rng, ARCHITECTURES["three_hidden"])
    x = np.linspace(-4.0, 4.0, 2001)
    f, df_dx = plotting.relu_net_1d(kernels, biases, x)
    _, patterns = _reference_net(kernels, biases, x)
    same_piece = np.array([a == b == c for a, b, c in zip(patterns[:-2], patterns[1:-1], patterns[2:])])
    second_difference = f[2:] - 2 * f[1:-1] + f[:-2]
    scale = np.abs(f).max()
    assert np.all(np.abs(second_difference[same_piece]) <= 1e-9 * scale)
    assert_close(df_dx[1:-1][same_piece], df_dx[2:][same_piece], "float64")  # constant on each piece
    assert (~same_piece).sum() >= 2
    assert np.abs(second_difference[~same_piece]).max() > 1e-6 * scale  # kinks really bend f


def test_relu_net_1d_matches_a_keras_dense_stack_and_its_gradient(rng, float64):
    import keras
    import tensorflow as tf

    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(9, activation="relu"),
            keras.layers.Dense(7, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.set_weights([rng.normal(0.0, 1.0, weight.shape) for weight in model.get_weights()])
    weights = model.get_weights()
    x = rng.uniform(-3.0, 3.0, 64)
    inputs = tf.constant(x[:, None])
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = model(inputs)
    keras_gradient = tape.gradient(outputs, inputs).numpy()[:, 0]
    f, df_dx = plotting.relu_net_1d(weights[0::2], weights[1::2], x)
    assert_close(f, outputs.numpy()[:, 0], float64)
    assert_close(df_dx, keras_gradient, float64)


@pytest.mark.parametrize(
    "kernel_shapes, bias_shapes, x_shape",
    [
        (((1, 3), (3, 1)), ((3,),), (5,)),
        (((2, 3), (3, 1)), ((3,), (1,)), (5,)),
        (((1, 3), (4, 1)), ((3,), (1,)), (5,)),
        (((1, 3), (3, 2)), ((3,), (2,)), (5,)),
        (((1, 3), (3, 1)), ((3,), (1,)), (5, 1)),
    ],
    ids=["missing_bias", "two_inputs", "widths_do_not_chain", "two_outputs", "x_not_1d"],
)
def test_relu_net_1d_rejects_nets_that_are_not_scalar_to_scalar(rng, kernel_shapes, bias_shapes, x_shape):
    kernels = [rng.normal(size=shape) for shape in kernel_shapes]
    biases = [rng.normal(size=shape) for shape in bias_shapes]
    with pytest.raises(ValueError, match="Received"):
        plotting.relu_net_1d(kernels, biases, rng.normal(size=x_shape))


def test_plot_piecewise_linear_draws_the_function_and_gradient_given(rng):
    ax_function, ax_gradient = new_axes(2)
    kernels, biases = _random_net(rng, (12,))
    x = np.linspace(-3.0, 3.0, 301)
    f, df_dx = plotting.relu_net_1d(kernels, biases, x)
    function_line, gradient_line = plotting.plot_piecewise_linear(
        ax_function, ax_gradient, x, f, df_dx, function_title="f", gradient_title="df/dx"
    )
    assert list(ax_function.lines) == [function_line] and list(ax_gradient.lines) == [gradient_line]
    assert_line(function_line, x, f)
    assert_line(gradient_line, x, df_dx)
    assert ax_function.get_title() == "f" and ax_gradient.get_title() == "df/dx"
    assert ax_function.get_legend() is None  # one series each
    with pytest.raises(ValueError, match="increasing"):
        plotting.plot_piecewise_linear(ax_function, ax_gradient, x[::-1], f, df_dx)
