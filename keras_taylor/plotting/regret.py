"""Figs. 3–4: regret per layer, per neuron and per optimizer, loss against the Taylor optimum,
and the fitted growth of regret.

Regret is not bounded below by zero, so regret axes are linear or symmetric-log, never
logarithmic: a log axis would hide exactly the curves (negative or zero regret) that say
the most about an optimizer.
"""

from collections.abc import Mapping, Sequence

import matplotlib.artist
import matplotlib.axes
import numpy as np

from keras_taylor.analysis import GrowthFit, NeuronRegretBand, RegretCurve
from keras_taylor.plotting._shared import align_runs, finish, mean_and_band, require_nonempty
from keras_taylor.plotting.colors import optimizer_color

RegretEntry = RegretCurve | NeuronRegretBand
# One run, or several seeds of the same optimizer on a shared grid of rounds.
RegretRuns = RegretEntry | Sequence[RegretEntry]

_REGRET_YSCALES = ("linear", "symlog")


def plot_layer_regret(
    ax: matplotlib.axes.Axes,
    curves: Mapping[str, RegretCurve],
    *,
    xscale: str = "log",
    yscale: str = "linear",
    title: str | None = None,
) -> list[matplotlib.artist.Artist]:
    """Fig. 3a: normalized regret Regret(N)/√N of each layer against N.

    Theorem 2 bounds Regret(N) by O(√N), so a bounded curve here is the theorem's
    prediction; a dotted line marks zero because regret may be negative.

    Args:
        ax: Axes to draw on.
        curves: Legend label (usually the layer's name) → its `RegretCurve`.
        xscale: Scale of the N axis.
        yscale: "linear" or "symlog".
        title: Optional title.

    Returns:
        One line per curve, in the mapping's order.

    Raises:
        ValueError: If `curves` is empty or `yscale` could hide negative regret.
    """
    require_nonempty(curves, "curves")
    lines = []
    for label, curve in curves.items():
        (line,) = ax.plot(curve.rounds, curve.normalized_regret, label=label)
        lines.append(line)
    _zero_line(ax)
    _set_regret_yscale(ax, yscale, [curve.normalized_regret for curve in curves.values()])
    ax.set_xscale(xscale)
    finish(ax, "round N", "Regret(N) / √N", title)
    return lines


def plot_neuron_regret(
    ax: matplotlib.axes.Axes,
    band: NeuronRegretBand,
    *,
    color: str | None = None,
    label: str | None = None,
    show_neurons: bool = False,
    xscale: str = "log",
    yscale: str = "linear",
    title: str | None = None,
) -> list[matplotlib.artist.Artist]:
    """Fig. 3b: mean ± standard deviation over neurons of Regret(N)/√N in one layer.

    Args:
        ax: Axes to draw on.
        band: The neurons' regret.
        color: Color of the mean and band (the Axes' next cycle color if None).
        label: Legend label of the mean (default names the layer and neuron count).
        show_neurons: Also draw each neuron's curve, thin and unlabeled.
        xscale: Scale of the N axis.
        yscale: "linear" or "symlog".
        title: Optional title.

    Returns:
        The mean line, the band, then the per-neuron lines if drawn.

    Raises:
        ValueError: If `yscale` could hide negative regret.
    """
    if label is None:
        label = f"{band.layer}: mean ± std over {len(band.neurons)} neurons"
    artists = mean_and_band(ax, band.rounds, band.normalized_regret, color=color, label=label)
    if show_neurons:
        neuron_color = artists[0].get_color()
        for neuron_regret in band.normalized_regret:
            artists.extend(ax.plot(band.rounds, neuron_regret, color=neuron_color, linewidth=0.5, alpha=0.5))
    _zero_line(ax)
    _set_regret_yscale(ax, yscale, [band.normalized_regret])
    ax.set_xscale(xscale)
    finish(ax, "round N", "Regret(N) / √N", title)
    return artists


def plot_loss_vs_taylor_optimum(
    ax: matplotlib.axes.Axes,
    curve: RegretCurve | NeuronRegretBand,
    *,
    color: str | None = None,
    label: str | None = None,
    xscale: str = "log",
    title: str | None = None,
) -> list[matplotlib.artist.Artist]:
    """Fig. 3c: running average training loss (solid) against the Taylor optimum (dashed).

    The gap between the two lines is Regret(N)/N (Theorem 2).

    Args:
        ax: Axes to draw on.
        curve: A `RegretCurve` (one Taylor optimum) or a `NeuronRegretBand` (the neurons'
            optima, drawn as mean ± standard deviation).
        color: Color of both lines (the Axes' next cycle color if None).
        label: Prefix of the legend labels (default: the curve's layer, or "network").
        xscale: Scale of the N axis.
        title: Optional title.

    Returns:
        The loss line, the Taylor optimum's line, and its band for a `NeuronRegretBand`.
    """
    if label is None:
        label = curve.layer if curve.layer is not None else "network"
    (loss_line,) = ax.plot(curve.rounds, curve.average_loss, color=color, label=f"{label}: average loss")
    optimum_rows = np.atleast_2d(curve.taylor_optimum)
    optimum_artists = mean_and_band(
        ax,
        curve.rounds,
        optimum_rows,
        color=loss_line.get_color(),
        label=f"{label}: Taylor optimum",
        linestyle="--",
    )
    ax.set_xscale(xscale)
    finish(ax, "round N", "average loss", title)
    return [loss_line, *optimum_artists]


def plot_optimizer_regret(
    ax: matplotlib.axes.Axes,
    curves_by_optimizer: Mapping[str, RegretRuns],
    *,
    xscale: str = "log",
    yscale: str = "linear",
    title: str | None = None,
) -> list[matplotlib.artist.Artist]:
    """Fig. 4a/b: Regret(N)/√N per optimizer, in each optimizer's fixed color.

    Each optimizer's entry is reduced to rows of Regret(N)/√N: a `RegretCurve`
    contributes one row, a `NeuronRegretBand` one row per neuron, and a sequence
    (several seeds) the rows of all its members. The line is the mean of the rows and,
    when there is more than one row, the band is mean ± standard deviation over them
    (over neurons and seeds together).

    Args:
        ax: Axes to draw on.
        curves_by_optimizer: Optimizer name → a curve, a band, or a sequence of them
            (seeds; runs of different lengths are averaged at each N over those that reach it).
        xscale: Scale of the N axis.
        yscale: "linear" or "symlog".
        title: Optional title.

    Returns:
        Per optimizer, in the mapping's order: its mean line, then its band if drawn.

    Raises:
        ValueError: If the mapping or an entry is empty, `yscale` could hide negative regret, or
            runs of different grids have one that is not strictly increasing (`align_runs`).
    """
    require_nonempty(curves_by_optimizer, "curves_by_optimizer")
    artists, all_rows = [], []
    for optimizer, runs in curves_by_optimizer.items():
        rounds, rows = _regret_rows(optimizer, runs, lambda entry: np.atleast_2d(entry.normalized_regret))
        artists += mean_and_band(ax, rounds, rows, color=optimizer_color(optimizer), label=optimizer)
        all_rows.append(rows)
    _zero_line(ax)
    _set_regret_yscale(ax, yscale, all_rows)
    ax.set_xscale(xscale)
    finish(ax, "round N", "Regret(N) / √N", title)
    return artists


def plot_optimizer_loss_gap(
    ax: matplotlib.axes.Axes,
    curves_by_optimizer: Mapping[str, RegretRuns],
    *,
    xscale: str = "log",
    title: str | None = None,
) -> list[matplotlib.artist.Artist]:
    """Fig. 4c: average incurred loss (solid) and Taylor optimum (dashed) per optimizer.

    Both lines of an optimizer share its color. Rows are pooled as in
    `plot_optimizer_regret`: each run contributes one row of average loss; a curve
    contributes one Taylor-optimum row and a band one per neuron. A band of mean ±
    standard deviation is drawn around any line with more than one row.

    Args:
        ax: Axes to draw on.
        curves_by_optimizer: Optimizer name → a curve, a band, or a sequence of them
            (seeds; runs of different lengths are averaged at each N over those that reach it).
        xscale: Scale of the N axis.
        title: Optional title.

    Returns:
        Per optimizer: the loss line (and band), then the optimum line (and band).

    Raises:
        ValueError: If the mapping or an entry is empty, or runs of different grids have one
            that is not strictly increasing (`align_runs`).
    """
    require_nonempty(curves_by_optimizer, "curves_by_optimizer")
    artists = []
    for optimizer, runs in curves_by_optimizer.items():
        color = optimizer_color(optimizer)
        rounds, loss_rows = _regret_rows(optimizer, runs, lambda entry: np.atleast_2d(entry.average_loss))
        _, optimum_rows = _regret_rows(optimizer, runs, lambda entry: np.atleast_2d(entry.taylor_optimum))
        artists += mean_and_band(ax, rounds, loss_rows, color=color, label=f"{optimizer}: average loss")
        artists += mean_and_band(
            ax, rounds, optimum_rows, color=color, label=f"{optimizer}: Taylor optimum", linestyle="--"
        )
    ax.set_xscale(xscale)
    finish(ax, "round N", "average loss", title)
    return artists


def plot_growth_fit(
    ax: matplotlib.axes.Axes,
    curve: RegretCurve,
    fit: GrowthFit,
    *,
    color: str = "tab:blue",
    label: str = "Regret(N)",
    xscale: str = "log",
    yscale: str = "linear",
    title: str | None = None,
) -> list[matplotlib.artist.Artist]:
    """Regret(N) with its fitted growth coefficient·N^exponent over the fit's rounds.

    The fit is drawn as `keras_taylor.analysis.fit_growth` made it (`fit.coefficient`,
    `fit.exponent`); nothing is refitted here. When `fit.status != "ok"` no line is
    drawn and a note on the Axes says why.

    Args:
        ax: Axes to draw on.
        curve: The regret that was fitted.
        fit: The growth fit of `curve.regret`.
        color: Color of the regret line (the fit is drawn in black, dashed).
        label: Legend label of the regret line.
        xscale: Scale of the N axis.
        yscale: "linear" or "symlog".
        title: Optional title.

    Returns:
        The regret line, then the fit line or the note.

    Raises:
        ValueError: If an "ok" fit has no finite coefficient, or is not a fit of `curve`
            (it used rounds absent from the curve, or where the curve's regret does not
            have the fit's sign), or `yscale` could hide negative regret.
    """
    if fit.status == "ok":
        _check_fit_of_curve(curve, fit)
    (regret_line,) = ax.plot(curve.rounds, curve.regret, color=color, label=label)
    artists: list[matplotlib.artist.Artist] = [regret_line]
    if fit.status == "ok":
        rounds_used = np.asarray(fit.rounds_used, dtype=np.float64)
        fitted = fit.coefficient * rounds_used**fit.exponent
        low, high = fit.interval
        fit_label = (
            f"fit ∝ N^{fit.exponent:.2f}, {fit.confidence:.0%} CI [{low:.2f}, {high:.2f}]"
        )
        artists += ax.plot(rounds_used, fitted, color="black", linestyle="--", label=fit_label)
    else:
        artists.append(
            ax.text(0.03, 0.95, f"no growth fit: {fit.status}", transform=ax.transAxes, va="top", ha="left")
        )
    _zero_line(ax)
    _set_regret_yscale(ax, yscale, [curve.regret])
    ax.set_xscale(xscale)
    finish(ax, "round N", "Regret(N)", title)
    return artists


def _zero_line(ax: matplotlib.axes.Axes) -> None:
    ax.axhline(0.0, color="0.5", linestyle=":", linewidth=0.8, label="_zero")


def _set_regret_yscale(ax: matplotlib.axes.Axes, yscale: str, values: Sequence[np.ndarray]) -> None:
    if yscale not in _REGRET_YSCALES:
        raise ValueError(
            f"Expected yscale in {_REGRET_YSCALES}: regret can be zero or negative, and a log axis "
            f"would drop those values. Received: yscale={yscale!r}"
        )
    if yscale == "linear":
        ax.set_yscale("linear")
        return
    largest = max(float(np.max(np.abs(array))) for array in values)
    # Linear within 1% of the largest magnitude, so that curves crossing zero stay readable.
    ax.set_yscale("symlog", linthresh=0.01 * largest if largest > 0 else 1.0)


def _regret_rows(optimizer: str, runs: RegretRuns, rows_of) -> tuple[np.ndarray, np.ndarray]:
    """The rounds `[K]` and the stacked `rows_of(entry)` `[R, K]` of one optimizer's runs (runs of
    different lengths on the union of their grids, see `align_runs`)."""
    entries = [runs] if isinstance(runs, (RegretCurve, NeuronRegretBand)) else list(runs)
    return align_runs(optimizer, [(entry.rounds, rows_of(entry)) for entry in entries])


def _check_fit_of_curve(curve: RegretCurve, fit: GrowthFit) -> None:
    """Raises ValueError unless the "ok" `fit` can be drawn as a fit of `curve`."""
    if not np.isfinite(fit.coefficient):
        raise ValueError(
            "An 'ok' growth fit needs a finite coefficient (a fit read from an analysis.json written "
            "before coefficients were stored has none: pass its curve to `report.fit_from_json`). "
            f"Received: coefficient={fit.coefficient}"
        )
    on_curve = np.isin(curve.rounds, fit.rounds_used)
    if np.count_nonzero(on_curve) != len(np.unique(fit.rounds_used)):
        raise ValueError("The fit used rounds that are not on the curve's grid: is it the fit of this curve?")
    if not np.all(np.sign(curve.regret[on_curve]) == fit.sign):
        raise ValueError(
            f"An 'ok' growth fit of sign {fit.sign} had regret of that sign on every round it used; this "
            "curve's regret has not: is it the fit of this curve?"
        )
