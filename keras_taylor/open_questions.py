"""What the paper left open, measured across runs: is exploration needed for a low loss, where and
when does exploration happen, and how many units die.

Reads the same analyses as `keras_taylor.report` (`{group: [analysis or run record per seed]}`,
`report.load_analyses`) and returns JSON-ready numbers; `report` writes them and draws them.
"""

import warnings

import numpy as np
import scipy.stats

# The paper's three exploration metrics as one number per run, as (key in `report.claims`, name, how a
# run's analysis.json "exploration" entry gives it): the claims, the by-length figure and the
# correlations with the loss all read them here.
EXPLORATION_METRICS = (
    ("mean_min_hamming_normalized", "mean min Hamming distance (normalized)",
     lambda e: float(np.mean([v for v in e["min_hamming_normalized"][1:] if v is not None]))),
    ("mean_switch_proportion", "mean switch proportion", lambda e: e["switches"]["mean_finite"]),
    ("mean_finite_log_volume", "mean finite log-volume", lambda e: e["log_volume"]["mean_finite"]),
)
# Fewer runs than this give no rank correlation.
MIN_RUNS = 4
# Exploration "ends" when the min Hamming distance to the past stays below this share of its peak.
EXPLORATION_END_SHARE = 0.1
# The loss "stops falling" at the first epoch within this relative distance of the final epoch's loss.
LOSS_PLATEAU_TOLERANCE = 0.01


def _explored(analyses: dict):
    """`(group, run)` of every run with exploration metrics."""
    return [(group, run) for group, runs in analyses.items() for run in runs
            if "min_hamming_normalized" in run.get("exploration", {})]


def rank_correlation(x, y, *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> dict:
    """Spearman's ρ of paired values, with a percentile bootstrap interval over the pairs.

    Returns:
        `{"rho", "interval": [low, high], "p_value", "n"}`; rho None for fewer than `MIN_RUNS` pairs
        or a constant variable.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < MIN_RUNS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"rho": None, "interval": [None, None], "p_value": None, "n": int(len(x))}
    result = scipy.stats.spearmanr(x, y)

    def statistic(first, second, axis=-1):
        """Spearman's ρ of every resample at once: Pearson's r of the ranks (ties averaged, as spearmanr)."""
        first, second = (scipy.stats.rankdata(values, axis=axis) for values in (first, second))
        first = first - first.mean(axis=axis, keepdims=True)
        second = second - second.mean(axis=axis, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):  # a resample with one distinct value has no ρ
            return (first * second).sum(axis) / np.sqrt((first ** 2).sum(axis) * (second ** 2).sum(axis))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        interval = scipy.stats.bootstrap((x, y), statistic, paired=True, vectorized=True, n_resamples=resamples,
                                         confidence_level=confidence, method="percentile",
                                         random_state=np.random.default_rng(seed)).confidence_interval
    bounds = [None if not np.isfinite(bound) else float(bound) for bound in (interval.low, interval.high)]
    return {"rho": float(result.statistic), "interval": bounds, "p_value": float(result.pvalue), "n": int(len(x))}


def exploration_vs_loss(analyses: dict) -> dict:
    """Per exploration metric: each run's value against its final-epoch loss, and their rank correlation.

    Returns:
        `{metric: {"runs": [{"group", "seed", "value", "final_loss"}], "correlation": rank_correlation}}`.
    """
    result = {}
    for _, name, read in EXPLORATION_METRICS:
        points = [{"group": group, "seed": run["run"]["config"]["seed"], "value": read(run["exploration"]),
                   "final_loss": run["run"]["final_epoch_loss"]} for group, run in _explored(analyses)]
        result[name] = {"runs": points, "correlation": rank_correlation(
            [p["value"] if p["value"] is not None else np.nan for p in points], [p["final_loss"] for p in points])}
    return result


def dead_units(analyses: dict) -> dict:
    """Per group: the units dead on the whole probe set at the last record (per layer), when they died,
    and each exploration metric over all units and over the units alive at the end.

    A unit counts as dead at a record when it is off on every probe point then; "died by epoch"
    is the first record's epoch from which the dead count stays at its final value. The paper's
    definitions count a dead unit as not exploring (its column is constant from its death on);
    "without" them is the analysis's "alive_at_end" entry, the metrics recomputed over the units
    alive at the last record (None when every unit is dead, or for an analysis made before it was
    computed).

    Returns:
        `{group: {"final_dead": [per seed], "final_dead_per_layer": {layer: [per seed]},
        "dead_by_epoch": [per seed], "units": M, "metrics": {metric name: {"all": [per seed],
        "alive": [per seed]}}}}` for the runs whose analysis counted dead units.
    """
    result = {}
    for group, run in _explored(analyses):
        exploration = run["exploration"]
        if "dead_units" not in exploration:
            continue
        total = np.asarray(exploration["dead_units"]["total"])
        settled = int(np.flatnonzero(total != total[-1])[-1] + 1) if np.any(total != total[-1]) else 0
        entry = result.setdefault(group, {
            "units": exploration["num_units"], "final_dead": [], "final_dead_per_layer": {}, "dead_by_epoch": [],
            "metrics": {name: {"all": [], "alive": []} for _, name, _ in EXPLORATION_METRICS}})
        entry["final_dead"].append(int(total[-1]))
        for layer, counts in exploration["dead_units"]["per_layer"].items():
            entry["final_dead_per_layer"].setdefault(layer, []).append(int(counts[-1]))
        entry["dead_by_epoch"].append(int(exploration["epochs"][settled]) + 1 if total[-1] else None)
        alive = exploration.get("alive_at_end")
        for _, name, read in EXPLORATION_METRICS:
            entry["metrics"][name]["all"].append(read(exploration))
            entry["metrics"][name]["alive"].append(read(alive) if alive and alive["units"] else None)
    return result


def layer_exploration(analyses: dict) -> dict:
    """Per group and layer (model order): the mean finite log-volume and the share of the layer's units
    with a finite one, mean over seeds: whether early and late layers explore alike."""
    result = {}
    for group, run in _explored(analyses):
        for layer, record in run["exploration"].get("per_layer", {}).items():
            volumes = record["log_volume"]
            entry = result.setdefault(group, {}).setdefault(layer, {"mean_finite_log_volume": [], "finite_share": []})
            entry["mean_finite_log_volume"].append(volumes["mean_finite"])
            entry["finite_share"].append((volumes["count"] - volumes["num_infinite"]) / volumes["count"]
                                         if volumes["count"] else None)
    return {group: {layer: {key: _mean_of(values) for key, values in entry.items()} for layer, entry in layers.items()}
            for group, layers in result.items()}


def _mean_of(values) -> float | None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def exploration_end(analysis: dict) -> dict:
    """When a run's exploration ends and when its loss stops falling, in epochs.

    Exploration ends after the last record whose min Hamming distance to all earlier records is at
    least `EXPLORATION_END_SHARE` of the largest such distance, both taken over the records after
    the first one made in training (the first one's distance is the move away from the
    initialization, which dwarfs the rest); the loss stops falling at the first epoch whose loss
    is within `LOSS_PLATEAU_TOLERANCE` (relative) of the final epoch's.

    Returns:
        `{"exploration_ends": epochs or None, "loss_plateau": epochs or None}`.
    """
    exploration, losses = analysis.get("exploration", {}), (analysis.get("history") or {}).get("loss", [])
    ends = None
    distances = np.asarray([np.nan if v is None else v for v in exploration.get("min_hamming_normalized", [])[2:]])
    if distances.size and np.any(np.isfinite(distances)) and "epochs" in exploration:
        exploring = np.flatnonzero(distances >= EXPLORATION_END_SHARE * np.nanmax(distances))
        ends = int(exploration["epochs"][2:][exploring[-1]]) + 1
    plateau = None
    if losses:
        final = losses[-1]
        plateau = int(np.flatnonzero(np.abs(np.asarray(losses) - final) <= LOSS_PLATEAU_TOLERANCE * abs(final))[0]) + 1
    return {"exploration_ends": ends, "loss_plateau": plateau}


def open_questions(analyses: dict) -> dict:
    """Everything above, JSON-ready: `exploration_vs_loss`, `dead_units`, `layer_exploration` and, per
    group, each seed's `exploration_end`."""
    return {"exploration_vs_loss": exploration_vs_loss(analyses), "dead_units": dead_units(analyses),
            "layer_exploration": layer_exploration(analyses),
            "exploration_end": {group: [exploration_end(run) for run in runs] for group, runs in analyses.items()}}
