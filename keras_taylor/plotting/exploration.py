"""Fig. 5: exploration of activation configurations (paper, Sec. 3.3)."""

import dataclasses
from collections.abc import Mapping

import matplotlib.artist
import matplotlib.axes
import numpy as np

from keras_taylor.exploration import finite_floor
from keras_taylor.plotting._shared import SeriesRuns, finish, plot_series_by_optimizer, require_nonempty
from keras_taylor.plotting.colors import optimizer_color


def plot_min_hamming(
    ax: matplotlib.axes.Axes,
    distances_by_optimizer: Mapping[str, SeriesRuns],
    *,
    xlabel: str = "round",
    title: str | None = None,
) -> list[matplotlib.artist.Artist]:
    """Fig. 5a: normalized Hamming distance from each new activation configuration to the
    nearest one visited before, per optimizer (larger means more exploration).

    Args:
        ax: Axes to draw on.
        distances_by_optimizer: Optimizer name → `(x [N], normalized distance [N])`, or a
            list of such tuples (seeds), drawn as mean ± standard deviation (seeds of
            different lengths: over those that reach each x).
        xlabel: Label of the x axis (rounds or epochs).
        title: Optional title.

    Returns:
        Per optimizer: its line, then its band if drawn.

    Raises:
        ValueError: If the mapping or an entry is empty, arrays disagree in shape, or runs of
            different lengths have an x that is not strictly increasing (`align_runs`).
    """
    return plot_series_by_optimizer(
        ax, distances_by_optimizer, xlabel, "min. normalized Hamming distance", title
    )


def plot_switches(
    ax: matplotlib.axes.Axes,
    switches_by_optimizer: Mapping[str, np.ndarray],
    *,
    title: str | None = None,
) -> list[matplotlib.artist.Artist]:
    """Fig. 5b: per data point, the proportion of rectifiers that switched, data points sorted.

    Args:
        ax: Axes to draw on.
        switches_by_optimizer: Optimizer name → `[D]` proportions in [0, 1], sorted (either
            direction); point d is drawn at x = d.
        title: Optional title.

    Returns:
        One line per optimizer.

    Raises:
        ValueError: If an entry is not 1-D, not sorted, or leaves [0, 1].
    """
    require_nonempty(switches_by_optimizer, "switches_by_optimizer")
    lines = []
    for optimizer, proportions in switches_by_optimizer.items():
        proportions = np.asarray(proportions, dtype=np.float64)
        if not np.all((proportions >= 0) & (proportions <= 1)):
            raise ValueError(f"{optimizer}: expected switch proportions in [0, 1] (NaN is not).")
        proportions = _sorted_1d(optimizer, proportions)
        lines += ax.plot(
            np.arange(proportions.size), proportions, color=optimizer_color(optimizer), label=optimizer
        )
    finish(ax, "data points (sorted)", "proportion of switches", title)
    return lines


@dataclasses.dataclass(frozen=True)
class SortedSample:
    """Sorted values of `size` entries known at some of their ranks: what a run record keeps of
    its units' log-volumes (their quantiles) where the sorted list itself is too long to keep.

    Attributes:
        ranks: `[K]` ranks in the ascending order, non-decreasing, in [0, size).
        values: `[K]` the values at those ranks, ascending (−∞ allowed).
        size: How many entries there are.
        num_infinite: How many of them are −∞ (ranks 0 … num_infinite − 1).
    """

    ranks: np.ndarray
    values: np.ndarray
    size: int
    num_infinite: int


def plot_log_volume(
    ax: matplotlib.axes.Axes,
    log_volumes_by_optimizer: Mapping[str, "np.ndarray | SortedSample"],
    floor: float | None = None,
    *,
    xlabel: str = "index (sorted)",
    title: str | None = None,
) -> list[matplotlib.artist.Artist]:
    """Fig. 5c: sorted log volumes per optimizer, with −∞ entries drawn at a floor.

    A log volume of −∞ (an empty or degenerate region) has no place on a linear axis,
    but dropping it would flatter the optimizer, so each −∞ entry is drawn as a
    downward triangle at `floor` in the optimizer's color, and the legend says how many
    of how many entries were −∞.

    Args:
        ax: Axes to draw on.
        log_volumes_by_optimizer: Optimizer name → `[M]` log volumes sorted (either
            direction, −∞ counting as the smallest), entry m drawn at x = m; or a
            `SortedSample` of M entries, each known value drawn at x = its rank (the line
            through them; the −∞ markers at the known ranks, the legend counting all M).
        floor: Height of the −∞ markers; must lie below every finite value. Default:
            `keras_taylor.exploration.finite_floor` of all the entries together (a tenth
            of the finite values' range, at least 1, below the smallest; 0 if none is finite).
        xlabel: Label of the x axis.
        title: Optional title.

    Returns:
        Per optimizer: the line through its finite values, then its −∞ markers if any.

    Raises:
        ValueError: If an entry is not sorted or holds NaN or +∞, or `floor` is not below
            every finite value, or a `SortedSample`'s ranks, size or −∞ count disagree.
    """
    require_nonempty(log_volumes_by_optimizer, "log_volumes_by_optimizer")
    samples = {name: _log_volume_sample(name, values) for name, values in log_volumes_by_optimizer.items()}
    floor = _log_volume_floor(np.concatenate([sample.values for sample in samples.values()]), floor)

    artists: list[matplotlib.artist.Artist] = []
    any_infinite = False
    for name, sample in samples.items():
        color = optimizer_color(name)
        finite = np.isfinite(sample.values)
        artists += ax.plot(sample.ranks[finite], sample.values[finite], color=color, label=name)
        if sample.num_infinite:
            any_infinite = True
            artists.append(
                ax.scatter(
                    sample.ranks[~finite],
                    np.full(int(np.sum(~finite)), floor),
                    color=color,
                    marker="v",
                    label=f"{name}: {sample.num_infinite} of {sample.size} −∞",
                )
            )
    if any_infinite:
        ax.axhline(floor, color="0.5", linestyle=":", linewidth=0.8, label="_floor")
    finish(ax, xlabel, "log volume" + (f" (−∞ drawn at {floor:.3g})" if any_infinite else ""), title)
    if ax.get_legend() is not None:  # the −∞ markers sit low, the curves rise to the right: legend upper left
        ax.legend(loc="upper left", fontsize="small")
    return artists


def _log_volume_sample(name: str, values) -> SortedSample:
    """An entry of `plot_log_volume` as a checked `SortedSample` (an array: every rank known)."""
    sample = values if isinstance(values, SortedSample) else None
    values = np.asarray(sample.values if sample else values, dtype=np.float64)
    if np.any(np.isnan(values)) or np.any(values == np.inf):
        raise ValueError(f"{name}: expected finite log volumes or −∞; found NaN or +∞.")
    values = _sorted_1d(name, values)
    if sample is None:
        return SortedSample(np.arange(values.size), values, values.size, int(np.sum(~np.isfinite(values))))
    ranks = np.asarray(sample.ranks)
    counts = (sample.size, sample.num_infinite)
    if not all(isinstance(count, (int, np.integer)) for count in counts) or not 0 <= sample.num_infinite <= sample.size:
        raise ValueError(f"{name}: expected integers 0 ≤ num_infinite ≤ size. Received: size={sample.size!r}, "
                         f"num_infinite={sample.num_infinite!r}")
    if (ranks.shape != values.shape or not np.issubdtype(ranks.dtype, np.integer) or np.any(np.diff(ranks) < 0)
            or ranks[0] < 0 or ranks[-1] >= sample.size):
        raise ValueError(f"{name}: expected {values.size} non-decreasing integer ranks in [0, {sample.size}). "
                         f"Received: {ranks.dtype} ranks of shape {ranks.shape}")
    same_rank = ranks[1:] == ranks[:-1]
    if values[0] > values[-1] or np.any(np.isfinite(values) != (ranks >= sample.num_infinite)) or np.any(
            values[1:][same_rank] != values[:-1][same_rank]):
        raise ValueError(f"{name}: expected ascending values, one value per rank, −∞ exactly at the ranks below "
                         f"num_infinite={sample.num_infinite} of {sample.size}.")
    return SortedSample(ranks, values, int(sample.size), int(sample.num_infinite))


def _sorted_1d(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name}: expected a non-empty [D] array. Received: shape={values.shape}")
    # Comparisons rather than np.diff, which turns −∞ − (−∞) into NaN.
    ascending = np.all(values[1:] >= values[:-1])
    descending = np.all(values[1:] <= values[:-1])
    if not (ascending or descending):
        raise ValueError(f"{name}: expected values sorted in either direction (the x axis is the rank).")
    return values


def _log_volume_floor(log_volumes: np.ndarray, floor: float | None) -> float:
    """The height of the −∞ markers for `log_volumes` `[M]`: the analysis' floor, or `floor` checked."""
    if floor is None:
        return finite_floor(log_volumes).floor
    finite_values = log_volumes[np.isfinite(log_volumes)]
    if finite_values.size == 0:
        return float(floor)
    lowest = float(finite_values.min())
    if not floor < lowest:
        raise ValueError(
            f"Expected floor below every finite log volume ({lowest:.6g}), so that −∞ markers "
            f"cannot be mistaken for values. Received: floor={floor}"
        )
    return float(floor)


def plot_exploration_vs_loss(
    ax: matplotlib.axes.Axes,
    runs_by_optimizer: Mapping[str, tuple],
    xlabel: str,
    *,
    title: str | None = None,
) -> list[matplotlib.artist.Artist]:
    """One exploration metric against the final training loss, one point per run (not in the paper).

    Args:
        ax: Axes to draw on.
        runs_by_optimizer: Optimizer (or optimizer and rate) → `(metric values [R], final losses [R])`.
        xlabel: The metric's name.
        title: Optional title (e.g. the rank correlation).

    Returns:
        One scatter per optimizer.

    Raises:
        ValueError: If the mapping is empty or an entry's arrays differ in shape.
    """
    require_nonempty(runs_by_optimizer, "runs_by_optimizer")
    artists = []
    for optimizer, (values, losses) in runs_by_optimizer.items():
        values, losses = np.asarray(values, np.float64), np.asarray(losses, np.float64)
        if values.shape != losses.shape or values.ndim != 1:
            raise ValueError(f"{optimizer}: expected values and losses of one shape [R]. "
                             f"Received: {values.shape} and {losses.shape}")
        artists.append(ax.scatter(values, losses, color=optimizer_color(optimizer), label=optimizer, s=18))
    finish(ax, xlabel, "final-epoch training loss", title)
    return artists
