"""The `keras_taylor.plotting` package: its re-exports, and conventions every plot keeps."""

import ast
import importlib
import pathlib

import numpy as np
import pytest

from keras_taylor import plotting
from keras_taylor.analysis import GrowthFit

from plotting_helpers import new_axes, random_band, random_curve, random_rounds

# The modules a user may import; the shared helpers' module is private to the package.
MODULES = ("colors", "figure1", "regret", "exploration", "loss", "save")


def _top_level_public_names(module) -> set[str]:
    """Names a module defines (not imports) at top level without a leading underscore."""
    tree = ast.parse(pathlib.Path(module.__file__).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


def test_the_package_re_exports_each_public_name_of_its_modules_as_the_same_object():
    assert len(set(plotting.__all__)) == len(plotting.__all__)
    defined_in = {}
    for module_name in MODULES:
        module = importlib.import_module(f"keras_taylor.plotting.{module_name}")
        for name in _top_level_public_names(module):
            defined_in[name] = module
    assert set(defined_in) <= set(plotting.__all__)
    for name in plotting.__all__:
        assert getattr(plotting, name) is not None, name
    for name, module in defined_in.items():
        assert getattr(plotting, name) is getattr(module, name), name


# ---------------------------------------------------------------------------
# Every plot: axis labels, optional title, legend only for several series.


def _draw_each(rng):
    rounds = random_rounds(rng)
    curve, band = random_curve(rng, rounds), random_band(rng, rounds)
    x = np.arange(10.0)
    return {
        "piecewise": lambda ax, title: plotting.plot_piecewise_linear(
            ax, ax.twinx(), x, x**2, 2 * x, function_title=title, gradient_title=title
        ),
        "layer_regret": lambda ax, title: plotting.plot_layer_regret(ax, {"d": curve}, title=title),
        "neuron_regret": lambda ax, title: plotting.plot_neuron_regret(ax, band, title=title),
        "loss_vs_optimum": lambda ax, title: plotting.plot_loss_vs_taylor_optimum(ax, curve, title=title),
        "optimizer_regret": lambda ax, title: plotting.plot_optimizer_regret(ax, {"sgd": curve}, title=title),
        "optimizer_loss_gap": lambda ax, title: plotting.plot_optimizer_loss_gap(
            ax, {"sgd": band}, title=title
        ),
        "growth_fit": lambda ax, title: plotting.plot_growth_fit(
            ax, curve, GrowthFit(0.5, (0.4, 0.6), 0.9, 1, rounds[6:], "too few points", np.nan), title=title
        ),
        "min_hamming": lambda ax, title: plotting.plot_min_hamming(ax, {"sgd": (x, x / 10)}, title=title),
        "switches": lambda ax, title: plotting.plot_switches(ax, {"sgd": x / 10}, title=title),
        "log_volume": lambda ax, title: plotting.plot_log_volume(ax, {"sgd": x}, title=title),
        "training_loss": lambda ax, title: plotting.plot_training_loss(ax, {"sgd": (x, x + 1)}, title=title),
    }


PLOTS = tuple(_draw_each(np.random.default_rng(0)))
# Plots whose single input above draws one labeled series (the others draw two, e.g. loss and optimum).
SINGLE_SERIES = {"piecewise", "layer_regret", "neuron_regret", "optimizer_regret", "growth_fit",
                 "min_hamming", "switches", "log_volume", "training_loss"}


@pytest.mark.parametrize("plot", PLOTS)
def test_every_plot_labels_its_axes_takes_a_title_and_shows_a_legend_only_for_several_series(rng, plot):
    draw = _draw_each(rng)[plot]
    ax = new_axes()
    draw(ax, None)
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() == ""
    assert (ax.get_legend() is None) == (plot in SINGLE_SERIES)
    titled = new_axes()
    draw(titled, "A title")
    assert titled.get_title() == "A title"
