"""Inputs and read-back assertions shared by the tests of `keras_taylor.plotting`'s modules.

Inputs are fresh random curves per test. Figures are built with
`matplotlib.figure.Figure` directly (no pyplot), so no test leaves global state behind;
the Agg backend is selected for any code that asks.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors  # noqa: E402
import matplotlib.figure  # noqa: E402
import numpy as np  # noqa: E402

from conftest import assert_close  # noqa: E402
from keras_taylor.analysis import NeuronRegretBand, RegretCurve, SolverDiagnostics  # noqa: E402

# ---------------------------------------------------------------------------
# Inputs.


def random_rounds(rng, points: int = 12) -> np.ndarray:
    """`[K]` an increasing grid of N starting at 1, geometrically spaced as a run's would be."""
    top = int(rng.integers(500, 5000))
    return np.unique(np.geomspace(1, top, points).astype(np.int64))


def exact_diagnostics(points: int) -> SolverDiagnostics:
    """Diagnostics of `points` grid points solved exactly."""
    return SolverDiagnostics(
        method="eigh",
        converged=np.ones(points, bool),
        gradient_norm=np.zeros(points),
        iterations=np.zeros(points, np.int64),
        rank=np.full(points, 3),
        condition=np.ones(points),
        ill_conditioned=np.zeros(points, bool),
    )


def random_curve(rng, rounds, cumulative_loss=None, layer="dense", neuron=None) -> RegretCurve:
    """A curve whose regret has both signs (a learner can beat the hindsight comparator)."""
    if cumulative_loss is None:
        cumulative_loss = rounds * rng.uniform(0.2, 1.0, rounds.size)
    regret = rng.normal(size=rounds.size) * np.sqrt(rounds)
    regret[0] = -abs(regret[0]) - 0.5  # at least one negative value, always
    return RegretCurve(
        scale="layer" if neuron is None else "neuron",
        layer=layer,
        neuron=neuron,
        rounds=rounds,
        cumulative_loss=cumulative_loss,
        cumulative_taylor_optimum=cumulative_loss - regret,
        regret=regret,
        diagnostics=exact_diagnostics(rounds.size),
    )


def random_band(rng, rounds, units: int = 5, layer="dense") -> NeuronRegretBand:
    """`units` random neuron curves of one layer, sharing the learner's loss."""
    cumulative_loss = rounds * rng.uniform(0.2, 1.0, rounds.size)
    curves = tuple(random_curve(rng, rounds, cumulative_loss, layer, neuron) for neuron in range(units))
    return NeuronRegretBand(
        layer=layer,
        neurons=np.arange(units),
        rounds=rounds,
        cumulative_loss=cumulative_loss,
        cumulative_taylor_optimum=np.stack([curve.cumulative_taylor_optimum for curve in curves]),
        regret=np.stack([curve.regret for curve in curves]),
        curves=curves,
    )


# ---------------------------------------------------------------------------
# Reading back what was drawn.


def new_axes(count: int = 1):
    """One Axes, or a list of `count` Axes side by side, of a fresh figure."""
    figure = matplotlib.figure.Figure()
    axes = [figure.add_subplot(1, count, index + 1) for index in range(count)]
    return axes if count > 1 else axes[0]


def labeled_lines(ax) -> list:
    """Lines that reach the legend (reference lines such as y = 0 are labeled `_...`)."""
    return [line for line in ax.lines if not line.get_label().startswith("_")]


def legend_texts(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def same_color(first, second) -> bool:
    return matplotlib.colors.to_rgba(first) == matplotlib.colors.to_rgba(second)


def colors_by_label(ax) -> dict:
    return {line.get_label(): matplotlib.colors.to_rgba(line.get_color()) for line in labeled_lines(ax)}


def assert_line(line, x, y) -> None:
    np.testing.assert_array_equal(line.get_xdata(), x)
    assert_close(line.get_ydata(), y, "float64")


def assert_band(collection, x, lower, upper) -> None:
    """The band's polygons run through (x_k, lower_k) and (x_k, upper_k) and stay between them."""
    vertices = np.concatenate([path.vertices for path in collection.get_paths()])
    for edge in (lower, upper):
        for x_k, y_k in zip(x, edge):
            hits = np.isclose(vertices[:, 0], x_k) & np.isclose(vertices[:, 1], y_k, rtol=1e-9, atol=1e-12)
            assert hits.any(), f"no band vertex at ({x_k}, {y_k})"
    assert vertices[:, 1].min() >= lower.min() - 1e-9 and vertices[:, 1].max() <= upper.max() + 1e-9


def assert_mean_and_band(line, shade, x, rows) -> None:
    """`line` is the mean of `rows` `[R, K]` and `shade` spans mean ± std over the R rows."""
    mean, spread = rows.mean(axis=0), rows.std(axis=0)
    assert_line(line, x, mean)
    assert_band(shade, x, mean - spread, mean + spread)


def reaching_mean_and_std(runs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`(x, mean, std, count)` of runs `(x_i, y_i)` of different lengths, point by point: at each x
    of any run, each run whose span holds it contributes y_i on the segment around it, interpolated
    by hand, and the others nothing."""
    union = sorted({float(value) for x, _ in runs for value in x})
    means, spreads, counts = [], [], []
    for point in union:
        values = []
        for x, y in runs:
            for k in range(len(x)):
                if x[k] == point:
                    values.append(y[k])
                    break
                if k + 1 < len(x) and x[k] < point < x[k + 1]:
                    values.append(y[k] + (y[k + 1] - y[k]) * (point - x[k]) / (x[k + 1] - x[k]))
                    break
        means.append(np.mean(values))
        spreads.append(np.std(values))
        counts.append(len(values))
    return np.array(union), np.array(means), np.array(spreads), np.array(counts)


def assert_mean_and_band_of_runs(line, shade, runs) -> None:
    """`line` is the mean over the runs reaching each x, `shade` mean ± std where two or more do."""
    x, mean, spread, count = reaching_mean_and_std(runs)
    assert_line(line, x, mean)
    shared = count > 1
    assert_band(shade, x[shared], (mean - spread)[shared], (mean + spread)[shared])
    # One polygon per stretch of x where two or more runs are present; none bridges a gap between them.
    stretches, start = [], None
    for k in range(x.size):
        if shared[k] and start is None:
            start = k
        if start is not None and (k + 1 == x.size or not shared[k + 1]):
            stretches.append((x[start], x[k]))
            start = None
    spans = sorted((path.vertices[:, 0].min(), path.vertices[:, 0].max()) for path in shade.get_paths())
    assert np.allclose(spans, stretches), f"band spans {spans}, runs shared on {stretches}"
