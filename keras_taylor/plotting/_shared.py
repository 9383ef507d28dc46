"""Drawing helpers shared by the figure modules of `keras_taylor.plotting` (not re-exported).

The module is private to the subpackage; its functions carry no underscore because the
sibling modules import them.
"""

from collections.abc import Mapping, Sequence

import matplotlib.artist
import matplotlib.axes
import numpy as np

from keras_taylor.plotting.colors import optimizer_color

# One run `(x [K], y [K])` as a tuple, or a list of such tuples (seeds; of different x when the
# runs differ in length, see `align_runs`).
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
    """Draws the mean of `rows` `[R, K]` against `x` `[K]`, and mean ± std if R > 1.

    `rows` may be a masked array (`align_runs` of runs of different lengths): then each point is
    the mean over the rows present there, and the band is drawn where at least two are.
    """
    if not np.ma.isMaskedArray(rows):
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
    present = rows.count(axis=0)
    mean = rows.mean(axis=0).filled(np.nan)
    (line,) = ax.plot(x, mean, color=color, linestyle=linestyle, label=label)
    artists = [line]
    if present.max() > 1:
        spread = rows.std(axis=0).filled(np.nan)
        shared = present > 1
        artists.append(  # `where`: one polygon per stretch of shared x, none bridging a gap between them
            ax.fill_between(
                x, mean - spread, mean + spread, where=shared, color=line.get_color(), alpha=_BAND_ALPHA, linewidth=0,
            )
        )
    return artists


def align_runs(name: str, runs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One optimizer's runs `(x [K_i], rows [r_i, K_i])` on one x, rows stacked.

    Runs that share their x are stacked as they are. Runs of different lengths (e.g. stopped at an
    accuracy plateau) are put on the union of their x: each run's rows are interpolated linearly
    between its own points and masked beyond them, so that `mean_and_band` averages, at each x,
    the runs that reached it. A NaN in a run (a value not known) stays unknown: interpolation
    carries it to the union's points between its neighbours, where the mean and band are NaN too.

    Returns:
        `(x [K], rows [R, K])`, rows a masked array when the runs' x differ.

    Raises:
        ValueError: an x is not one-dimensional, rows do not match their x, or runs of different x
            have an x that is not strictly increasing.
    """
    if not runs:
        raise ValueError(f"{name}: expected at least one run. Received: an empty sequence")
    pairs = []
    for x, rows in runs:
        x, rows = np.asarray(x, np.float64), np.atleast_2d(np.asarray(rows, np.float64))
        if x.ndim != 1 or rows.ndim != 2 or rows.shape[1] != x.shape[0]:
            raise ValueError(f"{name}: expected x [K] and rows [R, K] of the same K. "
                             f"Received: x.shape={x.shape}, rows.shape={rows.shape}")
        pairs.append((x, rows))
    first = pairs[0][0]
    if all(np.array_equal(x, first) for x, _ in pairs):
        return first, np.concatenate([rows for _, rows in pairs])
    for x, _ in pairs:
        if np.any(np.diff(x) <= 0):
            raise ValueError(f"{name}: runs of different lengths are aligned on their x, which must be strictly "
                             f"increasing. Received: x={x.tolist()}")
    union = np.unique(np.concatenate([x for x, _ in pairs]))
    aligned = []
    for x, rows in pairs:
        outside = (union < x[0]) | (union > x[-1])
        for row in rows:
            aligned.append(np.ma.masked_array(np.interp(union, x, row), mask=outside))
    return union, np.ma.stack(aligned)


def plot_series_by_optimizer(
    ax: matplotlib.axes.Axes,
    runs_by_optimizer: Mapping[str, SeriesRuns],
    xlabel: str,
    ylabel: str,
    title: str | None,
) -> list[matplotlib.artist.Artist]:
    """Per optimizer, in its color: the mean of its runs' y, and mean ± std over several runs (runs of
    different lengths: over those that reach each x, see `align_runs`)."""
    require_nonempty(runs_by_optimizer, "runs_by_optimizer")
    artists = []
    for optimizer, runs in runs_by_optimizer.items():
        x, rows = _series_rows(optimizer, runs)
        artists += mean_and_band(ax, x, rows, color=optimizer_color(optimizer), label=optimizer)
    finish(ax, xlabel, ylabel, title)
    return artists


def _series_rows(optimizer: str, runs: SeriesRuns) -> tuple[np.ndarray, np.ndarray]:
    """The x `[K]` and stacked y `[R, K]` of one optimizer's `(x, y)` runs (`align_runs`)."""
    pairs = [runs] if isinstance(runs, tuple) else list(runs)
    for x, y in pairs:
        if np.ndim(x) != 1 or np.shape(y) != np.shape(x):
            raise ValueError(
                f"{optimizer}: expected x and y of one shape [K]. "
                f"Received: x.shape={np.shape(x)}, y.shape={np.shape(y)}"
            )
    return align_runs(optimizer, [(x, np.asarray(y)[None]) for x, y in pairs])
