"""The paper's claims as numbers, and a verdict on each.

`claims` measures, per group of runs, what the claims are about: the regret growth exponents per
layer and scale, the exploration metrics (over all units and per layer) and the losses, as mean ±
std over seeds; `claim_rows` judges each claim from those numbers. NumPy only.
"""

import numpy as np

from keras_taylor import open_questions
from keras_taylor.exploration import TOP_NEURONS, TOP_SHARE, top_count
from keras_taylor.report.records import RoundLossSummary, analyzed_layers, optimizer_of


def _mean_std(values) -> dict:
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], np.float64)
    if values.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(values.mean()), "std": float(values.std()), "n": int(values.size)}


def claims(analyses: dict) -> dict:
    """The paper's claims, measured: exponents, exploration metrics and final losses per optimizer."""
    summary = {}
    for optimizer, runs in analyses.items():
        entry = {"seeds": [run["run"]["config"]["seed"] for run in runs]}
        entry["final_epoch_loss"] = _mean_std([run["run"]["final_epoch_loss"] for run in runs])
        entry["average_training_loss"] = _mean_std([RoundLossSummary.of(run).mean for run in runs if "rounds" in run])
        accuracies = [(run.get("history") or {}).get("accuracy") for run in runs]
        if any(accuracies):  # the convnet logs its training accuracy every epoch
            entry["final_training_accuracy"] = _mean_std([values[-1] for values in accuracies if values])
        exponents = {}
        for layer in analyzed_layers(analyses):
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
                "top_log_volume_mean": _mean_std([_top_mean(e["log_volume"], TOP_NEURONS) for e in explorations]),
                "per_layer": per_layer_exploration(explorations),
                "log_volume_k": explorations[0]["log_volume_k"],
                "units": explorations[0]["num_units"], "probe_points": explorations[0]["num_points"],
            }
        summary[optimizer] = entry
    return summary


def per_layer_exploration(explorations) -> dict:
    """Each layer's log-volumes summarized across seeds, with the layer's own top units.

    Args:
        explorations: The "exploration" records of one optimizer's analysis.json files (one per
            seed), each with "per_layer": `{layer: {"log_volume": summary}}`, the summary of the
            layer's units' log-volumes (`keras_taylor.experiments.log_volume_summary`).

    Returns:
        `{layer: {"units", "top_units", "mean_finite_log_volume", "units_with_zero_log_volume",
        "top_log_volume_mean"}}`, the last three as mean/std/n over seeds. `top_log_volume_mean` is
        the mean of the layer's `top_count(units)` largest finite log-volumes; a seed with fewer
        finite units than that counts as missing (n excludes it). The layers are the first record's;
        a layer no seed measured is left out.
    """
    per_layer = {}
    for layer in explorations[0].get("per_layer", {}):
        # Analyses from before per-layer top values were kept have a layer's summary only: left out.
        records = [e["per_layer"][layer] for e in explorations
                   if "top_finite" in e["per_layer"].get(layer, {}).get("log_volume", {})]
        if not records:
            continue
        units = records[0]["log_volume"]["count"]
        per_layer[layer] = {
            "units": units, "top_units": top_count(units),
            "mean_finite_log_volume": _mean_std([r["log_volume"]["mean_finite"] for r in records]),
            "units_with_zero_log_volume": _mean_std([r["log_volume"]["num_infinite"] for r in records]),
            "top_log_volume_mean": _mean_std([_top_mean(r["log_volume"], top_count(units)) for r in records]),
        }
    return per_layer


def _top_mean(summary: dict, count: int) -> float:
    """Mean of the `count` largest finite log-volumes of a `log_volume_summary` (NaN: fewer are finite).

    Raises:
        ValueError: the summary keeps fewer than `count` top values while more are finite.
    """
    top = summary["top_finite"]
    finite = summary["count"] - summary["num_infinite"]
    if len(top) < min(count, finite):
        raise ValueError(f"The log-volume summary keeps the top {len(top)} finite values; {count} are asked for.")
    return float(np.mean(top[len(top) - count:])) if finite >= count else float("nan")


def _status_counts(records) -> dict:
    counts = {}
    for record in records:
        for status, count in record["fit_status_counts"].items():
            counts[status] = counts.get(status, 0) + count
    return counts


def summary_mean(summary: dict, optimizer: str, *keys) -> float | None:
    """The mean over seeds that `claims` keeps at `summary[optimizer][keys...]`; None where it has none."""
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
        values = [(name, summary_mean(summary, first, "exploration", key),
                   summary_mean(summary, second, "exploration", key)) for key, name in metrics]
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
    adam_top, rms_top = (summary_mean(summary, opt, "exploration", "top_log_volume_mean") for opt in ("adam", "rmsprop"))
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
        losses = {opt: summary_mean(summary, opt, "final_epoch_loss") for opt in (group, "rmsprop", "adam")}
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
