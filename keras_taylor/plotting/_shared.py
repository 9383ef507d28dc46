"""Drawing helpers shared by the figure modules of `keras_taylor.plotting` (not re-exported).

The module is private to the subpackage; its functions carry no underscore because the
sibling modules import them.
"""

from collections.abc import Mapping

import matplotlib.artist
import matplotlib.axes
import numpy as np

from keras_taylor.plotting.colors import optimizer_color

# One run `(x [K], y [K])` as a tuple, or a list of such tuples (seeds) sharing x.
SeriesRuns = tuple[np.ndarray, np.ndarray] | list[tuple[np.ndarray, np.ndarray]]

_BAND_ALPHA = 0.25


def finish(ax: matplotlib.axes.Axes, xlabel: str, ylabel: str, title: str | None) -> None:
    """Labels the axes, sets the optional title, and adds a legend when it has several entries."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    # A legend of one entry repeats the axis label.
    _, labels = ax.get_legend_handles_labels()
    if len(labels) > 1:
        ax.legend()


def require_nonempty(mapping: Mapping, name: str) -> None:
    """Raises ValueError if `mapping` (named `name` in the message) is empty."""
    if not mapping:
        raise ValueError(f"Expected at least one series. Received: {name}={dict(mapping)!r}")


def mean_and_band(
    ax: matplotlib.axes.Axes,
    x: np.ndarray,
    rows: np.ndarray,
    *,
    color: str | None,
    label: str,
    linestyle: str = "-",
) -> list[matplotlib.artist.Artist]:
    """Draws the mean of `rows` `[R, K]` against `x` `[K]`, and mean ± std if R > 1."""
    mean = rows.mean(axis=0)
    (line,) = ax.plot(x, mean, color=color, linestyle=linestyle, label=label)
    artists: list[matplotlib.artist.Artist] = [line]
    if rows.shape[0] > 1:
        spread = rows.std(axis=0)
        artists.append(
            ax.fill_between(
                x, mean - spread, mean + spread, color=line.get_color(), alpha=_BAND_ALPHA, linewidth=0
            )
        )
    return artists


def plot_series_by_optimizer(
    ax: matplotlib.axes.Axes,
    runs_by_optimizer: Mapping[str, SeriesRuns],
    xlabel: str,
    ylabel: str,
    title: str | None,
) -> list[matplotlib.artist.Artist]:
    """Per optimizer, in its color: the mean of its runs' y, and mean ± std over several runs."""
    require_nonempty(runs_by_optimizer, "runs_by_optimizer")
    artists = []
    for optimizer, runs in runs_by_optimizer.items():
        x, rows = _series_rows(optimizer, runs)
        artists += mean_and_band(ax, x, rows, color=optimizer_color(optimizer), label=optimizer)
    finish(ax, xlabel, ylabel, title)
    return artists


def _series_rows(optimizer: str, runs: SeriesRuns) -> tuple[np.ndarray, np.ndarray]:
    """The shared x `[K]` and stacked y `[R, K]` of one optimizer's `(x, y)` runs."""
    pairs = [runs] if isinstance(runs, tuple) else list(runs)
    if not pairs:
        raise ValueError(f"{optimizer}: expected at least one run. Received: an empty list")
    x = np.asarray(pairs[0][0], dtype=np.float64)
    rows = []
    for run_x, run_y in pairs:
        run_x = np.asarray(run_x, dtype=np.float64)
        run_y = np.asarray(run_y, dtype=np.float64)
        if x.ndim != 1 or run_y.shape != x.shape:
            raise ValueError(
                f"{optimizer}: expected x and y of one shape [K]. "
                f"Received: x.shape={x.shape}, y.shape={run_y.shape}"
            )
        if not np.array_equal(run_x, x):
            raise ValueError(f"{optimizer}: seeds must share one x to be averaged.")
        rows.append(run_y)
    return x, np.stack(rows)
