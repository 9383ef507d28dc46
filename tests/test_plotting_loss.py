"""Fig. 6: training loss per optimizer, seeds averaged."""

import numpy as np
import pytest

from keras_taylor import plotting

from plotting_helpers import assert_line, assert_mean_and_band, legend_texts, new_axes


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
    with pytest.raises(ValueError, match="share one x"):
        plotting.plot_training_loss(new_axes(), {"sgd": [single, (epochs + 1, single[1])]})
