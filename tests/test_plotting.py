"""Plots of the paper's figures: the data drawn equals the data given, and nothing is dropped.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot), so no test
leaves global state behind; the Agg backend is selected for any code that asks.
"""

import os
import struct
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors  # noqa: E402
import matplotlib.figure  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from conftest import assert_close  # noqa: E402
from keras_taylor import plotting  # noqa: E402
from keras_taylor.analysis import GrowthFit, NeuronRegretBand, RegretCurve, SolverDiagnostics  # noqa: E402

# ---------------------------------------------------------------------------
# Inputs: fresh random curves per test.


def _rounds(rng, points: int = 12) -> np.ndarray:
    """`[K]` an increasing grid of N starting at 1, geometrically spaced as a run's would be."""
    top = int(rng.integers(500, 5000))
    return np.unique(np.geomspace(1, top, points).astype(np.int64))


def _diagnostics(points: int) -> SolverDiagnostics:
    return SolverDiagnostics(
        method="eigh",
        converged=np.ones(points, bool),
        gradient_norm=np.zeros(points),
        iterations=np.zeros(points, np.int64),
        rank=np.full(points, 3),
        condition=np.ones(points),
        ill_conditioned=np.zeros(points, bool),
    )


def _curve(rng, rounds, cumulative_loss=None, layer="dense", neuron=None) -> RegretCurve:
    """A curve whose regret has both signs (a learner can beat the hindsight comparator)."""
    if cumulative_loss is None:
        cumulative_loss = rounds * rng.uniform(0.2, 1.0, rounds.size)
    regret = rng.normal(size=rounds.size) * np.sqrt(rounds)
    regret[0] = -abs(regret[0]) - 0.5  # at least one negative value, always
    return RegretCurve(
        scale="layer" if neuron is None else "neuron",
        layer=layer,
        neuron=neuron,
        rounds=rounds,
        cumulative_loss=cumulative_loss,
        cumulative_taylor_optimum=cumulative_loss - regret,
        regret=regret,
        diagnostics=_diagnostics(rounds.size),
    )


def _band(rng, rounds, units: int = 5, layer="dense") -> NeuronRegretBand:
    cumulative_loss = rounds * rng.uniform(0.2, 1.0, rounds.size)
    curves = tuple(_curve(rng, rounds, cumulative_loss, layer, neuron) for neuron in range(units))
    return NeuronRegretBand(
        layer=layer,
        neurons=np.arange(units),
        rounds=rounds,
        cumulative_loss=cumulative_loss,
        cumulative_taylor_optimum=np.stack([curve.cumulative_taylor_optimum for curve in curves]),
        regret=np.stack([curve.regret for curve in curves]),
        curves=curves,
    )


# ---------------------------------------------------------------------------
# Reading back what was drawn.


def _axes(count: int = 1):
    figure = matplotlib.figure.Figure()
    axes = [figure.add_subplot(1, count, index + 1) for index in range(count)]
    return axes if count > 1 else axes[0]


def _labeled_lines(ax) -> list:
    """Lines that reach the legend (reference lines such as y = 0 are labeled `_...`)."""
    return [line for line in ax.lines if not line.get_label().startswith("_")]


def _line(ax, label: str):
    (line,) = [line for line in ax.lines if line.get_label() == label]
    return line


def _legend_texts(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def _same_color(first, second) -> bool:
    return matplotlib.colors.to_rgba(first) == matplotlib.colors.to_rgba(second)


def _assert_line(line, x, y) -> None:
    np.testing.assert_array_equal(line.get_xdata(), x)
    assert_close(line.get_ydata(), y, "float64")


def _assert_band(collection, x, lower, upper) -> None:
    """The band's polygon runs through (x_k, lower_k) and (x_k, upper_k) and stays between them."""
    vertices = collection.get_paths()[0].vertices
    for edge in (lower, upper):
        for x_k, y_k in zip(x, edge):
            hits = np.isclose(vertices[:, 0], x_k) & np.isclose(vertices[:, 1], y_k, rtol=1e-9, atol=1e-12)
            assert hits.any(), f"no band vertex at ({x_k}, {y_k})"
    assert vertices[:, 1].min() >= lower.min() - 1e-9 and vertices[:, 1].max() <= upper.max() + 1e-9


def _assert_mean_and_band(line, shade, x, rows) -> None:
    """`line` is the mean of `rows` `[R, K]` and `shade` spans mean ± std over the R rows."""
    mean, spread = rows.mean(axis=0), rows.std(axis=0)
    _assert_line(line, x, mean)
    _assert_band(shade, x, mean - spread, mean + spread)


def _colors_by_label(ax) -> dict:
    return {line.get_label(): matplotlib.colors.to_rgba(line.get_color()) for line in _labeled_lines(ax)}


# ---------------------------------------------------------------------------
# Colors.


def test_known_optimizers_have_fixed_distinct_colors_case_insensitively():
    names = ("sgd", "rmsprop", "adam", "momentum", "signsgd")
    colors = [plotting.optimizer_color(name.upper()) for name in names]
    assert colors == [plotting.OPTIMIZER_COLORS[name] for name in names]
    assert len({matplotlib.colors.to_rgba(color) for color in colors}) == len(colors)
    with pytest.raises(TypeError):
        plotting.OPTIMIZER_COLORS["sgd"] = "red"  # a shared palette must not be mutable


def test_plotting_loads_without_tensorflow_and_unknown_colors_do_not_depend_on_the_process():
    unknown = ["adagrad", "Lion", "nadam", "ftrl"]
    script = (
        "import sys; from keras_taylor import plotting; "
        f"print([plotting.optimizer_color(n) for n in {unknown!r}]); "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        environment = {**os.environ, "PYTHONHASHSEED": hash_seed, "MPLBACKEND": "Agg"}
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=environment
        )
        assert result.returncode == 0, result.stderr
        colors, heavy_modules = result.stdout.strip().splitlines()
        assert heavy_modules == "[]"
        outputs.append(colors)
    in_process = [plotting.optimizer_color(name) for name in unknown]
    assert outputs[0] == outputs[1] == str(in_process)
    known = {matplotlib.colors.to_rgba(color) for color in plotting.OPTIMIZER_COLORS.values()}
    assert not known & {matplotlib.colors.to_rgba(color) for color in in_process}


# ---------------------------------------------------------------------------
# Fig. 1: relu_net_1d against slow references.

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
    ax_function, ax_gradient = _axes(2)
    kernels, biases = _random_net(rng, (12,))
    x = np.linspace(-3.0, 3.0, 301)
    f, df_dx = plotting.relu_net_1d(kernels, biases, x)
    function_line, gradient_line = plotting.plot_piecewise_linear(
        ax_function, ax_gradient, x, f, df_dx, function_title="f", gradient_title="df/dx"
    )
    assert list(ax_function.lines) == [function_line] and list(ax_gradient.lines) == [gradient_line]
    _assert_line(function_line, x, f)
    _assert_line(gradient_line, x, df_dx)
    assert ax_function.get_title() == "f" and ax_gradient.get_title() == "df/dx"
    assert ax_function.get_legend() is None  # one series each
    with pytest.raises(ValueError, match="increasing"):
        plotting.plot_piecewise_linear(ax_function, ax_gradient, x[::-1], f, df_dx)


# ---------------------------------------------------------------------------
# Fig. 3.


def test_plot_layer_regret_draws_each_layer_including_negative_regret(rng):
    ax = _axes()
    rounds = _rounds(rng)
    curves = {name: _curve(rng, rounds, layer=name) for name in ("conv_1", "conv_2", "dense")}
    lines = plotting.plot_layer_regret(ax, curves)
    assert _labeled_lines(ax) == lines
    for line, curve in zip(lines, curves.values()):
        _assert_line(line, rounds, curve.regret / np.sqrt(rounds))
    assert _legend_texts(ax) == list(curves)
    lowest = min(curve.normalized_regret.min() for curve in curves.values())
    assert lowest < 0 and ax.get_ylim()[0] <= lowest
    assert ax.get_yscale() == "linear" and ax.get_xscale() == "log"
    assert ax.get_xlabel() and ax.get_ylabel()


def test_regret_axes_accept_symlog_and_refuse_log(rng):
    rounds = _rounds(rng)
    curves = {"dense": _curve(rng, rounds)}
    ax = _axes()
    (line,) = plotting.plot_layer_regret(ax, curves, yscale="symlog")
    assert ax.get_yscale() == "symlog"
    _assert_line(line, rounds, curves["dense"].normalized_regret)
    with pytest.raises(ValueError, match="negative"):
        plotting.plot_layer_regret(_axes(), curves, yscale="log")
    with pytest.raises(ValueError, match="negative"):
        plotting.plot_optimizer_regret(_axes(), {"sgd": curves["dense"]}, yscale="log")


def test_plot_neuron_regret_draws_mean_and_std_over_neurons(rng):
    ax = _axes()
    rounds = _rounds(rng)
    band = _band(rng, rounds, units=6, layer="dense_2")
    artists = plotting.plot_neuron_regret(ax, band, color="tab:red", show_neurons=True)
    normalized = band.regret / np.sqrt(rounds)
    mean_line, shade, *neuron_lines = artists
    _assert_mean_and_band(mean_line, shade, rounds, normalized)
    assert len(neuron_lines) == 6 and list(ax.collections) == [shade]
    for neuron_line, neuron_regret in zip(neuron_lines, normalized):
        _assert_line(neuron_line, rounds, neuron_regret)
    assert _same_color(mean_line.get_color(), "tab:red") and "6 neurons" in mean_line.get_label()
    assert normalized.min() < 0 and ax.get_ylim()[0] <= normalized.min()


def test_plot_loss_vs_taylor_optimum_for_a_curve_is_solid_loss_and_dashed_optimum(rng):
    ax = _axes()
    curve = _curve(rng, _rounds(rng), layer="conv_1")
    loss_line, optimum_line = plotting.plot_loss_vs_taylor_optimum(ax, curve)
    _assert_line(loss_line, curve.rounds, curve.cumulative_loss / curve.rounds)
    _assert_line(optimum_line, curve.rounds, curve.cumulative_taylor_optimum / curve.rounds)
    assert loss_line.get_linestyle() == "-" and optimum_line.get_linestyle() == "--"
    assert _same_color(loss_line.get_color(), optimum_line.get_color())
    assert list(ax.collections) == []
    assert _legend_texts(ax) == ["conv_1: average loss", "conv_1: Taylor optimum"]


def test_plot_loss_vs_taylor_optimum_for_a_band_shades_the_neurons_optima(rng):
    ax = _axes()
    band = _band(rng, _rounds(rng), units=4)
    loss_line, optimum_line, shade = plotting.plot_loss_vs_taylor_optimum(ax, band)
    _assert_line(loss_line, band.rounds, band.cumulative_loss / band.rounds)
    _assert_mean_and_band(optimum_line, shade, band.rounds, band.cumulative_taylor_optimum / band.rounds)
    assert optimum_line.get_linestyle() == "--"
    assert _same_color(loss_line.get_color(), optimum_line.get_color())


def test_plot_growth_fit_overlays_the_power_law_refitted_by_least_squares(rng):
    ax = _axes()
    rounds = _rounds(rng, points=16)
    exponent = 0.6
    regret = -1.7 * rounds**exponent * np.exp(rng.normal(0.0, 0.05, rounds.size))
    curve = RegretCurve(
        "network", None, None, rounds, rounds * 1.0, rounds - regret, regret, _diagnostics(rounds.size)
    )
    used = rounds[rounds.size // 2:]
    fit = GrowthFit(exponent, (0.52, 0.68), 0.95, -1, used, "ok")
    regret_line, fit_line = plotting.plot_growth_fit(ax, curve, fit)
    _assert_line(regret_line, rounds, regret)

    # Reference: log|R| − e·log N = log c, solved by least squares on a column of ones.
    design = np.ones((used.size, 1))
    target = np.log(np.abs(regret[rounds.size // 2:])) - exponent * np.log(used)
    (log_c,), *_ = np.linalg.lstsq(design, target, rcond=None)
    _assert_line(fit_line, used, -np.exp(log_c) * used**exponent)
    for shown in ("N^0.60", "95%", "[0.52, 0.68]"):
        assert shown in fit_line.get_label()


def test_plot_growth_fit_notes_why_there_is_no_fit(rng):
    ax = _axes()
    curve = _curve(rng, _rounds(rng))
    fit = GrowthFit(float("nan"), (float("nan"), float("nan")), 0.95, 0, curve.rounds[6:], "sign changes")
    regret_line, note = plotting.plot_growth_fit(ax, curve, fit)
    assert _labeled_lines(ax) == [regret_line]
    assert note.get_text() == "no growth fit: sign changes" and list(ax.texts) == [note]


def test_plot_growth_fit_refuses_a_fit_of_another_grid(rng):
    curve = _curve(rng, _rounds(rng))
    fit = GrowthFit(0.5, (0.4, 0.6), 0.95, 1, curve.rounds[6:] + 1, "ok")
    with pytest.raises(ValueError, match="grid"):
        plotting.plot_growth_fit(_axes(), curve, fit)


# ---------------------------------------------------------------------------
# Fig. 4.


def test_plot_optimizer_regret_reduces_curves_bands_and_seeds(rng):
    rounds = _rounds(rng)
    seeds = [_curve(rng, rounds) for _ in range(3)]
    runs = {"SGD": _curve(rng, rounds), "adam": _band(rng, rounds, units=5), "rmsprop": seeds}
    ax = _axes()
    artists = plotting.plot_optimizer_regret(ax, runs)
    sgd_line, adam_line, adam_band, rmsprop_line, rmsprop_band = artists
    _assert_line(sgd_line, rounds, runs["SGD"].normalized_regret)
    _assert_mean_and_band(adam_line, adam_band, rounds, runs["adam"].regret / np.sqrt(rounds))
    seed_rows = np.stack([seed.regret / np.sqrt(rounds) for seed in seeds])
    _assert_mean_and_band(rmsprop_line, rmsprop_band, rounds, seed_rows)
    assert len(ax.collections) == 2  # a single curve gets no band
    assert _legend_texts(ax) == ["SGD", "adam", "rmsprop"]
    for line, name in ((sgd_line, "sgd"), (adam_line, "adam"), (rmsprop_line, "rmsprop")):
        assert _same_color(line.get_color(), plotting.OPTIMIZER_COLORS[name])
    for shade, name in ((adam_band, "adam"), (rmsprop_band, "rmsprop")):
        face_rgb = tuple(shade.get_facecolor()[0][:3])
        assert face_rgb == matplotlib.colors.to_rgb(plotting.OPTIMIZER_COLORS[name])

    # The same optimizers in another order, another case and another plot keep their colors.
    other = _axes()
    plotting.plot_optimizer_regret(other, {"rmsprop": seeds[0], "Adam": seeds[1], "sgd": seeds[2]})
    first, second = _colors_by_label(ax), _colors_by_label(other)
    for label, other_label in (("SGD", "sgd"), ("adam", "Adam"), ("rmsprop", "rmsprop")):
        assert first[label] == second[other_label]


def test_seeds_on_different_grids_are_refused(rng):
    rounds = _rounds(rng)
    seeds = [_curve(rng, rounds), _curve(rng, rounds[:-1])]
    with pytest.raises(ValueError, match="grid of rounds"):
        plotting.plot_optimizer_regret(_axes(), {"adam": seeds})
    with pytest.raises(ValueError, match="grid of rounds"):
        plotting.plot_optimizer_loss_gap(_axes(), {"adam": seeds})


def test_plot_optimizer_loss_gap_pairs_solid_loss_with_dashed_optimum_per_optimizer(rng):
    rounds = _rounds(rng)
    seeds = [_curve(rng, rounds) for _ in range(4)]
    runs = {"sgd": _curve(rng, rounds), "adam": seeds}
    ax = _axes()
    sgd_loss, sgd_optimum, adam_loss, adam_loss_band, adam_optimum, adam_optimum_band = (
        plotting.plot_optimizer_loss_gap(ax, runs)
    )
    _assert_line(sgd_loss, rounds, runs["sgd"].average_loss)
    _assert_line(sgd_optimum, rounds, runs["sgd"].taylor_optimum)
    losses = np.stack([seed.cumulative_loss / rounds for seed in seeds])
    optima = np.stack([seed.cumulative_taylor_optimum / rounds for seed in seeds])
    _assert_mean_and_band(adam_loss, adam_loss_band, rounds, losses)
    _assert_mean_and_band(adam_optimum, adam_optimum_band, rounds, optima)
    for loss, optimum, name in ((sgd_loss, sgd_optimum, "sgd"), (adam_loss, adam_optimum, "adam")):
        assert loss.get_linestyle() == "-" and optimum.get_linestyle() == "--"
        assert _same_color(loss.get_color(), plotting.OPTIMIZER_COLORS[name])
        assert _same_color(optimum.get_color(), plotting.OPTIMIZER_COLORS[name])
    assert len(_legend_texts(ax)) == 4


# ---------------------------------------------------------------------------
# Fig. 5 and 6.


def test_plot_min_hamming_draws_each_optimizer_in_its_color(rng):
    x = np.arange(1, 41) * 50
    runs = {"sgd": (x, rng.uniform(0, 0.2, x.size)), "adam": (x, rng.uniform(0, 0.2, x.size))}
    ax = _axes()
    lines = plotting.plot_min_hamming(ax, runs)
    for line, (name, (run_x, distance)) in zip(lines, runs.items()):
        _assert_line(line, run_x, distance)
        assert _same_color(line.get_color(), plotting.OPTIMIZER_COLORS[name])
    assert _legend_texts(ax) == ["sgd", "adam"] and list(ax.collections) == []
    other = _axes()
    plotting.plot_min_hamming(other, {"adam": runs["adam"], "sgd": runs["sgd"]})
    assert _colors_by_label(other) == _colors_by_label(ax)


def test_plot_training_loss_averages_seeds_and_keeps_single_runs(rng):
    epochs = np.arange(1, 21)
    seeds = [(epochs, rng.uniform(0.1, 2.0, epochs.size)) for _ in range(3)]
    single = (epochs, rng.uniform(0.1, 2.0, epochs.size))
    ax = _axes()
    rmsprop_line, rmsprop_band, sgd_line = plotting.plot_training_loss(
        ax, {"rmsprop": seeds, "sgd": single}, xlabel="epoch", yscale="log"
    )
    _assert_mean_and_band(rmsprop_line, rmsprop_band, epochs, np.stack([loss for _, loss in seeds]))
    _assert_line(sgd_line, epochs, single[1])
    assert ax.get_xlabel() == "epoch" and ax.get_yscale() == "log"
    assert _legend_texts(ax) == ["rmsprop", "sgd"]
    with pytest.raises(ValueError, match="share one x"):
        plotting.plot_training_loss(_axes(), {"sgd": [single, (epochs + 1, single[1])]})


def test_plot_switches_draws_sorted_proportions_against_their_rank(rng):
    runs = {"sgd": np.sort(rng.uniform(0, 0.3, 50)), "adam": np.sort(rng.uniform(0, 0.3, 60))[::-1]}
    ax = _axes()
    lines = plotting.plot_switches(ax, runs)
    for line, (name, proportions) in zip(lines, runs.items()):
        _assert_line(line, np.arange(proportions.size), proportions)
        assert _same_color(line.get_color(), plotting.OPTIMIZER_COLORS[name])
    assert _legend_texts(ax) == ["sgd", "adam"]
    with pytest.raises(ValueError, match="sorted"):
        plotting.plot_switches(_axes(), {"sgd": rng.permutation(np.linspace(0.1, 0.3, 20))})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plotting.plot_switches(_axes(), {"sgd": np.sort(rng.uniform(0.5, 1.5, 20))})


def test_plot_log_volume_draws_minus_infinity_at_the_floor_and_counts_it(rng):
    adam = np.sort(rng.normal(-5.0, 2.0, 40))
    adam[:7] = -np.inf
    sgd = np.sort(rng.normal(-5.0, 2.0, 30))[::-1]  # descending, no −∞
    ax = _axes()
    adam_line, adam_markers, sgd_line = plotting.plot_log_volume(ax, {"adam": adam, "sgd": sgd})

    finite_low = min(adam[7:].min(), sgd.min())
    marker_x, marker_y = adam_markers.get_offsets().T
    np.testing.assert_array_equal(marker_x, np.arange(7))
    floor = marker_y[0]
    assert np.all(marker_y == floor) and floor < finite_low
    assert ax.get_ylim()[0] <= floor
    _assert_line(adam_line, np.arange(7, 40), adam[7:])
    _assert_line(sgd_line, np.arange(30), sgd)
    assert adam_line.get_xdata().size + marker_x.size == adam.size  # every entry is drawn
    assert adam_line.get_marker() in ("None", None, "")  # only the −∞ entries get markers
    assert "7 of 40" in adam_markers.get_label() and "−∞" in adam_markers.get_label()
    assert any("7 of 40" in text for text in _legend_texts(ax))
    assert _same_color(adam_markers.get_facecolor()[0], plotting.OPTIMIZER_COLORS["adam"])


def test_plot_log_volume_uses_a_given_floor_only_below_every_finite_value(rng):
    volumes = np.sort(rng.normal(-5.0, 2.0, 25))
    volumes[:3] = -np.inf
    ax = _axes()
    _, markers = plotting.plot_log_volume(ax, {"momentum": volumes}, floor=-100.0)
    np.testing.assert_array_equal(markers.get_offsets()[:, 1], np.full(3, -100.0))
    with pytest.raises(ValueError, match="floor"):
        plotting.plot_log_volume(_axes(), {"momentum": volumes}, floor=volumes[3])
    volumes[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        plotting.plot_log_volume(_axes(), {"momentum": np.sort(volumes)})


# ---------------------------------------------------------------------------
# Every plot: axis labels, optional title, legend only for several series.


def _draw_each(rng):
    rounds = _rounds(rng)
    curve, band = _curve(rng, rounds), _band(rng, rounds)
    x = np.arange(10.0)
    return {
        "piecewise": lambda ax, title: plotting.plot_piecewise_linear(
            ax, ax.twinx(), x, x**2, 2 * x, function_title=title, gradient_title=title
        ),
        "layer_regret": lambda ax, title: plotting.plot_layer_regret(ax, {"d": curve}, title=title),
        "neuron_regret": lambda ax, title: plotting.plot_neuron_regret(ax, band, title=title),
        "loss_vs_optimum": lambda ax, title: plotting.plot_loss_vs_taylor_optimum(ax, curve, title=title),
        "optimizer_regret": lambda ax, title: plotting.plot_optimizer_regret(ax, {"sgd": curve}, title=title),
        "optimizer_loss_gap": lambda ax, title: plotting.plot_optimizer_loss_gap(
            ax, {"sgd": band}, title=title
        ),
        "growth_fit": lambda ax, title: plotting.plot_growth_fit(
            ax, curve, GrowthFit(0.5, (0.4, 0.6), 0.9, 1, rounds[6:], "too few points"), title=title
        ),
        "min_hamming": lambda ax, title: plotting.plot_min_hamming(ax, {"sgd": (x, x / 10)}, title=title),
        "switches": lambda ax, title: plotting.plot_switches(ax, {"sgd": x / 10}, title=title),
        "log_volume": lambda ax, title: plotting.plot_log_volume(ax, {"sgd": x}, title=title),
        "training_loss": lambda ax, title: plotting.plot_training_loss(ax, {"sgd": (x, x + 1)}, title=title),
    }


PLOTS = tuple(_draw_each(np.random.default_rng(0)))
# Plots whose single input above draws one labeled series (the others draw two, e.g. loss and optimum).
SINGLE_SERIES = {"piecewise", "layer_regret", "neuron_regret", "optimizer_regret", "growth_fit",
                 "min_hamming", "switches", "log_volume", "training_loss"}


@pytest.mark.parametrize("plot", PLOTS)
def test_every_plot_labels_its_axes_takes_a_title_and_shows_a_legend_only_for_several_series(rng, plot):
    draw = _draw_each(rng)[plot]
    ax = _axes()
    draw(ax, None)
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() == ""
    assert (ax.get_legend() is None) == (plot in SINGLE_SERIES)
    titled = _axes()
    draw(titled, "A title")
    assert titled.get_title() == "A title"


# ---------------------------------------------------------------------------
# Files.


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


@pytest.mark.parametrize("dpi", [72, 150], ids=["dpi72", "dpi150"])
def test_save_figure_writes_png_and_pdf_at_the_given_dpi(tmp_path, rng, dpi):
    figure = matplotlib.figure.Figure(figsize=(4.0, 2.5))
    plotting.plot_training_loss(figure.add_subplot(), {"adam": (np.arange(8), rng.uniform(size=8))})
    paths = plotting.save_figure(figure, tmp_path / "figures" / "fig6.v1", dpi=dpi)
    assert paths == [tmp_path / "figures" / "fig6.v1.png", tmp_path / "figures" / "fig6.v1.pdf"]
    assert all(path.stat().st_size > 0 for path in paths)
    assert _png_size(paths[0]) == (round(4.0 * dpi), round(2.5 * dpi))
    assert paths[1].read_bytes()[:5] == b"%PDF-"


def test_save_figure_refuses_no_formats_and_nonpositive_dpi(tmp_path):
    figure = matplotlib.figure.Figure()
    with pytest.raises(ValueError, match="format"):
        plotting.save_figure(figure, tmp_path / "fig", formats=())
    with pytest.raises(ValueError, match="dpi"):
        plotting.save_figure(figure, tmp_path / "fig", dpi=0)
    assert list(tmp_path.iterdir()) == []
