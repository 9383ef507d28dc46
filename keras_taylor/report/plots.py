"""The report's figures (PNG): the analogues of the paper's Figs. 3-6, and what it left open
(exploration against the final loss, the claims' quantities by training length).

The drawing is `keras_taylor.plotting`'s; this module lays out the figures and names the files.
"""

import pathlib
import re

import numpy as np

from keras_taylor import open_questions, plotting
from keras_taylor.experiments import trained_epochs
from keras_taylor.report.lengths import lengths_measured, quantities_by_length
from keras_taylor.report.records import analyzed_layers, band_from_json, curve_from_json, losses_by_epoch, round_count


def training_loss_title(analyses: dict) -> str:
    """Fig. 6's title: what each point of its curves averages, and over which seeds (runs stopped at an
    accuracy plateau differ in length: an optimizer's mean at an epoch is over its seeds that reached
    it, said when any optimizer's seeds differ in length).

    Args:
        analyses: `{group: [analysis or run record, ...]}`, as `load_analyses` returns them.
    """
    runs = [run for group in analyses.values() for run in group if "rounds" in run]
    counts = sorted({round_count(run) for run in runs})
    described = f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}–{counts[-1]:,}" if counts else "no"
    lengths_differ = any(len({trained_epochs(run["run"]) for run in group if "rounds" in run}) > 1
                         for group in analyses.values())
    seeds = "mean ± std over the seeds reaching each epoch" if lengths_differ else "mean ± std over seeds"
    if counts and counts[-1] <= 100:
        return f"Training loss of each recorded round ({described} per run),\n{seeds}"
    return f"Training loss: 100-block means of each run's recorded rounds\n({described}), {seeds}"


def _file_stem(group: str) -> str:
    """A group's name as part of a file name a Markdown link can hold ("sgd lr=4" → "sgd_lr4")."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", group.replace(" lr=", "_lr"))


def _layer_curves(analyses: dict, layer: str) -> dict:
    """`{optimizer: [layer-scale RegretCurve per seed]}` for the optimizers that recorded that scale."""
    curves = {opt: [curve_from_json(run["layers"][layer]["layer"], "layer", layer) for run in runs
                    if "regret" in run["layers"].get(layer, {}).get("layer", {})]
              for opt, runs in analyses.items()}
    return {opt: seeds for opt, seeds in curves.items() if seeds}


def _quantile_sample(summary: dict) -> plotting.SortedSample:
    """A `log_volume_summary`'s quantiles as the sorted units they are: quantile q is the unit of
    rank ⌊q·(count − 1)⌋ (NumPy's "lower" method, which the summary uses)."""
    levels = np.asarray(summary["quantile_levels"], np.float64)
    ranks = np.floor((summary["count"] - 1) * levels).astype(np.int64)
    values = np.array([-np.inf if value is None else value for value in summary["quantiles"]], np.float64)
    return plotting.SortedSample(ranks, values, summary["count"], summary["num_infinite"])


def figures(analyses: dict, output_dir, dpi: int = 150, questions: dict | None = None) -> list[pathlib.Path]:
    """Draws the Fig. 3-6 analogues and the open questions' figures into `output_dir` (PNG); returns the
    files written. `questions`: `open_questions.open_questions(analyses)` if the caller has it already."""
    import matplotlib.figure  # pylint: disable=import-outside-toplevel

    output_dir = pathlib.Path(output_dir)
    written = []
    layers = analyzed_layers(analyses)

    def save(figure, name):
        written.extend(plotting.save_figure(figure, output_dir / name, formats=("png",), dpi=dpi))

    # Fig. 6: training loss per optimizer.
    figure = matplotlib.figure.Figure(figsize=(6, 4), layout="constrained")
    plotting.plot_training_loss(figure.add_subplot(), {
        optimizer: [losses_by_epoch(run) for run in runs] for optimizer, runs in analyses.items()},
        xlabel="epoch", title=training_loss_title(analyses))
    save(figure, "fig6_training_loss")

    # Fig. 3 / 4: regret per layer, optimizers compared.
    columns = len(layers)
    layer_curves = {layer: _layer_curves(analyses, layer) for layer in layers}
    any_layer_scale = any(layer_curves.values())
    rows = 2 if any_layer_scale else 1  # a task without layer scale (the convnet) gets its neuron row only
    figure = matplotlib.figure.Figure(figsize=(3.2 * columns, 3.2 * rows), layout="constrained")
    for index, layer in enumerate(layers):
        top = figure.add_subplot(rows, columns, index + 1) if any_layer_scale else None
        bottom = figure.add_subplot(rows, columns, (rows - 1) * columns + index + 1)
        if top is not None and layer_curves[layer]:
            plotting.plot_optimizer_regret(top, layer_curves[layer], title=f"{layer}: layer scale")
        elif top is not None:
            top.set_title(f"{layer}: layer scale not recorded")
            top.set_axis_off()
        bands = {opt: [band_from_json(run["layers"][layer]["neuron"], layer) for run in runs
                       if "regret" in run["layers"].get(layer, {}).get("neuron", {})]
                 for opt, runs in analyses.items()}
        bands = {opt: b for opt, b in bands.items() if b}
        if bands:
            plotting.plot_optimizer_regret(bottom, bands, title=f"{layer}: neuron scale")
    save(figure, "fig4_regret_by_optimizer")

    if any_layer_scale:  # Fig. 4c compares layer-scale optima
        figure = matplotlib.figure.Figure(figsize=(3.2 * columns, 3.4), layout="constrained")
        legend_drawn = False
        for index, layer in enumerate(layers):
            ax = figure.add_subplot(1, columns, index + 1)
            if layer_curves[layer]:
                plotting.plot_optimizer_loss_gap(ax, layer_curves[layer], title=f"{layer}: loss vs Taylor optimum")
                if ax.get_legend() is not None:  # one legend (solid: average loss, dashed: optimum) for the row
                    ax.get_legend().remove()
                    if not legend_drawn:
                        ax.legend(fontsize="x-small")
                        legend_drawn = True
            else:
                ax.set_title(f"{layer}: layer scale not recorded")
                ax.set_axis_off()
        save(figure, "fig4c_loss_vs_taylor_optimum")

    for optimizer, runs in analyses.items():
        run = runs[0]
        figure = matplotlib.figure.Figure(figsize=(10, 3.6), layout="constrained")
        left, middle, right = (figure.add_subplot(1, 3, i) for i in (1, 2, 3))
        curves = {layer: curve_from_json(run["layers"][layer]["layer"], "layer", layer) for layer in layers
                  if "regret" in run["layers"].get(layer, {}).get("layer", {})}
        if curves:
            plotting.plot_layer_regret(left, curves, title=f"{optimizer}: layer scale")
        for layer in layers:
            record = run["layers"].get(layer, {}).get("neuron", {})
            if "regret" in record:
                plotting.plot_neuron_regret(middle, band_from_json(record, layer), label=layer,
                                            color=None, title=f"{optimizer}: neurons (mean ± std)")
        first_hidden = next((layer for layer in layers if "regret" in run["layers"][layer].get("neuron", {})), None)
        if first_hidden is not None:
            plotting.plot_loss_vs_taylor_optimum(right, band_from_json(run["layers"][first_hidden]["neuron"],
                                                                       first_hidden),
                                                 title=f"{optimizer}: {first_hidden} neurons")
        save(figure, f"fig3_regret_{_file_stem(optimizer)}_seed{run['run']['config']['seed']}")

    # Fig. 5: exploration.
    explored = {opt: runs for opt, runs in analyses.items() if "min_hamming_normalized" in runs[0].get("exploration", {})}
    if explored:
        figure = matplotlib.figure.Figure(figsize=(12, 3.6), layout="constrained")
        left, middle, right = (figure.add_subplot(1, 3, i) for i in (1, 2, 3))
        plotting.plot_min_hamming(left, {
            opt: [(np.asarray(run["exploration"]["steps"][1:]) + 1,
                   np.asarray(run["exploration"]["min_hamming_normalized"][1:], np.float64)) for run in runs]
            for opt, runs in explored.items()}, xlabel="training step", title="min Hamming distance to the past")
        plotting.plot_switches(middle, {opt: np.asarray(runs[0]["exploration"]["switches"]["quantiles"], np.float64)
                                        for opt, runs in explored.items()},
                               title="activation switches per point (101 quantiles)")
        plotting.plot_log_volume(right, {opt: _quantile_sample(runs[0]["exploration"]["log_volume"])
                                         for opt, runs in explored.items()},
                                 xlabel="units (sorted)", title="log-volume of each unit\n(seed 0, 101 quantiles)")
        save(figure, "fig5_exploration")

    versus = (questions["exploration_vs_loss"] if questions is not None
              else open_questions.exploration_vs_loss(analyses))
    if any(entry["runs"] for entry in versus.values()):  # not in the paper: exploration against final loss
        figure = matplotlib.figure.Figure(figsize=(3.6 * len(versus), 3.4), layout="constrained")
        for index, (name, entry) in enumerate(versus.items()):
            groups = {}
            for point in entry["runs"]:
                values, losses = groups.setdefault(point["group"], ([], []))
                values.append(np.nan if point["value"] is None else point["value"])
                losses.append(point["final_loss"])
            rho = entry["correlation"]["rho"]
            plotting.plot_exploration_vs_loss(figure.add_subplot(1, len(versus), index + 1), groups, name,
                                              title="Spearman ρ " + ("n/a" if rho is None else f"{rho:.2f}"))
        save(figure, "exploration_vs_loss")

    if len(lengths_measured(analyses)) > 1:  # not in the paper: how each claim's quantity moves with length
        quantities = quantities_by_length(analyses)
        figure = matplotlib.figure.Figure(figsize=(3.4 * len(quantities), 3.4), layout="constrained")
        for index, (name, values) in enumerate(quantities.items()):
            plotting.plot_metric_by_length(figure.add_subplot(1, len(quantities), index + 1), values, name,
                                           title=f"{name}\non the first E epochs")
        save(figure, "verdicts_by_length")
    return written
