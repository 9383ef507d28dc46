"""Figs. 3–4: the regret drawn equals the regret given, negative values included."""

import dataclasses

import matplotlib.colors
import numpy as np
import pytest

from keras_taylor import plotting
from keras_taylor.analysis import GrowthFit, RegretCurve, fit_growth

from plotting_helpers import (
    assert_line,
    assert_mean_and_band,
    assert_mean_and_band_of_runs,
    colors_by_label,
    exact_diagnostics,
    labeled_lines,
    legend_texts,
    new_axes,
    random_band,
    random_curve,
    random_rounds,
    same_color,
)


# ---------------------------------------------------------------------------
# Fig. 3.


def test_plot_layer_regret_draws_each_layer_including_negative_regret(rng):
    ax = new_axes()
    rounds = random_rounds(rng)
    curves = {name: random_curve(rng, rounds, layer=name) for name in ("conv_1", "conv_2", "dense")}
    lines = plotting.plot_layer_regret(ax, curves)
    assert labeled_lines(ax) == lines
    for line, curve in zip(lines, curves.values()):
        assert_line(line, rounds, curve.regret / np.sqrt(rounds))
    assert legend_texts(ax) == list(curves)
    lowest = min(curve.normalized_regret.min() for curve in curves.values())
    assert lowest < 0 and ax.get_ylim()[0] <= lowest
    assert ax.get_yscale() == "linear" and ax.get_xscale() == "log"
    assert ax.get_xlabel() and ax.get_ylabel()


def test_regret_axes_accept_symlog_and_refuse_log(rng):
    rounds = random_rounds(rng)
    curves = {"dense": random_curve(rng, rounds)}
    ax = new_axes()
    (line,) = plotting.plot_layer_regret(ax, curves, yscale="symlog")
    assert ax.get_yscale() == "symlog"
    assert_line(line, rounds, curves["dense"].normalized_regret)
    with pytest.raises(ValueError, match="negative"):
        plotting.plot_layer_regret(new_axes(), curves, yscale="log")
    with pytest.raises(ValueError, match="negative"):
        plotting.plot_optimizer_regret(new_axes(), {"sgd": curves["dense"]}, yscale="log")


def test_plot_neuron_regret_draws_mean_and_std_over_neurons(rng):
    ax = new_axes()
    rounds = random_rounds(rng)
    band = random_band(rng, rounds, units=6, layer="dense_2")
    artists = plotting.plot_neuron_regret(ax, band, color="tab:red", show_neurons=True)
    normalized = band.regret / np.sqrt(rounds)
    mean_line, shade, *neuron_lines = artists
    assert_mean_and_band(mean_line, shade, rounds, normalized)
    assert len(neuron_lines) == 6 and list(ax.collections) == [shade]
    for neuron_line, neuron_regret in zip(neuron_lines, normalized):
        assert_line(neuron_line, rounds, neuron_regret)
    assert same_color(mean_line.get_color(), "tab:red") and "6 neurons" in mean_line.get_label()
    assert normalized.min() < 0 and ax.get_ylim()[0] <= normalized.min()


def test_plot_loss_vs_taylor_optimum_for_a_curve_is_solid_loss_and_dashed_optimum(rng):
    ax = new_axes()
    curve = random_curve(rng, random_rounds(rng), layer="conv_1")
    loss_line, optimum_line = plotting.plot_loss_vs_taylor_optimum(ax, curve)
    assert_line(loss_line, curve.rounds, curve.cumulative_loss / curve.rounds)
    assert_line(optimum_line, curve.rounds, curve.cumulative_taylor_optimum / curve.rounds)
    assert loss_line.get_linestyle() == "-" and optimum_line.get_linestyle() == "--"
    assert same_color(loss_line.get_color(), optimum_line.get_color())
    assert list(ax.collections) == []
    assert legend_texts(ax) == ["conv_1: average loss", "conv_1: Taylor optimum"]


def test_plot_loss_vs_taylor_optimum_for_a_band_shades_the_neurons_optima(rng):
    ax = new_axes()
    band = random_band(rng, random_rounds(rng), units=4)
    loss_line, optimum_line, shade = plotting.plot_loss_vs_taylor_optimum(ax, band)
    assert_line(loss_line, band.rounds, band.cumulative_loss / band.rounds)
    assert_mean_and_band(optimum_line, shade, band.rounds, band.cumulative_taylor_optimum / band.rounds)
    assert optimum_line.get_linestyle() == "--"
    assert same_color(loss_line.get_color(), optimum_line.get_color())


def _power_law_curve(rng, rounds, coefficient: float, exponent: float) -> RegretCurve:
    """A network-scale curve whose regret is coefficient·N^exponent times 5% log-normal noise."""
    regret = coefficient * rounds**exponent * np.exp(rng.normal(0.0, 0.05, rounds.size))
    return RegretCurve(
        "network", None, None, rounds, rounds * 1.0, rounds - regret, regret, exact_diagnostics(rounds.size)
    )


def test_plot_growth_fit_overlays_the_power_law_refitted_by_least_squares(rng):
    ax = new_axes()
    rounds = random_rounds(rng, points=16)
    curve = _power_law_curve(rng, rounds, -1.7, 0.6)
    fit = fit_growth(curve)
    used = rounds[rounds.size // 2:]
    np.testing.assert_array_equal(fit.rounds_used, used)
    regret_line, fit_line = plotting.plot_growth_fit(ax, curve, fit)
    assert_line(regret_line, rounds, curve.regret)

    # Reference: log|R| − e·log N = log c, solved by least squares on a column of ones.
    design = np.ones((used.size, 1))
    target = np.log(np.abs(curve.regret[rounds.size // 2:])) - fit.exponent * np.log(used)
    (log_c,), *_ = np.linalg.lstsq(design, target, rcond=None)
    assert_line(fit_line, used, -np.exp(log_c) * used**fit.exponent)
    low, high = fit.interval
    for shown in (f"N^{fit.exponent:.2f}", "95%", f"[{low:.2f}, {high:.2f}]"):
        assert shown in fit_line.get_label()


def test_plot_growth_fit_draws_the_fits_own_coefficient_and_labels_its_interval(rng):
    ax = new_axes()
    rounds = random_rounds(rng, points=16)
    curve = _power_law_curve(rng, rounds, -1.7, 0.6)
    used = rounds[rounds.size // 2:]
    fit = GrowthFit(0.6, (0.52, 0.68), 0.95, -1, used, "ok", -1.7)
    _, fit_line = plotting.plot_growth_fit(ax, curve, fit)
    assert_line(fit_line, used, -1.7 * used**0.6)
    for shown in ("N^0.60", "95%", "[0.52, 0.68]"):
        assert shown in fit_line.get_label()


def test_plot_growth_fit_refuses_an_ok_fit_without_a_coefficient_or_of_another_sign(rng):
    curve = _power_law_curve(rng, random_rounds(rng, points=16), 2.5, 0.5)
    fit = fit_growth(curve)
    plotting.plot_growth_fit(new_axes(), curve, fit)
    with pytest.raises(ValueError, match="coefficient"):
        plotting.plot_growth_fit(new_axes(), curve, dataclasses.replace(fit, coefficient=float("nan")))
    with pytest.raises(ValueError, match="sign"):
        plotting.plot_growth_fit(new_axes(), curve, dataclasses.replace(fit, sign=-1, coefficient=-fit.coefficient))


def test_plot_growth_fit_notes_why_there_is_no_fit(rng):
    ax = new_axes()
    curve = random_curve(rng, random_rounds(rng))
    nan = float("nan")
    fit = GrowthFit(nan, (nan, nan), 0.95, 0, curve.rounds[6:], "sign changes", nan)
    regret_line, note = plotting.plot_growth_fit(ax, curve, fit)
    assert labeled_lines(ax) == [regret_line]
    assert note.get_text() == "no growth fit: sign changes" and list(ax.texts) == [note]


def test_plot_growth_fit_refuses_a_fit_of_another_grid(rng):
    curve = random_curve(rng, random_rounds(rng))
    fit = GrowthFit(0.5, (0.4, 0.6), 0.95, 1, curve.rounds[6:] + 1, "ok", 1.0)
    with pytest.raises(ValueError, match="grid"):
        plotting.plot_growth_fit(new_axes(), curve, fit)


# ---------------------------------------------------------------------------
# Fig. 4.


def test_plot_optimizer_regret_reduces_curves_bands_and_seeds(rng):
    rounds = random_rounds(rng)
    seeds = [random_curve(rng, rounds) for _ in range(3)]
    runs = {"SGD": random_curve(rng, rounds), "adam": random_band(rng, rounds, units=5), "rmsprop": seeds}
    ax = new_axes()
    artists = plotting.plot_optimizer_regret(ax, runs)
    sgd_line, adam_line, adam_band, rmsprop_line, rmsprop_band = artists
    assert_line(sgd_line, rounds, runs["SGD"].normalized_regret)
    assert_mean_and_band(adam_line, adam_band, rounds, runs["adam"].regret / np.sqrt(rounds))
    seed_rows = np.stack([seed.regret / np.sqrt(rounds) for seed in seeds])
    assert_mean_and_band(rmsprop_line, rmsprop_band, rounds, seed_rows)
    assert len(ax.collections) == 2  # a single curve gets no band
    assert legend_texts(ax) == ["SGD", "adam", "rmsprop"]
    for line, name in ((sgd_line, "sgd"), (adam_line, "adam"), (rmsprop_line, "rmsprop")):
        assert same_color(line.get_color(), plotting.OPTIMIZER_COLORS[name])
    for shade, name in ((adam_band, "adam"), (rmsprop_band, "rmsprop")):
        face_rgb = tuple(shade.get_facecolor()[0][:3])
        assert face_rgb == matplotlib.colors.to_rgb(plotting.OPTIMIZER_COLORS[name])

    # The same optimizers in another order, another case and another plot keep their colors.
    other = new_axes()
    plotting.plot_optimizer_regret(other, {"rmsprop": seeds[0], "Adam": seeds[1], "sgd": seeds[2]})
    first, second = colors_by_label(ax), colors_by_label(other)
    for label, other_label in (("SGD", "sgd"), ("adam", "Adam"), ("rmsprop", "rmsprop")):
        assert first[label] == second[other_label]


def test_seeds_on_different_grids_are_averaged_over_those_reaching_each_round(rng):
    # Runs of different lengths: one stopped earlier (a prefix of the grid), one on a grid of its own.
    rounds = random_rounds(rng)
    seeds = [random_curve(rng, rounds), random_curve(rng, rounds[:-3]),
             random_curve(rng, np.unique(np.geomspace(2, rounds[-2], 9).astype(np.int64)))]
    line, band = plotting.plot_optimizer_regret(new_axes(), {"adam": seeds})
    assert_mean_and_band_of_runs(line, band, [(seed.rounds, seed.normalized_regret) for seed in seeds])
    loss, loss_band, optimum, optimum_band = plotting.plot_optimizer_loss_gap(new_axes(), {"adam": seeds})
    assert_mean_and_band_of_runs(loss, loss_band, [(seed.rounds, seed.average_loss) for seed in seeds])
    assert_mean_and_band_of_runs(optimum, optimum_band, [(seed.rounds, seed.taylor_optimum) for seed in seeds])
    # A band's neurons are rows of their run: all of them reach what their run reaches.
    bands = [random_band(rng, rounds, units=3), random_band(rng, rounds[:-4], units=2)]
    line, band = plotting.plot_optimizer_regret(new_axes(), {"sgd": bands})
    assert_mean_and_band_of_runs(line, band, [(entry.rounds, row) for entry in bands
                                              for row in entry.normalized_regret])


def test_plot_optimizer_loss_gap_pairs_solid_loss_with_dashed_optimum_per_optimizer(rng):
    rounds = random_rounds(rng)
    seeds = [random_curve(rng, rounds) for _ in range(4)]
    runs = {"sgd": random_curve(rng, rounds), "adam": seeds}
    ax = new_axes()
    sgd_loss, sgd_optimum, adam_loss, adam_loss_band, adam_optimum, adam_optimum_band = (
        plotting.plot_optimizer_loss_gap(ax, runs)
    )
    assert_line(sgd_loss, rounds, runs["sgd"].cumulative_loss / rounds)
    assert_line(sgd_optimum, rounds, runs["sgd"].cumulative_taylor_optimum / rounds)
    losses = np.stack([seed.cumulative_loss / rounds for seed in seeds])
    optima = np.stack([seed.cumulative_taylor_optimum / rounds for seed in seeds])
    assert_mean_and_band(adam_loss, adam_loss_band, rounds, losses)
    assert_mean_and_band(adam_optimum, adam_optimum_band, rounds, optima)
    for loss, optimum, name in ((sgd_loss, sgd_optimum, "sgd"), (adam_loss, adam_optimum, "adam")):
        assert loss.get_linestyle() == "-" and optimum.get_linestyle() == "--"
        assert same_color(loss.get_color(), plotting.OPTIMIZER_COLORS[name])
        assert same_color(optimum.get_color(), plotting.OPTIMIZER_COLORS[name])
    assert len(legend_texts(ax)) == 4


def test_plot_optimizer_loss_gap_shades_a_bands_neuron_optima_around_its_single_loss(rng):
    rounds = random_rounds(rng)
    band = random_band(rng, rounds, units=6)
    loss_line, optimum_line, optimum_band = plotting.plot_optimizer_loss_gap(new_axes(), {"rmsprop": band})
    assert_line(loss_line, rounds, band.cumulative_loss / rounds)  # one learner: one row, no band
    assert_mean_and_band(optimum_line, optimum_band, rounds, band.cumulative_taylor_optimum / rounds)
    assert optimum_line.get_linestyle() == "--"
