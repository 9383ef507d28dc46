"""Fig. 6: training loss per optimizer, seeds averaged."""

import numpy as np
import pytest

from keras_taylor import plotting

from plotting_helpers import assert_line, assert_mean_and_band, assert_mean_and_band_of_runs, legend_texts, new_axes


def test_plot_training_loss_averages_seeds_and_keeps_single_runs(rng):
    epochs = np.arange(1, 21)
    seeds = [(epochs, rng.uniform(0.1, 2.0, epochs.size)) for _ in range(3)]
    single = (epochs, rng.uniform(0.1, 2.0, epochs.size))
    ax = new_axes()
    rmsprop_line, rmsprop_band, sgd_line = plotting.plot_training_loss(
        ax, {"rmsprop": seeds, "sgd": single}, xlabel="epoch", yscale="log"
    )
    assert_mean_and_band(rmsprop_line, rmsprop_band, epochs, np.stack([loss for _, loss in seeds]))
    assert_line(sgd_line, epochs, single[1])
    assert ax.get_xlabel() == "epoch" and ax.get_yscale() == "log"
    assert legend_texts(ax) == ["rmsprop", "sgd"]


def test_seeds_of_different_lengths_are_averaged_over_those_reaching_each_epoch(rng):
    # Runs stopped at an accuracy plateau: 20, 12 and 7 epochs, the last on points between the others'.
    seeds = [(np.arange(1.0, 21.0), rng.uniform(0.1, 2.0, 20)), (np.arange(1.0, 13.0), rng.uniform(0.1, 2.0, 12)),
             (np.arange(0.5, 7.0), rng.uniform(0.1, 2.0, 7))]
    line, band = plotting.plot_training_loss(new_axes(), {"adam": seeds}, xlabel="epoch")
    assert_mean_and_band_of_runs(line, band, seeds)
    assert line.get_xdata()[-1] == 20 and line.get_ydata()[-1] == seeds[0][1][-1]


def test_the_band_is_not_drawn_across_a_stretch_where_only_one_seed_is_present(rng):
    # A run over epochs 1–20, one over 1–6 and one over 14–20: one seed alone on 7–13.
    seeds = [(np.arange(1.0, 21.0), rng.uniform(0.1, 2.0, 20)), (np.arange(1.0, 7.0), rng.uniform(0.1, 2.0, 6)),
             (np.arange(14.0, 21.0), rng.uniform(0.1, 2.0, 7))]
    line, band = plotting.plot_training_loss(new_axes(), {"adam": seeds}, xlabel="epoch")
    assert_mean_and_band_of_runs(line, band, seeds)
    assert len(band.get_paths()) == 2


def test_seeds_of_different_lengths_need_increasing_x(rng):
    loss = rng.uniform(0.1, 2.0, 5)
    with pytest.raises(ValueError, match="strictly increasing"):
        plotting.plot_training_loss(new_axes(), {"sgd": [(np.arange(5.0), loss), (np.arange(5.0)[::-1], loss)]})
    with pytest.raises(ValueError, match="one shape"):
        plotting.plot_training_loss(new_axes(), {"sgd": [(np.arange(5.0), loss), (np.arange(4.0), loss)]})
