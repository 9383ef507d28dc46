"""Fig. 6: training loss per optimizer."""

from collections.abc import Mapping

import matplotlib.artist
import matplotlib.axes

from keras_taylor.plotting._shared import SeriesRuns, plot_series_by_optimizer


def plot_training_loss(
    ax: matplotlib.axes.Axes,
    losses_by_optimizer: Mapping[str, SeriesRuns],
    *,
    xlabel: str = "round",
    yscale: str = "linear",
    title: str | None = None,
) -> list[matplotlib.artist.Artist]:
    """Fig. 6: training loss per optimizer.

    Args:
        ax: Axes to draw on.
        losses_by_optimizer: Optimizer name → `(rounds or epochs [K], loss [K])`, or a list
            of such tuples (seeds), drawn as mean ± standard deviation (seeds of different
            lengths: over those that reach each x).
        xlabel: Label of the x axis (rounds or epochs).
        yscale: Scale of the loss axis ("log" is allowed: losses are positive).
        title: Optional title.

    Returns:
        Per optimizer: its line, then its band if drawn.

    Raises:
        ValueError: If the mapping or an entry is empty, arrays disagree in shape, or runs of
            different lengths have an x that is not strictly increasing (`align_runs`).
    """
    artists = plot_series_by_optimizer(ax, losses_by_optimizer, xlabel, "training loss", title)
    ax.set_yscale(yscale)
    return artists
