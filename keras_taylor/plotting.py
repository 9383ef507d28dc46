"""Figures of the paper, drawn on Axes the caller owns (matplotlib and NumPy only).

Each `plot_*` function draws on the `matplotlib.axes.Axes` it is given and returns
the artists it added; none creates a figure, touches pyplot's global state or picks a
backend, so the caller decides layout, backend and file names (`save_figure` writes
the files). The figures follow Balduzzi, McWilliams and Butler-Yeoman, "Neural Taylor
Approximations: Convergence and Exploration in Rectifier Networks" (ICML 2017):

- Fig. 1: a rectifier net's piecewise-linear output and its shattered gradient
  (`relu_net_1d`, `plot_piecewise_linear`).
- Fig. 3: normalized regret Regret(N)/√N per layer and per neuron, and the incurred
  loss against the Taylor optimum (`plot_layer_regret`, `plot_neuron_regret`,
  `plot_loss_vs_taylor_optimum`, with `plot_growth_fit` for the fitted growth rate).
- Fig. 4: the same per optimizer (`plot_optimizer_regret`, `plot_optimizer_loss_gap`).
- Fig. 5: exploration of activation configurations (`plot_min_hamming`,
  `plot_switches`, `plot_log_volume`).
- Fig. 6: training loss per optimizer (`plot_training_loss`).

Regret is not bounded below by zero (see `keras_taylor.analysis`), so regret axes are
linear or symmetric-log, never logarithmic: a log axis would hide exactly the curves
(negative or zero regret) that say the most about an optimizer.
"""

import os
import pathlib
import types
import zlib
from collections.abc import Mapping, Sequence

import matplotlib.artist
import matplotlib.axes
import matplotlib.figure
import matplotlib.lines
import numpy as np

from keras_taylor.analysis import GrowthFit, NeuronRegretBand, RegretCurve

# Fixed so that an optimizer has the same color in every figure of a paper or report.
OPTIMIZER_COLORS: Mapping[str, str] = types.MappingProxyType(
    {
        "sgd": "tab:blue",
        "rmsprop": "tab:orange",
        "adam": "tab:green",
        "momentum": "tab:red",
        "signsgd": "tab:purple",
    }
)
# For names outside OPTIMIZER_COLORS; none of these is one of its colors.
_FALLBACK_COLORS = ("tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan", "black")

_REGRET_YSCALES = ("linear", "symlog")
_BAND_ALPHA = 0.25

RegretEntry = RegretCurve | NeuronRegretBand
# One run, or several seeds of the same optimizer on a shared grid of rounds.
RegretRuns = RegretEntry | Sequence[RegretEntry]
# One run `(x [K], y [K])` as a tuple, or a list of such tuples (seeds) sharing x.
SeriesRuns = tuple[np.ndarray, np.ndarray] | list[tuple[np.ndarray, np.ndarray]]


def optimizer_color(name: str) -> str:
    """The color of an optimizer in every figure.

    Args:
        name: Optimizer name, matched case-insensitively against `OPTIMIZER_COLORS`.

    Returns:
        A matplotlib color. Names outside `OPTIMIZER_COLORS` get a color from a fixed
        cycle chosen by a CRC32 of the lower-cased name, so that the choice is the same
        in every call and every process (Python's `hash` of a string is salted per
        process). Two unknown names can share a color.
    """
    key = name.strip().lower()
    if key in OPTIMIZER_COLORS:
        return OPTIMIZER_COLORS[key]
    return _FALLBACK_COLORS[zlib.crc32(key.encode()) % len(_FALLBACK_COLORS)]


def relu_net_1d(
    kernels: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A dense rectifier net with scalar input and output, and its exact derivative.

    The net is f(x) = W_L^T ρ(… ρ(W_1^T x + b_1) …) + b_L with ρ = ReLU on every hidden
    layer and a linear output. Its derivative is the product of the kernels with each
    hidden layer's activation mask in between, df/dx = W_1 D_1(x) W_2 … D_{L−1}(x) W_L
    (the paper's Fig. 1: f is piecewise linear, so df/dx is piecewise constant and
    "shattered"). A unit whose preactivation is exactly 0 counts as off, as in
    TensorFlow's ReLU gradient.

    Args:
        kernels: L arrays `[in_l, out_l]` (Keras's Dense layout, as in
            `model.get_weights()[0::2]`), with in_1 = 1, out_L = 1 and out_l = in_{l+1}.
        biases: L arrays `[out_l]`.
        x: `[K]` inputs.

    Returns:
        `(f, df_dx)`, both `[K]` float64.

    Raises:
        ValueError: If the shapes do not chain into a scalar-to-scalar net, or `x` is not 1-D.
    """
    if len(kernels) != len(biases) or not kernels:
        raise ValueError(
            "Expected as many kernels as biases, at least one. "
            f"Received: {len(kernels)} kernels and {len(biases)} biases"
        )
    inputs = np.asarray(x, dtype=np.float64)
    if inputs.ndim != 1:
        raise ValueError(f"Expected x of shape [K]. Received: x.shape={inputs.shape}")
    kernels = [np.asarray(kernel, dtype=np.float64) for kernel in kernels]
    biases = [np.asarray(bias, dtype=np.float64) for bias in biases]
    width = 1
    for index, (kernel, bias) in enumerate(zip(kernels, biases)):
        if kernel.ndim != 2 or kernel.shape[0] != width or bias.shape != (kernel.shape[1],):
            raise ValueError(
                f"Layer {index}: expected kernel [{width}, out] and bias [out]. "
                f"Received: kernel.shape={kernel.shape}, bias.shape={bias.shape}"
            )
        width = kernel.shape[1]
    if width != 1:
        raise ValueError(f"Expected a scalar output. Received: last kernel.shape={kernels[-1].shape}")

    hidden = inputs[:, None]  # [K, width_l]
    hidden_wrt_input = np.ones_like(hidden)  # [K, width_l], d hidden / dx
    for kernel, bias in zip(kernels[:-1], biases[:-1]):
        preactivation = hidden @ kernel + bias
        mask = preactivation > 0
        hidden = np.where(mask, preactivation, 0.0)
        hidden_wrt_input = (hidden_wrt_input @ kernel) * mask
    output = hidden @ kernels[-1] + biases[-1]
    output_wrt_input = hidden_wrt_input @ kernels[-1]
    return output[:, 0], output_wrt_input[:, 0]


def plot_piecewise_linear(
    ax_function: matplotlib.axes.Axes,
    ax_gradient: matplotlib.axes.Axes,
    x: np.ndarray,
    f: np.ndarray,
    gradient: np.ndarray,
    *,
    color: str = "tab:blue",
    function_title: str | None = None,
    gradient_title: str | None = None,
) -> tuple[matplotlib.lines.Line2D, matplotlib.lines.Line2D]:
    """Fig. 1: a rectifier net's output f(x) and its derivative, on two Axes.

    Args:
        ax_function: Axes for f.
        ax_gradient: Axes for df/dx.
        x: `[K]` increasing inputs.
        f: `[K]` outputs (e.g. from `relu_net_1d`).
        gradient: `[K]` derivatives.
        color: Line color, shared by both panels.
        function_title: Optional title of the function panel.
        gradient_title: Optional title of the gradient panel.

    Returns:
        The function's line and the gradient's line.

    Raises:
        ValueError: If the arrays are not `[K]` of one length, or x is not increasing.
    """
    x, f, gradient = (np.asarray(values, dtype=np.float64) for values in (x, f, gradient))
    if x.ndim != 1 or f.shape != x.shape or gradient.shape != x.shape:
        raise ValueError(
            "Expected x, f and gradient of one shape [K]. "
            f"Received: x.shape={x.shape}, f.shape={f.shape}, gradient.shape={gradient.shape}"
        )
    if np.any(np.diff(x) <= 0):
        raise ValueError("Expected increasing x: a line through unsorted inputs draws spurious segments.")
    (function_line,) = ax_function.plot(x, f, color=color, label="f(x)")
    (gradient_line,) = ax_gradient.plot(x, gradient, color=color, label="df/dx")
    _finish(ax_function, "input x", "output f(x)", function_title)
    _finish(ax_gradient, "input x", "gradient df/dx", gradient_title)
    return function_line, gradient_line


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
    _require_nonempty(curves, "curves")
    lines = []
    for label, curve in curves.items():
        (line,) = ax.plot(curve.rounds, curve.normalized_regret, label=label)
        lines.append(line)
    _zero_line(ax)
    _set_regret_yscale(ax, yscale, [curve.normalized_regret for curve in curves.values()])
    ax.set_xscale(xscale)
    _finish(ax, "round N", "Regret(N) / √N", title)
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
    artists = _mean_and_band(ax, band.rounds, band.normalized_regret, color=color, label=label)
    if show_neurons:
        neuron_color = artists[0].get_color()
        for neuron_regret in band.normalized_regret:
            artists.extend(ax.plot(band.rounds, neuron_regret, color=neuron_color, linewidth=0.5, alpha=0.5))
    _zero_line(ax)
    _set_regret_yscale(ax, yscale, [band.normalized_regret])
    ax.set_xscale(xscale)
    _finish(ax, "round N", "Regret(N) / √N", title)
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
    (loss_line,) = ax.plot(
        curve.rounds, curve.cumulative_loss / curve.rounds, color=color, label=f"{label}: average loss"
    )
    optimum_rows = np.atleast_2d(curve.cumulative_taylor_optimum / curve.rounds)
    optimum_artists = _mean_and_band(
        ax,
        curve.rounds,
        optimum_rows,
        color=loss_line.get_color(),
        label=f"{label}: Taylor optimum",
        linestyle="--",
    )
    ax.set_xscale(xscale)
    _finish(ax, "round N", "average loss", title)
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
            (seeds) on one grid of rounds.
        xscale: Scale of the N axis.
        yscale: "linear" or "symlog".
        title: Optional title.

    Returns:
        Per optimizer, in the mapping's order: its mean line, then its band if drawn.

    Raises:
        ValueError: If the mapping or an entry is empty, seeds disagree on the rounds,
            or `yscale` could hide negative regret.
    """
    _require_nonempty(curves_by_optimizer, "curves_by_optimizer")
    artists, all_rows = [], []
    for optimizer, runs in curves_by_optimizer.items():
        rounds, rows = _regret_rows(optimizer, runs, lambda entry: np.atleast_2d(entry.normalized_regret))
        artists += _mean_and_band(ax, rounds, rows, color=optimizer_color(optimizer), label=optimizer)
        all_rows.append(rows)
    _zero_line(ax)
    _set_regret_yscale(ax, yscale, all_rows)
    ax.set_xscale(xscale)
    _finish(ax, "round N", "Regret(N) / √N", title)
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
            (seeds) on one grid of rounds.
        xscale: Scale of the N axis.
        title: Optional title.

    Returns:
        Per optimizer: the loss line (and band), then the optimum line (and band).

    Raises:
        ValueError: If the mapping or an entry is empty, or seeds disagree on the rounds.
    """
    _require_nonempty(curves_by_optimizer, "curves_by_optimizer")
    artists = []
    for optimizer, runs in curves_by_optimizer.items():
        color = optimizer_color(optimizer)
        rounds, loss_rows = _regret_rows(
            optimizer, runs, lambda entry: np.atleast_2d(entry.cumulative_loss / entry.rounds)
        )
        _, optimum_rows = _regret_rows(
            optimizer, runs, lambda entry: np.atleast_2d(entry.cumulative_taylor_optimum / entry.rounds)
        )
        artists += _mean_and_band(ax, rounds, loss_rows, color=color, label=f"{optimizer}: average loss")
        artists += _mean_and_band(
            ax, rounds, optimum_rows, color=color, label=f"{optimizer}: Taylor optimum", linestyle="--"
        )
    ax.set_xscale(xscale)
    _finish(ax, "round N", "average loss", title)
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
    """Regret(N) with its fitted growth c·N^exponent over the fit's rounds.

    `GrowthFit` carries the exponent but not the constant, so c is refitted here by
    least squares in log space over `fit.rounds_used` with the exponent held fixed:
    log c = mean(log|Regret(N)| − exponent·log N), signed by `fit.sign`. When
    `fit.status != "ok"` no line is drawn and a note on the Axes says why.

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
        ValueError: If an "ok" fit used rounds absent from the curve or where its regret
            is zero, or `yscale` could hide negative regret.
    """
    (regret_line,) = ax.plot(curve.rounds, curve.regret, color=color, label=label)
    artists: list[matplotlib.artist.Artist] = [regret_line]
    if fit.status == "ok":
        rounds_used = np.asarray(fit.rounds_used, dtype=np.float64)
        fitted = _growth_coefficient(curve, fit) * rounds_used**fit.exponent
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
    _finish(ax, "round N", "Regret(N)", title)
    return artists


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
            list of such tuples (seeds) sharing x, drawn as mean ± standard deviation.
        xlabel: Label of the x axis (rounds or epochs).
        title: Optional title.

    Returns:
        Per optimizer: its line, then its band if drawn.

    Raises:
        ValueError: If the mapping or an entry is empty, or arrays disagree in shape.
    """
    return _plot_series_by_optimizer(
        ax, distances_by_optimizer, xlabel, "min. normalized Hamming distance", title
    )


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
            of such tuples (seeds) sharing x, drawn as mean ± standard deviation.
        xlabel: Label of the x axis (rounds or epochs).
        yscale: Scale of the loss axis ("log" is allowed: losses are positive).
        title: Optional title.

    Returns:
        Per optimizer: its line, then its band if drawn.

    Raises:
        ValueError: If the mapping or an entry is empty, or arrays disagree in shape.
    """
    artists = _plot_series_by_optimizer(ax, losses_by_optimizer, xlabel, "training loss", title)
    ax.set_yscale(yscale)
    return artists


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
    _require_nonempty(switches_by_optimizer, "switches_by_optimizer")
    lines = []
    for optimizer, proportions in switches_by_optimizer.items():
        proportions = np.asarray(proportions, dtype=np.float64)
        if not np.all((proportions >= 0) & (proportions <= 1)):
            raise ValueError(f"{optimizer}: expected switch proportions in [0, 1] (NaN is not).")
        proportions = _sorted_1d(optimizer, proportions)
        lines += ax.plot(
            np.arange(proportions.size), proportions, color=optimizer_color(optimizer), label=optimizer
        )
    _finish(ax, "data points (sorted)", "proportion of switches", title)
    return lines


def plot_log_volume(
    ax: matplotlib.axes.Axes,
    log_volumes_by_optimizer: Mapping[str, np.ndarray],
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
            direction, −∞ counting as the smallest); entry m is drawn at x = m.
        floor: Height of the −∞ markers; must lie below every finite value. Default:
            10% of the finite values' range (or 1) below the smallest finite value.
        xlabel: Label of the x axis.
        title: Optional title.

    Returns:
        Per optimizer: the line through its finite values, then its −∞ markers if any.

    Raises:
        ValueError: If an entry is not sorted or holds NaN or +∞, or `floor` is not below
            every finite value.
    """
    _require_nonempty(log_volumes_by_optimizer, "log_volumes_by_optimizer")
    volumes = {}
    for name, values in log_volumes_by_optimizer.items():
        values = np.asarray(values, dtype=np.float64)
        if np.any(np.isnan(values)) or np.any(values == np.inf):
            raise ValueError(f"{name}: expected finite log volumes or −∞; found NaN or +∞.")
        volumes[name] = _sorted_1d(name, values)
    finite_values = np.concatenate([values[np.isfinite(values)] for values in volumes.values()])
    floor = _log_volume_floor(finite_values, floor)

    artists: list[matplotlib.artist.Artist] = []
    any_infinite = False
    for name, values in volumes.items():
        color = optimizer_color(name)
        positions = np.arange(values.size)
        finite = np.isfinite(values)
        artists += ax.plot(positions[finite], values[finite], color=color, label=name)
        infinite_count = int(np.sum(~finite))
        if infinite_count:
            any_infinite = True
            artists.append(
                ax.scatter(
                    positions[~finite],
                    np.full(infinite_count, floor),
                    color=color,
                    marker="v",
                    label=f"{name}: {infinite_count} of {values.size} −∞",
                )
            )
    if any_infinite:
        ax.axhline(floor, color="0.5", linestyle=":", linewidth=0.8, label="_floor")
    _finish(ax, xlabel, "log volume" + (f" (−∞ drawn at {floor:.3g})" if any_infinite else ""), title)
    if ax.get_legend() is not None:  # the −∞ markers sit low, the curves rise to the right: legend upper left
        ax.legend(loc="upper left", fontsize="small")
    return artists


def save_figure(
    fig: matplotlib.figure.Figure,
    path_stem: str | os.PathLike,
    formats: Sequence[str] = ("png", "pdf"),
    dpi: float = 150,
) -> list[pathlib.Path]:
    """Writes `fig` once per format, as `<path_stem>.<format>`, creating parent directories.

    The figure's size is kept as set (no tight bounding box), so a PNG is exactly
    `figsize × dpi` pixels.

    Args:
        fig: The figure.
        path_stem: Path without extension; a dot in its name is kept, not replaced.
        formats: File formats matplotlib can write, e.g. "png", "pdf", "svg".
        dpi: Resolution of raster formats.

    Returns:
        The written paths, in `formats` order.

    Raises:
        ValueError: If `formats` is empty or `dpi` is not positive.
    """
    if not formats:
        raise ValueError(f"Expected at least one format. Received: formats={formats!r}")
    if not dpi > 0:
        raise ValueError(f"Expected a positive dpi. Received: dpi={dpi}")
    stem = pathlib.Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_format in formats:
        path = stem.with_name(f"{stem.name}.{file_format}")
        fig.savefig(path, format=file_format, dpi=dpi)
        paths.append(path)
    return paths


def _finish(ax: matplotlib.axes.Axes, xlabel: str, ylabel: str, title: str | None) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    # A legend of one entry repeats the axis label.
    _, labels = ax.get_legend_handles_labels()
    if len(labels) > 1:
        ax.legend()


def _require_nonempty(mapping: Mapping, name: str) -> None:
    if not mapping:
        raise ValueError(f"Expected at least one series. Received: {name}={dict(mapping)!r}")


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


def _mean_and_band(
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


def _regret_rows(optimizer: str, runs: RegretRuns, rows_of) -> tuple[np.ndarray, np.ndarray]:
    """The shared rounds `[K]` and the stacked `rows_of(entry)` `[R, K]` of one optimizer's runs."""
    entries = [runs] if isinstance(runs, (RegretCurve, NeuronRegretBand)) else list(runs)
    if not entries:
        raise ValueError(f"{optimizer}: expected at least one run. Received: an empty sequence")
    rounds = np.asarray(entries[0].rounds)
    for entry in entries[1:]:
        if not np.array_equal(entry.rounds, rounds):
            raise ValueError(f"{optimizer}: seeds must share one grid of rounds to be averaged.")
    return rounds, np.concatenate([rows_of(entry) for entry in entries], axis=0)


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


def _plot_series_by_optimizer(
    ax: matplotlib.axes.Axes,
    runs_by_optimizer: Mapping[str, SeriesRuns],
    xlabel: str,
    ylabel: str,
    title: str | None,
) -> list[matplotlib.artist.Artist]:
    _require_nonempty(runs_by_optimizer, "runs_by_optimizer")
    artists = []
    for optimizer, runs in runs_by_optimizer.items():
        x, rows = _series_rows(optimizer, runs)
        artists += _mean_and_band(ax, x, rows, color=optimizer_color(optimizer), label=optimizer)
    _finish(ax, xlabel, ylabel, title)
    return artists


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


def _log_volume_floor(finite_values: np.ndarray, floor: float | None) -> float:
    if finite_values.size == 0:
        return 0.0 if floor is None else float(floor)
    lowest = float(finite_values.min())
    if floor is None:
        span = float(finite_values.max()) - lowest
        return lowest - (0.1 * span if span > 0 else 1.0)
    if not floor < lowest:
        raise ValueError(
            f"Expected floor below every finite log volume ({lowest:.6g}), so that −∞ markers "
            f"cannot be mistaken for values. Received: floor={floor}"
        )
    return float(floor)


def _growth_coefficient(curve: RegretCurve, fit: GrowthFit) -> float:
    """c of Regret(N) ≈ c·N^exponent over `fit.rounds_used`, the exponent held fixed."""
    rounds_used = np.asarray(fit.rounds_used)
    positions = np.searchsorted(curve.rounds, rounds_used)
    positions = np.minimum(positions, len(curve.rounds) - 1)
    if not np.array_equal(np.asarray(curve.rounds)[positions], rounds_used):
        raise ValueError("The fit used rounds that are not on the curve's grid: is it the fit of this curve?")
    magnitude = np.abs(curve.regret[positions])
    if np.any(magnitude == 0):
        raise ValueError("An 'ok' growth fit cannot cover rounds where the regret is zero.")
    log_coefficient = np.mean(np.log(magnitude) - fit.exponent * np.log(rounds_used.astype(np.float64)))
    return float(fit.sign * np.exp(log_coefficient))
