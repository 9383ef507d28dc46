"""Verdicts by length: a claim's quantity on the first E epochs, against E."""

import numpy as np

from keras_taylor import plotting

from plotting_helpers import assert_line, assert_mean_and_band, legend_texts, new_axes, same_color


def test_plot_metric_by_length_draws_seeds_against_the_lengths_each_labelled(rng):
    lengths = np.array([1.0, 2.0, 5.0, 10.0, 20.0])
    seeds = [(lengths, rng.uniform(0.0, 1.0, lengths.size)) for _ in range(3)]
    single = (lengths[:4], rng.uniform(0.0, 1.0, 4))
    ax = new_axes()
    adam_line, adam_band, sgd_line = plotting.plot_metric_by_length(ax, {"adam": seeds, "sgd": single}, "exponent",
                                                                    title="t")
    assert_mean_and_band(adam_line, adam_band, lengths, np.stack([values for _, values in seeds]))
    assert_line(sgd_line, *single)
    assert same_color(adam_line.get_color(), plotting.OPTIMIZER_COLORS["adam"])
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "exponent" and legend_texts(ax) == ["adam", "sgd"]
    ax.figure.canvas.draw()
    np.testing.assert_array_equal(ax.get_xticks(), lengths)
    assert [label.get_text() for label in ax.get_xticklabels()] == ["1", "2", "5", "10", "20"]
    assert ax.get_xticks(minor=True).size == 0
