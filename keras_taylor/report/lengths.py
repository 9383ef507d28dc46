"""Verdicts by training length: the same runs judged on their first E epochs.

`prefix_analysis` cuts an analysis (or run record) to a prefix of its run, fitting the regret
growth again on the grid points within it; `verdicts_by_length` judges every claim at each length
all the runs measured (`lengths_measured`), and `quantities_by_length` holds the numbers of the
by-length figure. NumPy only.
"""

import numpy as np

from keras_taylor import open_questions
from keras_taylor.experiments import trained_epochs
from keras_taylor.analysis import band_fit_summary, fit_growth
from keras_taylor.report.paper_claims import claim_rows, claims, summary_mean
from keras_taylor.report.records import RoundLossSummary, band_from_json, curve_from_json


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
    no exploration); the final-epoch loss is that epoch's, and the epoch log ("history") stops
    there. A record keeps the per-round losses as 100 block means: its prefix's mean loss averages
    the whole blocks within the prefix.

    Raises:
        ValueError: `epochs` is not between 1 and the run's epochs, or the history lacks that epoch.
    """
    run_epochs = trained_epochs(analysis["run"])
    if not 1 <= epochs <= run_epochs:
        raise ValueError(f"A prefix needs 1 ≤ epochs ≤ {run_epochs} (the run's). Received: epochs={epochs}")
    if epochs == run_epochs:
        return analysis
    history = analysis.get("history") or {}
    if len(history.get("loss", [])) < epochs:
        raise ValueError(f"The analysis's history has no loss for epoch {epochs}: {len(history.get('loss', []))} epochs.")
    cut = {key: value for key, value in analysis.items() if key not in ("exploration", "exploration_by_length")}
    cut["history"] = {key: values[:epochs] for key, values in history.items()}
    cut["run"] = {**analysis["run"], "final_epoch_loss": history["loss"][epochs - 1],
                  "config": {**analysis["run"]["config"], "epochs": epochs}}
    if "epochs_trained" in analysis["run"]:
        cut["run"]["epochs_trained"] = epochs
    cut["exploration"] = analysis.get("exploration_by_length", {}).get(str(epochs), {})
    if "rounds" in analysis:
        rounds = RoundLossSummary.of(analysis)
        last = int(round(rounds.count * epochs / run_epochs))
        cut["rounds"] = rounds.first(last).to_record()
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
    full = {trained_epochs(run["run"]) for run in runs}
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
                    values[name].append(summary_mean({group: entry}, group, *keys))
                values[names[-1]].append(_layer_exponent_mean(entry))
            for name in names:
                result[name].setdefault(group, []).append(
                    (np.asarray(lengths, np.float64), np.array([np.nan if v is None else v for v in values[name]])))
    return result
