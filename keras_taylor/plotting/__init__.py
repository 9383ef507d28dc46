"""Figures of the paper, drawn on Axes the caller owns (matplotlib and NumPy only).

Each `plot_*` function draws on the `matplotlib.axes.Axes` it is given and returns
the artists it added; none creates a figure, touches pyplot's global state or picks a
backend, so the caller decides layout, backend and file names (`save_figure` writes
the files). Plots draw what the analysis computed (`keras_taylor.analysis`,
`keras_taylor.exploration`): averages, Taylor optima, growth fits and the floor of −∞
log-volumes come from there, and a plot computes only what drawing needs (the mean ±
standard deviation of the rows it overlays). The figures follow Balduzzi, McWilliams and
Butler-Yeoman, "Neural Taylor Approximations: Convergence and Exploration in Rectifier
Networks" (ICML 2017), one module per group of figures:

- `colors`: each optimizer's fixed color (`OPTIMIZER_COLORS`, `optimizer_color`).
- `figure1`, Fig. 1: a rectifier net's piecewise-linear output and its shattered
  gradient (`relu_net_1d`, `plot_piecewise_linear`).
- `regret`, Figs. 3–4: normalized regret Regret(N)/√N per layer, per neuron and per
  optimizer, the incurred loss against the Taylor optimum, and the fitted growth rate
  (`plot_layer_regret`, `plot_neuron_regret`, `plot_loss_vs_taylor_optimum`,
  `plot_optimizer_regret`, `plot_optimizer_loss_gap`, `plot_growth_fit`).
- `exploration`, Fig. 5: exploration of activation configurations (`plot_min_hamming`,
  `plot_switches`, `plot_log_volume`, which also draws a `SortedSample` of quantiles), and
  (not in the paper) each run's exploration against its final loss (`plot_exploration_vs_loss`).
- `loss`, Fig. 6: training loss per optimizer (`plot_training_loss`).
- `lengths` (not in the paper): a claim's quantity on each prefix of the runs
  (`plot_metric_by_length`).
- `save`: writing a figure to files (`save_figure`).

Regret is not bounded below by zero (see `keras_taylor.analysis`), so regret axes are
linear or symmetric-log, never logarithmic: a log axis would hide exactly the curves
(negative or zero regret) that say the most about an optimizer.
"""

from keras_taylor.plotting._shared import SeriesRuns
from keras_taylor.plotting.colors import OPTIMIZER_COLORS, optimizer_color
from keras_taylor.plotting.exploration import (
    SortedSample,
    plot_exploration_vs_loss,
    plot_log_volume,
    plot_min_hamming,
    plot_switches,
)
from keras_taylor.plotting.figure1 import plot_piecewise_linear, relu_net_1d
from keras_taylor.plotting.lengths import plot_metric_by_length
from keras_taylor.plotting.loss import plot_training_loss
from keras_taylor.plotting.regret import (
    RegretEntry,
    RegretRuns,
    plot_growth_fit,
    plot_layer_regret,
    plot_loss_vs_taylor_optimum,
    plot_neuron_regret,
    plot_optimizer_loss_gap,
    plot_optimizer_regret,
)
from keras_taylor.plotting.save import save_figure

__all__ = [
    "OPTIMIZER_COLORS",
    "RegretEntry",
    "RegretRuns",
    "SeriesRuns",
    "SortedSample",
    "optimizer_color",
    "plot_exploration_vs_loss",
    "plot_growth_fit",
    "plot_layer_regret",
    "plot_log_volume",
    "plot_metric_by_length",
    "plot_loss_vs_taylor_optimum",
    "plot_min_hamming",
    "plot_neuron_regret",
    "plot_optimizer_loss_gap",
    "plot_optimizer_regret",
    "plot_piecewise_linear",
    "plot_switches",
    "plot_training_loss",
    "relu_net_1d",
    "save_figure",
]
