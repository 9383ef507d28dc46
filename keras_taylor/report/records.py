"""Run records: the analyses a report reads, and the small records results/<task>/runs/ keeps.

`load_analyses` reads analysis.json files and run records alike and groups them by optimizer
and rate. A run record (`run_record`, `write_run_record`) is an analysis without its per-round
losses, which become their mean and 100 block means; `existing_run_record` tells whether a run
need not be redone. The other functions read either form: the `*_from_json` ones rebuild the
analysis's result types. NumPy only.
"""

import dataclasses
import json
import pathlib
import types

import numpy as np

from keras_taylor.experiments import trained_epochs
from keras_taylor.storage import atomic_write
from keras_taylor.analysis import GrowthFit, NeuronRegretBand, RegretCurve, SolverDiagnostics, fit_growth


_OPTIMIZER_ORDER = ("sgd", "momentum", "rmsprop", "adam", "signsgd")


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


def analyzed_layers(analyses: dict) -> list[str]:
    """The analyzed layers, in model order when the run's Taylor manifest is at hand."""
    first = next(iter(analyses.values()))[0]
    names = list(first.get("layers", {}))
    manifest_path = pathlib.Path(first.get("path", "")) / "taylor" / "manifest.json"
    if manifest_path.exists():
        layers = json.loads(manifest_path.read_text()).get("model", {}).get("config", {}).get("layers", [])
        order = {(layer.get("name") or layer.get("config", {}).get("name")): i for i, layer in enumerate(layers)}
        names.sort(key=lambda name: (order.get(name, len(order)), name))
    return names


def _binned_losses(analysis: dict) -> tuple[np.ndarray, np.ndarray]:
    """The per-round training loss averaged in 100 equal blocks of rounds: `(block centers, means)`."""
    rounds = analysis["rounds"]
    if "block_loss" in rounds:  # a run record
        edges, means = np.asarray(rounds["block_edges"]), np.asarray(rounds["block_loss"])
    else:
        edges, means = loss_blocks(rounds["loss"])
    return (edges[:-1] + edges[1:]) / 2, means


def round_count(analysis: dict) -> int:
    """How many rounds an analysis recorded (a run record keeps the count, an analysis.json the
    per-round losses)."""
    rounds = analysis["rounds"]
    return rounds["count"] if "count" in rounds else len(rounds["loss"])


def losses_by_epoch(analysis: dict) -> tuple[np.ndarray, np.ndarray]:
    """`_binned_losses` against training progress in epochs (the recorded rounds are spread evenly
    over training: every k-th step)."""
    centers, means = _binned_losses(analysis)
    return centers * trained_epochs(analysis["run"]) / round_count(analysis), means


def run_rows(analyses: dict) -> list[dict]:
    """One row per run: the settings that tell runs apart and the final training loss (and accuracy)."""
    rows = []
    for runs in analyses.values():
        for run in runs:
            config, history = run["run"]["config"], run.get("history") or {}
            row = {"task": config["task"], "optimizer": config["optimizer"],
                   "learning_rate": _learning_rate(config), "seed": config["seed"], "epochs": trained_epochs(run["run"]),
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
