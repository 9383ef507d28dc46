"""Verdicts by training length (not in the paper): a claim's measured quantity after each prefix of the runs."""

from collections.abc import Mapping

import matplotlib.artist
import matplotlib.axes
import matplotlib.lines
import matplotlib.ticker
import numpy as np

from keras_taylor.plotting._shared import SeriesRuns, plot_series_by_optimizer


def plot_metric_by_length(
    ax: matplotlib.axes.Axes,
    values_by_optimizer: Mapping[str, SeriesRuns],
    ylabel: str,
    *,
    title: str | None = None,
) -> list[matplotlib.artist.Artist]:
    """One quantity measured on the first E epochs of each run, against E (log axis, a tick at each E).

    Args:
        ax: Axes to draw on.
        values_by_optimizer: Optimizer name → `(epochs [L], value [L])`, or a list of such
            tuples (seeds) sharing the epochs, drawn as mean ± standard deviation.
        ylabel: What the value is.
        title: Optional title.

    Returns:
        Per optimizer: its line, then its band if drawn.

    Raises:
        ValueError: If the mapping or an entry is empty, arrays disagree in shape, or runs of
            different lengths have an x that is not strictly increasing (`align_runs`).
    """
    artists = plot_series_by_optimizer(ax, values_by_optimizer, "training length (epochs)", ylabel, title)
    ax.set_xscale("log")
    # The lengths measured, labelled as numbers: a log axis's own labels crowd (2×10⁰ … 6×10⁰) on 2–20.
    lengths = np.unique(np.concatenate([line.get_xdata() for line in artists if isinstance(line, matplotlib.lines.Line2D)]))
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(lengths))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    return artists
