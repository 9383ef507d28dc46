"""Summaries across runs: the paper's claims as numbers, its figures, and a Markdown report.

Reads the `analysis.json` of every run under a task directory (written by
`keras_taylor.experiments.analyze_run`), groups them by optimizer, and writes
`summary.json`, `README.md` and the figures (PNG) into an output directory such as
`results/<task>/`. NumPy and matplotlib only.
"""

import dataclasses
import json
import pathlib
import types

import numpy as np

from keras_taylor import open_questions, plotting
from keras_taylor.storage import atomic_write
from keras_taylor.analysis import (GrowthFit, NeuronRegretBand, RegretCurve, SolverDiagnostics, band_fit_summary,
                                   fit_growth)

_OPTIMIZER_ORDER = ("sgd", "momentum", "rmsprop", "adam", "signsgd")
TOP_NEURONS = 40  # the paper: Adam's top ~40 neurons explore like RMSProp's
# Per layer, the same share of a layer's units: the paper's ~40 of the autoencoder's 180 hidden units.
TOP_SHARE = 40 / 180


def group_name(optimizer: str, learning_rate: float, rates_of_optimizer: int) -> str:
    """How reports name the runs of one optimizer at one rate: the optimizer alone when it ran at one
    rate, else with its rate ("sgd lr=2")."""
    return optimizer if rates_of_optimizer == 1 else f"{optimizer} lr={learning_rate:g}"


def optimizer_of(group: str) -> str:
    """The optimizer of a `group_name`."""
    return group.split(" lr=")[0]


def load_analyses(runs) -> dict:
    """`{group: [analysis dict per seed, by seed]}` of analyzed runs, a group per optimizer and rate
    (`group_name`: the optimizer's name when all its runs share one rate).

    Args:
        runs: A folder of run directories (every `*/analysis.json` in it), or a list of run
            directories and run records (`.json` files written by `write_run_record`).
    """
    by_optimizer = {}
    if isinstance(runs, (str, pathlib.Path)):
        paths = sorted(pathlib.Path(runs).glob("*/analysis.json"))
    else:
        paths = [pathlib.Path(run) if str(run).endswith(".json") else pathlib.Path(run) / "analysis.json"
                 for run in runs]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path.parent} has not been analyzed (no analysis.json).")
        analysis = json.loads(path.read_text())
        if path.name == "analysis.json":
            analysis["path"] = str(path.parent)
        config = analysis["run"]["config"]
        by_optimizer.setdefault(config["optimizer"].lower(), {}).setdefault(_learning_rate(config), []).append(analysis)
    if not by_optimizer:
        raise FileNotFoundError(f"{runs} holds no analyzed runs (*/analysis.json).")
    ordered = sorted(by_optimizer, key=lambda name: (_OPTIMIZER_ORDER + (name,)).index(name))
    return {group_name(name, rate, len(by_optimizer[name])): sorted(group, key=lambda a: a["run"]["config"]["seed"])
            for name in ordered for rate, group in sorted(by_optimizer[name].items())}


def loss_blocks(losses: np.ndarray, blocks: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """`(edges [K+1], means [K])`: the per-round losses averaged in `blocks` (or fewer) equal blocks of rounds."""
    losses = np.asarray(losses, np.float64)
    edges = np.linspace(0, len(losses), min(blocks, len(losses)) + 1).astype(int)
    return edges, np.array([losses[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])


def run_record(analysis: dict) -> dict:
    """One run's analysis as results/<task>/runs/ keeps it: everything but the per-round losses, which
    become their mean and 100 block means (all the report reads of them): about 100 KB whatever the
    training length, where a 50-epoch analysis.json holds 47,000 rounds."""
    record = {key: value for key, value in analysis.items() if key not in ("rounds", "path")}
    if "rounds" in analysis:
        losses = np.asarray(analysis["rounds"]["loss"], np.float64)
        edges, means = loss_blocks(losses)
        record["rounds"] = {"count": len(losses), "mean_loss": float(np.mean(losses)),
                            "block_edges": edges.tolist(), "block_loss": means.tolist()}
    return record


_UNCOMPARED = ("verbose",)  # settings that do not change a run's numbers


def _settings(record: dict) -> dict:
    return {"train": {key: value for key, value in record["run"]["config"].items() if key not in _UNCOMPARED},
            "analysis": record["analysis_config"]}


def existing_run_record(path, train_config: dict, analysis_config: dict) -> bool:
    """Whether the run record `path` exists for these settings (a finished run need not be redone).

    Raises:
        ValueError: the record exists but was made with other settings (it is not overwritten:
            committed results are kept until deleted by hand).
    """
    path = pathlib.Path(path)
    if not path.exists():
        return False
    stored = _settings(json.loads(path.read_text()))
    wanted = _settings({"run": {"config": train_config}, "analysis_config": analysis_config})
    differing = [f"{part}.{key}: {stored[part].get(key)!r} ≠ {wanted[part].get(key)!r}"
                 for part in ("train", "analysis") for key in sorted(set(stored[part]) | set(wanted[part]))
                 if stored[part].get(key) != wanted[part].get(key)]
    if differing:
        raise ValueError(f"{path} was made with other settings ({'; '.join(differing)}); delete it to redo "
                         "that run, or write to another results directory.")
    return True


def write_run_record(analysis: dict, path) -> pathlib.Path:
    """Writes `run_record(analysis)` to `path` (atomically: a killed process leaves no partial record)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: handle.write(json.dumps(run_record(analysis), indent=1).encode()))
    return path


def _diagnostics(length: int, converged: bool) -> SolverDiagnostics:
    return SolverDiagnostics("from analysis.json", np.full(length, converged), np.zeros(length),
                             np.zeros(length, np.int64), np.full(length, -1), np.full(length, np.nan),
                             np.zeros(length, bool))


def curve_from_json(record: dict, scale: str, layer: str | None) -> RegretCurve:
    """The `RegretCurve` an analysis.json entry describes."""
    rounds = np.asarray(record["rounds"])
    return RegretCurve(scale, layer, None, rounds, np.asarray(record["cumulative_loss"]),
                       np.asarray(record["cumulative_taylor_optimum"]), np.asarray(record["regret"]),
                       _diagnostics(len(rounds), record["solver"]["all_converged"]))


def band_from_json(record: dict, layer: str) -> NeuronRegretBand:
    """The `NeuronRegretBand` an analysis.json entry describes."""
    rounds = np.asarray(record["rounds"])
    optimum, regret = np.asarray(record["cumulative_taylor_optimum"]), np.asarray(record["regret"])
    loss = np.asarray(record["cumulative_loss"])
    curves = tuple(RegretCurve("neuron", layer, neuron, rounds, loss, optimum[i], regret[i],
                               _diagnostics(len(rounds), record["solver_all_converged"]))
                   for i, neuron in enumerate(record["neurons"]))
    return NeuronRegretBand(layer, np.asarray(record["neurons"]), rounds, loss, optimum, regret, curves)


def fit_from_json(record: dict, curve: RegretCurve | None = None) -> GrowthFit:
    """The `GrowthFit` an analysis.json "fit" entry describes.

    An analysis.json written before the coefficient was stored has no "coefficient" in its
    fits. An "ok" fit's coefficient is then recomputed from `curve` by `fit_growth` over
    exactly the rounds the fit used (the same points and least squares, so the same value);
    without `curve` it is NaN, as it is for a fit whose status is not "ok".

    Args:
        record: The entry's "fit" dict.
        curve: The curve that was fitted (`curve_from_json` of the same entry); needed only for
            files without coefficients.

    Returns:
        The fit, its stored exponent, interval and status unchanged.

    Raises:
        ValueError: If the coefficient must be recomputed and `curve` lacks a round the fit used.
    """
    rounds_used = np.asarray(record["rounds_used"])
    coefficient = record.get("coefficient")
    if coefficient is None:
        coefficient = np.nan
        if record["status"] == "ok" and curve is not None:
            on_curve = np.isin(curve.rounds, rounds_used)
            if np.count_nonzero(on_curve) != len(np.unique(rounds_used)):
                raise ValueError("The fit used rounds that are not on the curve's grid: is it the fit of this curve?")
            used = types.SimpleNamespace(rounds=curve.rounds[on_curve], regret=curve.regret[on_curve])
            coefficient = fit_growth(used, fraction=1.0, confidence=record["confidence"]).coefficient
    return GrowthFit(np.nan if record["exponent"] is None else record["exponent"], tuple(record["interval"]),
                     record["confidence"], record["sign"], rounds_used, record["status"], float(coefficient))


def _layers(analyses: dict) -> list[str]:
    """The analyzed layers, in model order when the run's Taylor manifest is at hand."""
    first = next(iter(analyses.values()))[0]
    names = list(first.get("layers", {}))
    manifest_path = pathlib.Path(first.get("path", "")) / "taylor" / "manifest.json"
    if manifest_path.exists():
        layers = json.loads(manifest_path.read_text()).get("model", {}).get("config", {}).get("layers", [])
        order = {(layer.get("name") or layer.get("config", {}).get("name")): i for i, layer in enumerate(layers)}
        names.sort(key=lambda name: (order.get(name, len(order)), name))
    return names


def _mean_std(values) -> dict:
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], np.float64)
    if values.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(values.mean()), "std": float(values.std()), "n": int(values.size)}


def _binned_losses(analysis: dict) -> tuple[np.ndarray, np.ndarray]:
    """The per-round training loss averaged in 100 equal blocks of rounds: `(block centers, means)`."""
    rounds = analysis["rounds"]
    if "block_loss" in rounds:  # a run record
        edges, means = np.asarray(rounds["block_edges"]), np.asarray(rounds["block_loss"])
    else:
        edges, means = loss_blocks(rounds["loss"])
    return (edges[:-1] + edges[1:]) / 2, means


def _round_count(analysis: dict) -> int:
    rounds = analysis["rounds"]
    return rounds["count"] if "count" in rounds else len(rounds["loss"])


def losses_by_epoch(analysis: dict) -> tuple[np.ndarray, np.ndarray]:
    """`_binned_losses` against training progress in epochs (the recorded rounds are spread evenly
    over training: every k-th step)."""
    centers, means = _binned_losses(analysis)
    return centers * analysis["run"]["config"]["epochs"] / _round_count(analysis), means


def _loss_title(analyses: dict) -> str:
    """Fig. 6's title: what each point of its curves averages."""
    counts = sorted({_round_count(run) for runs in analyses.values() for run in runs if "rounds" in run})
    described = " or ".join(f"{count:,}" for count in counts)
    if counts and counts[-1] <= 100:
        return f"Training loss of each recorded round ({described} rounds),\nmean ± std over seeds"
    return f"Training loss: means of 100 equal blocks of the {described} recorded rounds,\nmean ± std over seeds"


def _mean_round_loss(analysis: dict) -> float:
    rounds = analysis["rounds"]
    return rounds["mean_loss"] if "mean_loss" in rounds else float(np.mean(rounds["loss"]))


def claims(analyses: dict) -> dict:
    """The paper's claims, measured: exponents, exploration metrics and final losses per optimizer."""
    summary = {}
    for optimizer, runs in analyses.items():
        entry = {"seeds": [run["run"]["config"]["seed"] for run in runs]}
        entry["final_epoch_loss"] = _mean_std([run["run"]["final_epoch_loss"] for run in runs])
        entry["average_training_loss"] = _mean_std([_mean_round_loss(run) for run in runs if "rounds" in run])
        exponents = {}
        for layer in _layers(analyses):
            layer_records = [run["layers"].get(layer, {}) for run in runs]
            layer_fits = [r["layer"]["fit"] for r in layer_records if "fit" in r.get("layer", {})]
            neuron_records = [r["neuron"] for r in layer_records if "fits" in r.get("neuron", {})]
            exponents[layer] = {
                "layer": _mean_std([fit["exponent"] for fit in layer_fits]),
                "layer_fit_status": [fit["status"] for fit in layer_fits],
                "layer_fit_sign": [fit["sign"] for fit in layer_fits],
                "layer_missing": next((r["layer"]["missing"] for r in layer_records if "missing" in r.get("layer", {})),
                                      None),
                "neuron": _mean_std([fit["exponent"] for record in neuron_records for fit in record["fits"]]),
                "neuron_fit_status": _status_counts(neuron_records),
                "neuron_negative_final_regret": int(sum(r["negative_final_regret"] for r in neuron_records)),
                "neurons": int(sum(len(r["neurons"]) for r in neuron_records)),
                "final_layer_regret_over_sqrt_n": _mean_std(
                    [r["layer"]["regret"][-1] / np.sqrt(r["layer"]["rounds"][-1]) for r in layer_records
                     if "regret" in r.get("layer", {})]),
                "final_gap_average_loss_minus_taylor_optimum": _mean_std(
                    [r["layer"]["regret"][-1] / r["layer"]["rounds"][-1] for r in layer_records
                     if "regret" in r.get("layer", {})]),
            }
        entry["regret_exponents"] = exponents
        explorations = [run["exploration"] for run in runs if "min_hamming_normalized" in run.get("exploration", {})]
        if explorations:
            metric = {key: _mean_std([read(e) for e in explorations])
                      for key, _, read in open_questions.EXPLORATION_METRICS}
            entry["exploration"] = {
                "final_min_hamming_normalized": _mean_std([e["min_hamming_normalized"][-1] for e in explorations]),
                "mean_min_hamming_normalized": metric["mean_min_hamming_normalized"],
                "mean_switch_proportion": metric["mean_switch_proportion"],
                "median_switch_proportion": _mean_std([e["switches"]["quantiles"][50] for e in explorations]),
                "mean_finite_log_volume": metric["mean_finite_log_volume"],
                "units_with_zero_log_volume": _mean_std([e["log_volume"]["num_infinite"] for e in explorations]),
                "top_log_volume_mean": _mean_std([_top_mean(e["log_volume_sorted"], TOP_NEURONS) for e in explorations]),
                "per_layer": per_layer_exploration(explorations),
                "log_volume_k": explorations[0]["log_volume_k"],
                "units": explorations[0]["num_units"], "probe_points": explorations[0]["num_points"],
            }
        summary[optimizer] = entry
    return summary


def _cut_curve(record: dict, keep: np.ndarray, fraction: float, scale: str, layer: str | None) -> dict:
    """A regret entry of analysis.json with its grid cut to `keep` and its growth fit(s) and their
    summary redone; its solver diagnostics stay the whole run's."""
    cut = dict(record)
    for key in ("rounds", "cumulative_loss", "cumulative_taylor_optimum", "regret"):
        cut[key] = np.asarray(record[key])[..., keep].tolist()
    if scale == "neuron":
        band = band_from_json({**cut, "solver_all_converged": record.get("solver_all_converged", True)}, layer)
        fits = [fit_growth(curve, fraction=fraction) for curve in band.curves]
        cut.update(fits=[fit.to_json() for fit in fits], **band_fit_summary(band.regret, fits))
    else:
        cut["fit"] = fit_growth(curve_from_json(cut, scale, layer), fraction=fraction).to_json()
    return cut


def prefix_analysis(analysis: dict, epochs: int) -> dict:
    """An analysis (or run record) cut to the first `epochs` epochs of its run: what `claims` reads.

    The regret curves keep their grid points within those epochs' rounds and are fitted again
    over the same fraction of what remains; the exploration metrics are the analysis's own for
    that prefix ("exploration_by_length", from the activation records of those epochs; absent:
    no exploration); the final-epoch loss is that epoch's. A record keeps the per-round losses
    as 100 block means: its prefix's mean loss averages the whole blocks within the prefix.

    Raises:
        ValueError: `epochs` is not between 1 and the run's epochs, or the history lacks that epoch.
    """
    run_epochs = int(analysis["run"]["config"]["epochs"])
    if not 1 <= epochs <= run_epochs:
        raise ValueError(f"A prefix needs 1 ≤ epochs ≤ {run_epochs} (the run's). Received: epochs={epochs}")
    if epochs == run_epochs:
        return analysis
    history = analysis.get("history") or {}
    if len(history.get("loss", [])) < epochs:
        raise ValueError(f"The analysis's history has no loss for epoch {epochs}: {len(history.get('loss', []))} epochs.")
    cut = {key: value for key, value in analysis.items() if key not in ("exploration", "exploration_by_length")}
    cut["run"] = {**analysis["run"], "final_epoch_loss": history["loss"][epochs - 1],
                  "config": {**analysis["run"]["config"], "epochs": epochs}}
    cut["exploration"] = analysis.get("exploration_by_length", {}).get(str(epochs), {})
    if "rounds" in analysis:
        last = int(round(_round_count(analysis) * epochs / run_epochs))
        rounds = analysis["rounds"]
        if "loss" in rounds:
            cut["rounds"] = {"count": last, "mean_loss": float(np.mean(rounds["loss"][:last]))}
        else:
            edges, means = np.asarray(rounds["block_edges"]), np.asarray(rounds["block_loss"])
            inside = edges[1:] <= last
            cut["rounds"] = {"count": last, "mean_loss": float(np.average(means[inside], weights=np.diff(edges)[inside]))
                             if inside.any() else float(means[0])}
        fraction = analysis["analysis_config"]["fit_fraction"]
        if analysis.get("network") and "regret" in analysis["network"]:
            keep = np.asarray(analysis["network"]["rounds"]) <= last
            cut["network"] = _cut_curve(analysis["network"], keep, fraction, "network", None)
        cut["layers"] = {}
        for layer, entry in analysis.get("layers", {}).items():
            cut["layers"][layer] = {
                scale: (_cut_curve(record, np.asarray(record["rounds"]) <= last, fraction, scale, layer)
                        if "regret" in record else record)
                for scale, record in entry.items()}
    return cut


def lengths_measured(analyses: dict) -> list[int]:
    """The training lengths (epochs) at which every run of `analyses` can be judged: each run's own
    length if all runs share it, and the prefixes all runs measured exploration at."""
    runs = [run for group in analyses.values() for run in group]
    common = set.intersection(*({int(key) for key in run.get("exploration_by_length", {})} for run in runs))
    full = {int(run["run"]["config"]["epochs"]) for run in runs}
    shortest = min(full)
    return sorted({length for length in common if length <= shortest} | ({shortest} if len(full) == 1 else set()))


def verdicts_by_length(analyses: dict) -> dict:
    """`{epochs: claim_rows}`: every claim judged on the first `epochs` epochs of the same runs."""
    return {length: claim_rows(claims({group: [prefix_analysis(run, length) for run in runs]
                                       for group, runs in analyses.items()}))
            for length in lengths_measured(analyses)}


# What the by-length figure draws of each run, as (name, where `claims` keeps it).
LENGTH_QUANTITIES = (("final-epoch training loss", ("final_epoch_loss",)),) + tuple(
    (name, ("exploration", key)) for key, name, _ in open_questions.EXPLORATION_METRICS)


def _layer_exponent_mean(entry: dict) -> float | None:
    """The mean over layers of one optimizer's mean layer-scale exponents (None: no layer fitted)."""
    values = [record["layer"]["mean"] for record in entry["regret_exponents"].values()
              if record["layer"]["mean"] is not None]
    return float(np.mean(values)) if values else None


def quantities_by_length(analyses: dict) -> dict:
    """`{quantity: {group: [(epochs [L], value per run [L]) per seed]}}` over `lengths_measured`,
    NaN where a prefix lacks the quantity; the quantities of `LENGTH_QUANTITIES` and the mean
    layer-scale growth exponent."""
    lengths = lengths_measured(analyses)
    names = [name for name, _ in LENGTH_QUANTITIES] + ["mean layer-scale regret exponent"]
    result = {name: {} for name in names}
    for group, runs in analyses.items():
        for run in runs:
            values = {name: [] for name in names}
            for length in lengths:
                entry = claims({group: [prefix_analysis(run, length)]})[group]
                for name, keys in LENGTH_QUANTITIES:
                    values[name].append(_mean({group: entry}, group, *keys))
                values[names[-1]].append(_layer_exponent_mean(entry))
            for name in names:
                result[name].setdefault(group, []).append(
                    (np.asarray(lengths, np.float64), np.array([np.nan if v is None else v for v in values[name]])))
    return result


def run_rows(analyses: dict) -> list[dict]:
    """One row per run: the settings that tell runs apart and the final training loss (and accuracy)."""
    rows = []
    for runs in analyses.values():
        for run in runs:
            config, history = run["run"]["config"], run.get("history") or {}
            row = {"task": config["task"], "optimizer": config["optimizer"],
                   "learning_rate": _learning_rate(config), "seed": config["seed"], "epochs": config["epochs"],
                   "examples": run["run"].get("examples"), "probe_size": config.get("probe_size"),
                   "final_loss": run["run"]["final_epoch_loss"]}
            if config["task"] == "convnet":
                accuracy = history.get("accuracy") or [None]
                row["final_accuracy"] = accuracy[-1]
            rows.append(row)
    return rows


def _learning_rate(config: dict) -> float:
    """The rate a run trained at: its own, else its task's default (the run name holds it)."""
    from keras_taylor import experiments  # pylint: disable=import-outside-toplevel

    if config.get("learning_rate") is not None:
        return config["learning_rate"]
    known = {field.name for field in dataclasses.fields(experiments.TrainConfig)}
    return experiments.TrainConfig(**{key: value for key, value in config.items() if key in known}).resolved_learning_rate


def top_count(units: int) -> int:
    """How many of a layer's units make its "top" (`TOP_SHARE` of them, at least one)."""
    return max(1, round(TOP_SHARE * units))


def per_layer_exploration(explorations) -> dict:
    """Each layer's log-volumes summarized across seeds, with the layer's own top units.

    Args:
        explorations: The "exploration" records of one optimizer's analysis.json files (one per
            seed), each with "per_layer": `{layer: {"log_volume": {...}, "log_volume_sorted": [...]}}`
            where `log_volume_sorted` holds the layer's units ascending, None for −inf.

    Returns:
        `{layer: {"units", "top_units", "mean_finite_log_volume", "units_with_zero_log_volume",
        "top_log_volume_mean"}}`, the last three as mean/std/n over seeds. `top_log_volume_mean` is
        the mean of the layer's `top_count(units)` largest finite log-volumes; a seed with fewer
        finite units than that counts as missing (n excludes it). The layers are the first record's;
        a layer no seed measured is left out.
    """
    per_layer = {}
    for layer in explorations[0].get("per_layer", {}):
        records = [e["per_layer"][layer] for e in explorations if "log_volume_sorted" in e["per_layer"].get(layer, {})]
        if not records:
            continue
        units = len(records[0]["log_volume_sorted"])
        per_layer[layer] = {
            "units": units, "top_units": top_count(units),
            "mean_finite_log_volume": _mean_std([r["log_volume"]["mean_finite"] for r in records]),
            "units_with_zero_log_volume": _mean_std([r["log_volume"]["num_infinite"] for r in records]),
            "top_log_volume_mean": _mean_std([_top_mean(r["log_volume_sorted"], top_count(units)) for r in records]),
        }
    return per_layer


def _top_mean(sorted_values, count: int) -> float:
    """Mean of the `count` largest finite values of a sorted list (None = −inf)."""
    finite = [v for v in sorted_values if v is not None]
    top = sorted(finite)[-count:]
    return float(np.mean(top)) if len(top) == count else float("nan")


def _status_counts(records) -> dict:
    counts = {}
    for record in records:
        for status, count in record["fit_status_counts"].items():
            counts[status] = counts.get(status, 0) + count
    return counts


def _layer_curves(analyses: dict, layer: str) -> dict:
    """`{optimizer: [layer-scale RegretCurve per seed]}` for the optimizers that recorded that scale."""
    curves = {opt: [curve_from_json(run["layers"][layer]["layer"], "layer", layer) for run in runs
                    if "regret" in run["layers"].get(layer, {}).get("layer", {})]
              for opt, runs in analyses.items()}
    return {opt: seeds for opt, seeds in curves.items() if seeds}


def figures(analyses: dict, output_dir, dpi: int = 150, questions: dict | None = None) -> list[pathlib.Path]:
    """Draws the Fig. 3-6 analogues and the open questions' figures into `output_dir` (PNG); returns the
    files written. `questions`: `open_questions.open_questions(analyses)` if the caller has it already."""
    import matplotlib.figure  # pylint: disable=import-outside-toplevel

    output_dir = pathlib.Path(output_dir)
    written = []
    layers = _layers(analyses)

    def save(figure, name):
        written.extend(plotting.save_figure(figure, output_dir / name, formats=("png",), dpi=dpi))

    # Fig. 6: training loss per optimizer.
    figure = matplotlib.figure.Figure(figsize=(6, 4), layout="constrained")
    plotting.plot_training_loss(figure.add_subplot(), {
        optimizer: [losses_by_epoch(run) for run in runs] for optimizer, runs in analyses.items()},
        xlabel="epoch", title=_loss_title(analyses))
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
        save(figure, f"fig3_regret_{optimizer}_seed{run['run']['config']['seed']}")

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
        plotting.plot_log_volume(right, {
            opt: np.asarray([-np.inf if v is None else v for v in runs[0]["exploration"]["log_volume_sorted"]])
            for opt, runs in explored.items()}, xlabel="units (sorted)", title="log-volume of each unit (seed 0)")
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


def _mean(summary: dict, optimizer: str, *keys) -> float | None:
    value = summary.get(optimizer, {})
    for key in keys:
        value = value.get(key, {}) if isinstance(value, dict) else {}
    return value.get("mean") if isinstance(value, dict) else None


def claim_rows(summary: dict) -> list[dict]:
    """The paper's claims, each with the measured numbers and a verdict computed from them.

    A verdict compares means over seeds; it says "not tested" when an optimizer or metric is missing.
    """
    rows = []
    exponents = {
        opt: [(layer, record["layer"]["mean"]) for layer, record in entry["regret_exponents"].items()
              if record["layer"]["mean"] is not None]
        for opt, entry in summary.items()}
    neuron_exponents = {
        opt: [(layer, record["neuron"]["mean"]) for layer, record in entry["regret_exponents"].items()
              if record["neuron"]["mean"] is not None]
        for opt, entry in summary.items()}
    measured = "; ".join(
        f"{opt}: " + ", ".join(
            f"{label} {min(v for _, v in values[opt]):.2f}–{max(v for _, v in values[opt]):.2f}"
            for label, values in (("layer", exponents), ("neuron means", neuron_exponents)) if values[opt])
        for opt in exponents if exponents[opt] or neuron_exponents[opt])
    scale = "layer-scale"
    if not any(exponents.values()):  # no layer scale recorded (the convnet): judge the neuron-scale means
        exponents, scale = neuron_exponents, "neuron-scale"
    all_values = [v for exps in exponents.values() for _, v in exps]
    unfitted = {opt: [layer for layer, record in entry["regret_exponents"].items()
                      if record["layer_fit_status"] and record["layer"]["mean"] is None]
                for opt, entry in summary.items()}
    unfitted_text = "; ".join(f"{opt}: no exponent for {', '.join(layers)} (regret changes sign)"
                              for opt, layers in unfitted.items() if layers)
    if unfitted_text:
        measured = f"{measured}; {unfitted_text}"
    above = sum(v > 0.65 for v in all_values)
    below = sum(v < 0.35 for v in all_values)
    verdict = "not tested" if not all_values else (
        f"reproduced ({scale} means)" if not above and not below and not unfitted_text else
        f"not reproduced: {above} {scale} mean exponents above 0.65, {below} below 0.35"
        + (", some layers' regret changes sign" if unfitted_text else ""))
    rows.append({"claim": "Regret(N) grows like √N for every optimizer and scale (verdict rule: every layer-scale "
                          "mean exponent within 0.35–0.65; neuron-scale means where no layer scale was recorded)",
                 "measured": f"fitted exponents {measured}", "verdict": verdict})

    metrics = (("mean_min_hamming_normalized", "min Hamming"), ("mean_switch_proportion", "switches"),
               ("mean_finite_log_volume", "log-volume"))

    def compare(first, second, label):
        values = [(name, _mean(summary, first, "exploration", key), _mean(summary, second, "exploration", key))
                  for key, name in metrics]
        if any(a is None or b is None for _, a, b in values):
            return {"claim": label, "measured": "n/a", "verdict": "not tested"}
        text = "; ".join(f"{name} {first} {a:.4g} vs {second} {b:.4g}" for name, a, b in values)
        wins = sum(a > b for _, a, b in values)
        return {"claim": label, "measured": text,
                "verdict": "reproduced" if wins == 3 else f"not reproduced ({first} higher on {wins} of 3)"}

    # SGD at several rates (the paper: RMSProp out-explores SGD "for multiple learning rates"): a row per rate.
    sgd_groups = [group for group in summary if optimizer_of(group) == "sgd"] or ["sgd"]

    def at_rate(group: str) -> str:
        return "" if group == "sgd" else f" at {group.split(' ', 1)[1]}"

    for group in sgd_groups:
        rows.append(compare("rmsprop", group, f"RMSProp explores more than SGD{at_rate(group)} on all three metrics"))
    rows.append(compare("rmsprop", "adam", "Adam explores less than RMSProp (all three metrics)"))
    for group in sgd_groups:
        rows.append(compare("adam", group, f"Adam explores more than SGD{at_rate(group)} (all three metrics)"))
    adam_top, rms_top = (_mean(summary, opt, "exploration", "top_log_volume_mean") for opt in ("adam", "rmsprop"))
    if adam_top is None or rms_top is None or not np.isfinite(adam_top) or not np.isfinite(rms_top):
        rows.append({"claim": f"Adam's top ~{TOP_NEURONS} units explore like RMSProp's", "measured": "n/a",
                     "verdict": "not tested"})
    else:
        difference = abs(adam_top - rms_top) / abs(rms_top)
        rows.append({"claim": f"Adam's top ~{TOP_NEURONS} units explore like RMSProp's",
                     "measured": f"mean log-volume of the top {TOP_NEURONS} units: adam {adam_top:.4g}, "
                                 f"rmsprop {rms_top:.4g} ({difference:.0%} apart)",
                     "verdict": "reproduced" if difference <= 0.1 else "not reproduced (more than 10% apart)"})
    rows.append(top_per_layer_row(summary))
    for group in sgd_groups:
        losses = {opt: _mean(summary, opt, "final_epoch_loss") for opt in (group, "rmsprop", "adam")}
        if None in losses.values():
            rows.append({"claim": f"Adaptive optimizers reach a lower training loss than SGD{at_rate(group)}",
                         "measured": "n/a", "verdict": "not tested"})
            continue
        better = [opt for opt in ("rmsprop", "adam") if losses[opt] < losses[group]]
        rows.append({"claim": f"Adaptive optimizers (RMSProp, Adam) reach a lower training loss than SGD{at_rate(group)}",
                     "measured": ", ".join(f"{opt} {loss:.4g}" for opt, loss in losses.items()),
                     "verdict": "reproduced" if len(better) == 2 else
                     f"not reproduced (lower than SGD: {', '.join(better) or 'neither'})"})
    return rows


def top_per_layer_row(summary: dict) -> dict:
    """The claim row "Adam's top units explore like RMSProp's", judged layer by layer.

    Args:
        summary: `claims`' output; reads each optimizer's "exploration" → "per_layer" (see
            `per_layer_exploration`) for "adam" and "rmsprop".

    Returns:
        `{"claim", "measured", "verdict"}`: "reproduced" when, in every layer both optimizers
        measured, the mean log-volume of Adam's top units is within 10% of RMSProp's (relative to
        RMSProp's); "not tested" when no layer has both.
    """
    label = f"Adam's top units explore like RMSProp's, per layer (each layer's top {TOP_SHARE:.0%})"
    layers = {opt: summary.get(opt, {}).get("exploration", {}).get("per_layer", {}) for opt in ("adam", "rmsprop")}
    pairs = []
    for layer, record in layers["adam"].items():
        adam, rms = record["top_log_volume_mean"]["mean"], layers["rmsprop"].get(layer, {}).get(
            "top_log_volume_mean", {}).get("mean")
        if adam is not None and rms is not None:
            pairs.append((layer, record["top_units"], adam, rms, abs(adam - rms) / abs(rms)))
    if not pairs:
        return {"claim": label, "measured": "n/a", "verdict": "not tested"}
    close = sum(difference <= 0.1 for *_, difference in pairs)
    measured = "; ".join(f"{layer} (top {count}): adam {adam:.4g}, rmsprop {rms:.4g} ({difference:.0%} apart)"
                         for layer, count, adam, rms, difference in pairs)
    return {"claim": label, "measured": measured,
            "verdict": "reproduced" if close == len(pairs) else
            f"not reproduced (within 10% in {close} of {len(pairs)} layers)"}


def _cell(stats: dict, digits: int = 3) -> str:
    if stats is None or stats.get("mean") is None:
        return "n/a"
    return f"{stats['mean']:.{digits}g} ± {stats['std']:.2g} (n={stats['n']})"


# The length of the paper's experiments (Balduzzi et al. 2017, Sec. 4): the autoencoder on the 60,000
# MNIST training images, its exploration computed over the first 50 epochs; the convnet on the 50,000
# CIFAR-10 training images until training accuracy passes 99%. 50 epochs stand in for the latter.
PAPER_SCALE = {"autoencoder": {"examples": 60000, "epochs": 50}, "convnet": {"examples": 50000, "epochs": 50}}


def scale_statement(task: str, examples: int, epochs: int) -> tuple[bool, str]:
    """Whether runs of `examples` × `epochs` are at the paper's length, and a sentence that says so.

    Returns:
        `(at_paper_scale, sentence)`; below the paper's length the sentence says that the verdicts
        describe these runs and do not test the paper's claims.
    """
    paper = PAPER_SCALE.get(task)
    scale = f"{examples:,} training examples × {epochs} epoch{'s' if epochs != 1 else ''}"
    if paper is None:
        return False, f"Scale: {scale} (task {task!r} has no counterpart in the paper)."
    if examples >= paper["examples"] and epochs >= paper["epochs"]:
        return True, f"Scale: {scale}, the paper's length ({paper['examples']:,} × {paper['epochs']})."
    return False, (
        f"**Scale: {scale}, against the paper's {paper['examples']:,} × {paper['epochs']}.** This is a first "
        "look: the verdicts below describe these runs and do not test the paper's claims, which are about "
        "the paper's length (`--data_dir`, `--epochs` and `--seeds` set it; results/ holds longer runs)."
    )


def length_table(by_length: dict) -> list[str]:
    """Markdown lines: one row per claim, one column per training length, each cell the verdict."""
    lengths = list(by_length)
    if len(lengths) < 2:
        return []
    lines = ["## Verdicts by training length\n",
             "Each claim judged on the first E epochs of the same runs (the regret fits on the grid points "
             "within them, the exploration metrics on the activation records of those epochs, the log-volume "
             "with k = min(50, records − 1) singular values, the loss of epoch E); `verdicts_by_length` in "
             "summary.json has the measured numbers.\n",
             "| claim | " + " | ".join(f"{length} epoch{'s' if length != 1 else ''}" for length in lengths) + " |",
             "|---|" + "---|" * len(lengths)]
    for index, row in enumerate(by_length[lengths[-1]]):
        cells = [by_length[length][index]["verdict"] if index < len(by_length[length]) else "n/a" for length in lengths]
        lines.append(f"| {row['claim']} | " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(summary: dict, analyses: dict, command: str, figures_written, by_length: dict | None = None) -> str:
    """The report: claims vs numbers, verdicts by length, tables per optimizer, the figures and the command."""
    optimizers = list(summary)
    layers = _layers(analyses)
    first = next(iter(analyses.values()))[0]["run"]
    _, statement = scale_statement(first["config"]["task"], int(first["examples"]), int(first["config"]["epochs"]))
    lines = [statement + "\n", f"Regenerate with:\n\n```bash\n{command}\n```\n"]
    lines.append(f"Data: {first['data']}; {first['examples']} training examples; "
                 f"{first['config']['epochs']} epochs; seeds per optimizer: "
                 + ", ".join(f"{opt} {summary[opt]['seeds']}" for opt in optimizers) + ".\n")
    lines.append("## The paper's claims, measured\n\n| claim | measured | verdict |\n|---|---|---|")
    for row in claim_rows(summary):
        lines.append(f"| {row['claim']} | {row['measured']} | {row['verdict']} |")
    lines.append("")
    lines += length_table(by_length or {})
    lines.append("## Training loss\n\n| optimizer | final-epoch loss | average per-round loss |\n|---|---|---|")
    for opt in optimizers:
        lines.append(f"| {opt} | {_cell(summary[opt]['final_epoch_loss'], 4)} | "
                     f"{_cell(summary[opt]['average_training_loss'], 4)} |")
    lines.append("\n## Regret growth exponents (Regret(N) ≈ c·N^a fitted over the later half of the grid)\n")
    lines.append("| layer | scale | " + " | ".join(optimizers) + " |\n|---|---|" + "---|" * len(optimizers))
    def exponent_cell(record, scale):
        if scale == "neuron":
            return _cell(record["neuron"])
        statuses, signs = record["layer_fit_status"], record["layer_fit_sign"]
        if not statuses:
            return "not recorded"
        text = _cell(record["layer"])
        if any(status != "ok" for status in statuses):
            text += " [" + ", ".join(sorted(set(status for status in statuses if status != "ok"))) + f" in {sum(s != 'ok' for s in statuses)} of {len(statuses)} seeds]"
        if any(sign < 0 for sign, status in zip(signs, statuses) if status == "ok"):
            text += " [regret negative: exponent of −regret]"
        return text

    for layer in layers:
        for scale in ("layer", "neuron"):
            lines.append(f"| {layer} | {scale} | " + " | ".join(
                exponent_cell(summary[opt]["regret_exponents"][layer], scale) for opt in optimizers) + " |")
    lines.append("\nFit status counts at neuron scale (a dead neuron has zero regret; regret can be negative):\n")
    for opt in optimizers:
        counts = {layer: summary[opt]["regret_exponents"][layer]["neuron_fit_status"] for layer in layers}
        negative = {layer: summary[opt]["regret_exponents"][layer]["neuron_negative_final_regret"] for layer in layers}
        lines.append(f"- {opt}: {counts}; neurons with negative final regret: {negative}")
    missing = {layer: summary[optimizers[0]]["regret_exponents"][layer]["layer_missing"] for layer in layers}
    for layer, reason in missing.items():
        if reason:
            lines.append(f"- layer scale of {layer} not available: {reason.split('; it recorded')[0]}")
    lines.append("\n## Loss minus Taylor optimum at the end of training (layer scale, per round)\n")
    lines.append("| layer | " + " | ".join(optimizers) + " |\n|---|" + "---|" * len(optimizers))
    for layer in layers:
        lines.append(f"| {layer} | " + " | ".join(
            _cell(summary[opt]["regret_exponents"][layer]["final_gap_average_loss_minus_taylor_optimum"])
            for opt in optimizers) + " |")
    if all("exploration" in summary[opt] for opt in optimizers):
        lines.append("\n## Exploration of activation configurations\n")
        lines.append("| metric | " + " | ".join(optimizers) + " |\n|---|" + "---|" * len(optimizers))
        for key, label in (("mean_min_hamming_normalized", "mean min Hamming distance to earlier configs / (D·M)"),
                           ("mean_switch_proportion", "mean switches per point / (M·(N−1))"),
                           ("mean_finite_log_volume", "mean finite log-volume (top-k singular values)"),
                           ("units_with_zero_log_volume", "units with log-volume −inf"),
                           ("top_log_volume_mean", f"mean log-volume of the top {TOP_NEURONS} units")):
            lines.append(f"| {label} | " + " | ".join(_cell(summary[opt]["exploration"][key]) for opt in optimizers)
                         + " |")
        per_layer = summary[optimizers[0]]["exploration"].get("per_layer", {})
        if per_layer:
            lines.append("\nPer layer, mean finite log-volume / mean log-volume of the layer's top units:\n")
            lines.append("| layer | units (top) | " + " | ".join(optimizers) + " |\n|---|---|" + "---|" * len(optimizers))
            for layer, record in per_layer.items():
                cells = []
                for opt in optimizers:
                    entry = summary[opt]["exploration"].get("per_layer", {}).get(layer)
                    cells.append("n/a" if entry is None else
                                 f"{_cell(entry['mean_finite_log_volume'])} / {_cell(entry['top_log_volume_mean'])}")
                lines.append(f"| {layer} | {record['units']} ({record['top_units']}) | " + " | ".join(cells) + " |")
    lines.append("\n## Figures\n")
    for path in figures_written:
        lines.append(f"![{pathlib.Path(path).stem}]({pathlib.Path(path).name})\n")
    return "\n".join(lines) + "\n"


def write_report(runs, output_dir, command: str, dpi: int = 150) -> dict:
    """Summary JSON, figures and README.md of analyzed runs (a folder or a list, see `load_analyses`)."""
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    analyses = load_analyses(runs)
    summary = claims(analyses)
    by_length = verdicts_by_length(analyses)
    questions = open_questions.open_questions(analyses)
    written = figures(analyses, output_dir, dpi=dpi, questions=questions)
    (output_dir / "summary.json").write_text(json.dumps(
        {"command": command, "runs": run_rows(analyses), "claims": claim_rows(summary), "optimizers": summary,
         "verdicts_by_length": {str(length): rows for length, rows in by_length.items()},
         "open_questions": questions}, indent=1))
    (output_dir / "README.md").write_text(f"# {pathlib.Path(output_dir).name}: measured\n\n"
                                          + markdown(summary, analyses, command, written, by_length)
                                          + "\n".join(open_question_lines(questions)))
    return summary


def _interval(correlation: dict) -> str:
    if correlation["rho"] is None:
        return f"n/a ({correlation['n']} runs; at least {open_questions.MIN_RUNS} needed)"
    low, high = correlation["interval"]
    bounds = "n/a" if low is None else f"{low:.2f} to {high:.2f}"
    return f"{correlation['rho']:.2f} (95% bootstrap interval {bounds}; p = {correlation['p_value']:.2g}, {correlation['n']} runs)"


def open_question_lines(questions: dict) -> list[str]:
    """Markdown: the open questions' numbers (`open_questions.open_questions`)."""
    lines = ["## What the paper left open\n", "Is exploration needed for a low loss? Spearman's ρ between each run's "
             "exploration metric and its final-epoch loss, across every run here (a negative ρ: runs that explore "
             "more end lower):\n", "| metric | ρ |", "|---|---|"]
    lines += [f"| {name} | {_interval(entry['correlation'])} |" for name, entry in questions["exploration_vs_loss"].items()]
    if questions["dead_units"]:
        lines += ["", "Dead units (off on every probe point at the last record; per seed), when the count "
                  "settled, and the switch proportion over all units vs over the units alive at the end:\n",
                  "| group | dead at the end | per layer | settled by epoch | switches (all) | switches (alive) |",
                  "|---|---|---|---|---|---|"]
        for group, entry in questions["dead_units"].items():
            per_layer = "; ".join(f"{layer} {counts}" for layer, counts in entry["final_dead_per_layer"].items())
            switches = [[None if v is None else round(float(v), 4) for v in entry[key]]
                        for key in ("switch_proportion_all", "switch_proportion_alive")]
            lines.append(f"| {group} | {entry['final_dead']} of {entry['units']} | {per_layer} | "
                         f"{entry['dead_by_epoch']} | {switches[0]} | {switches[1]} |")
    layers = questions["layer_exploration"]
    if layers:
        names = list(next(iter(layers.values())))
        lines += ["", "Early and late layers: mean finite log-volume (share of units with a finite one), mean over "
                  "seeds:\n", "| group | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for group, entry in layers.items():
            cells = [("n/a" if entry.get(name, {}).get("mean_finite_log_volume") is None else
                      f"{entry[name]['mean_finite_log_volume']:.3g} ({entry[name]['finite_share']:.0%})") for name in names]
            lines.append(f"| {group} | " + " | ".join(cells) + " |")
    lines += ["", f"Does exploration end before the loss stops falling? Per seed, the epoch after which the min Hamming "
              f"distance stays below {open_questions.EXPLORATION_END_SHARE:.0%} of its peak (both after the first "
              "record made in training, whose distance is the move away from the initialization), and the first epoch "
              f"within {open_questions.LOSS_PLATEAU_TOLERANCE:.0%} of the final loss:\n",
              "| group | exploration ends (epoch) | loss plateau (epoch) |", "|---|---|---|"]
    for group, ends in questions["exploration_end"].items():
        lines.append(f"| {group} | {[end['exploration_ends'] for end in ends]} | {[end['loss_plateau'] for end in ends]} |")
    return lines + [""]
