"""The report's README.md text: the runs' scale against the paper's, the claims with their verdicts,
the verdicts by training length, tables per optimizer and layer, the figures and the open questions.
"""

import pathlib

from keras_taylor import open_questions
from keras_taylor.experiments import trained_epochs
from keras_taylor.report.paper_claims import TOP_NEURONS, claim_rows
from keras_taylor.report.records import analyzed_layers


def _cell(stats: dict, digits: int = 3) -> str:
    if stats is None or stats.get("mean") is None:
        return "n/a"
    return f"{stats['mean']:.{digits}g} ± {stats['std']:.2g} (n={stats['n']})"


# The length of the paper's experiments (Balduzzi et al. 2017, Sec. 4): the autoencoder on the 60,000
# MNIST training images, its exploration computed over the first 50 epochs; the convnet on the 50,000
# CIFAR-10 training images until training accuracy passes 99%. 50 epochs stand in for the latter.
PAPER_SCALE = {"autoencoder": {"examples": 60000, "epochs": 50}, "convnet": {"examples": 50000, "epochs": 50}}


def scale_statement(task: str, examples: int, epochs: int, longest: int | None = None) -> tuple[bool, str]:
    """Whether runs of `examples` × `epochs` are at the paper's length, and a sentence that says so.

    Args:
        task: The paper task ("autoencoder" or "convnet"; another has no counterpart in the paper).
        examples: Training examples per epoch.
        epochs: The shortest run's epochs: what the verdict on the length is judged on.
        longest: The longest run's epochs, where runs differ in length (stopped at an accuracy plateau).

    Returns:
        `(at_paper_scale, sentence)`; below the paper's length the sentence says that the verdicts
        describe these runs and do not test the paper's claims.
    """
    paper = PAPER_SCALE.get(task)
    scale = f"{examples:,} training examples × {epochs} epoch{'s' if epochs != 1 else ''}"
    if longest is not None and longest > epochs:
        scale = f"{examples:,} training examples × {epochs}–{longest} epochs (the shortest run: {epochs})"
    if paper is None:
        return False, f"Scale: {scale} (task {task!r} has no counterpart in the paper)."
    if examples >= paper["examples"] and epochs >= paper["epochs"]:
        return True, f"Scale: {scale}, the paper's length ({paper['examples']:,} × {paper['epochs']})."
    return False, (
        f"**Scale: {scale}, against the paper's {paper['examples']:,} × {paper['epochs']}.** This is a first "
        "look: the verdicts below describe these runs and do not test the paper's claims, which are about "
        "the paper's scale (`--data_dir`, `--limit`, `--epochs` and `--seeds` set it)."
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
    layers = analyzed_layers(analyses)
    first = next(iter(analyses.values()))[0]["run"]
    trained = {group: [trained_epochs(run["run"]) for run in runs] for group, runs in analyses.items()}
    shortest = min(min(epochs) for epochs in trained.values())
    longest = max(max(epochs) for epochs in trained.values())
    _, statement = scale_statement(first["config"]["task"], int(first["examples"]), shortest, longest)
    lines = [statement + "\n", f"Regenerate with:\n\n```bash\n{command}\n```\n"]
    epochs = f"{first['config']['epochs']} epochs"
    if first["config"].get("plateau_patience"):
        epochs = (f"trained until the training accuracy had not reached a new maximum for "
                  f"{first['config']['plateau_patience']} epochs (at most {first['config']['epochs']}; epochs trained: "
                  + ", ".join(f"{group} {values}" for group, values in trained.items()) + ")")
    lines.append(f"Data: {first['data']}; {first['examples']} training examples; "
                 f"{epochs}; seeds per optimizer: "
                 + ", ".join(f"{opt} {summary[opt]['seeds']}" for opt in optimizers) + ".\n")
    lines.append("## The paper's claims, measured\n\n| claim | measured | verdict |\n|---|---|---|")
    for row in claim_rows(summary):
        lines.append(f"| {row['claim']} | {row['measured']} | {row['verdict']} |")
    lines.append("")
    lines += length_table(by_length or {})
    accuracy = any("final_training_accuracy" in summary[opt] for opt in optimizers)
    lines.append("## Training loss\n\n| optimizer | final-epoch loss | average per-round loss |"
                 + (" final-epoch training accuracy |\n|---|---|---|---|" if accuracy else "\n|---|---|---|"))
    for opt in optimizers:
        lines.append(f"| {opt} | {_cell(summary[opt]['final_epoch_loss'], 4)} | "
                     f"{_cell(summary[opt]['average_training_loss'], 4)} |"
                     + (f" {_cell(summary[opt].get('final_training_accuracy'), 4)} |" if accuracy else ""))
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
        names = [name for _, name, _ in open_questions.EXPLORATION_METRICS]
        lines += ["", "Dead units (off on every probe point at the last record; per seed), when the count "
                  "settled, and each exploration metric over all units / over the units alive at the end only "
                  "(the paper's definitions count a dead unit as not exploring):\n",
                  "| group | dead at the end | per layer | settled by epoch | " + " | ".join(names) + " |",
                  "|---|---|---|---|" + "---|" * len(names)]
        for group, entry in questions["dead_units"].items():
            per_layer = "; ".join(f"{layer} {counts}" for layer, counts in entry["final_dead_per_layer"].items())
            cells = [" / ".join("[" + ", ".join("n/a" if v is None else f"{v:.4g}" for v in entry["metrics"][name][part])
                                + "]" for part in ("all", "alive")) for name in names]
            lines.append(f"| {group} | {entry['final_dead']} of {entry['units']} | {per_layer} | "
                         f"{entry['dead_by_epoch']} | " + " | ".join(cells) + " |")
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
