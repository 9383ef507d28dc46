"""The paper's experiments: train with the recorders, analyze the run, summarize across runs.

Settings travel as frozen config objects; the binaries in bin/ only build them
from flags. A run directory holds `config.json`, the TaylorRecorder run in
`taylor/`, the ActivationRecorder run in `activations/`, the Keras epoch log
`history.csv`, and `done.json` once training finished; a rerun with the same
config reuses it, an unfinished one (e.g. interrupted with Ctrl-C) is redone.
"""

import csv
import dataclasses
import json
import pathlib
import shutil
import time

import numpy as np

TASKS = ("autoencoder", "convnet")
# A run directory's recordings: the TaylorRecorder's and the ActivationRecorder's run directories.
TAYLOR_DIR = "taylor"
ACTIVATIONS_DIR = "activations"

# Appendix A.5 of the paper. SGD's fixed rates were chosen by `keras-taylor-sweep` (see
# results/<task>/sgd_sweep.json): the rate with the lowest training loss after its sweep.
PAPER_LEARNING_RATES = {
    ("autoencoder", "rmsprop"): 1e-3,
    ("autoencoder", "adam"): 1e-2,
    ("convnet", "rmsprop"): 5e-4,
    ("convnet", "adam"): 2e-4,
}
SWEPT_LEARNING_RATES = {
    ("autoencoder", "sgd"): 8.0,
    ("convnet", "sgd"): 0.1,
}
_DEFAULT_DATASETS = {"autoencoder": "embedded_mnist", "convnet": "cifar10"}
_BATCH_SIZES = {"autoencoder": 64, "convnet": 128}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run of a paper task with its recorders.

    Attributes:
        task: "autoencoder" (MNIST, MSE, batch 64) or "convnet" (CIFAR-10, cross-entropy, batch 128).
        optimizer: "sgd", "momentum", "rmsprop", "adam", "signsgd" or any Keras optimizer name.
        learning_rate: None for the paper's rate (SGD: the swept rate).
        epochs: Training epochs.
        seed: Seed of the initial weights, the shuffle and the neuron/unit samples.
        dataset: None for the task's default ("embedded_mnist" for the autoencoder, so it runs
            offline; "cifar10" for the convnet), else "mnist", "fashion_mnist", "cifar10", ...
        data_dir: Local copies of the dataset (IDX files / image folder / .tar.gz); None uses
            tensorflow-datasets (or the embedded digits).
        limit: Train on the first `limit` examples only.
        batch_size: None for the paper's batch size.
        taylor: Record Taylor statistics (TaylorRecorder).
        scales: The scales the TaylorRecorder records.
        layer_scale_layers: Layers recorded at layer scale (None: all recorded layers).
        neurons_per_layer: Neurons sampled per layer for the neuron scale (None: all).
        taylor_every: Record every k-th step (the sums need every step for exact regret).
        taylor_examples: For cross-entropy, store the Taylor data of the first k examples of
            each recorded minibatch only (None: all).
        activations: Record activation configurations (ActivationRecorder).
        activation_records: About how many configurations to record over training (evenly
            spaced in steps, plus the initial one); the log-volume needs more than k = 50.
        probe_size: Training points in the probe set of the ActivationRecorder.
        max_units_per_layer: Units recorded per layer at most (the paper's 10,000).
        verbose: Keras progress-bar mode for `fit`.
        plateau_patience: If set, stop once the training accuracy has not reached a new
            maximum for this many epochs (Keras's EarlyStopping; the paper trains the
            convnet until its training accuracy stops rising); `epochs` is then the cap.
            The convnet only (the autoencoder has no accuracy).
        storage_budget_bytes: The TaylorRecorder's `storage_budget_bytes`.
    """

    task: str = "autoencoder"
    optimizer: str = "rmsprop"
    learning_rate: float | None = None
    epochs: int = 1
    seed: int = 0
    dataset: str | None = None
    data_dir: str | None = None
    limit: int | None = None
    batch_size: int | None = None
    taylor: bool = True
    scales: tuple = ("network", "layer", "neuron")
    layer_scale_layers: tuple | None = None
    neurons_per_layer: int | None = 50
    taylor_every: int = 1
    taylor_examples: int | None = None
    activations: bool = True
    activation_records: int = 100
    probe_size: int = 10_000
    max_units_per_layer: int = 10_000
    verbose: int = 1
    storage_budget_bytes: int = 4 << 30
    plateau_patience: int | None = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}. Received: task={self.task!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be positive. Received: epochs={self.epochs}")
        if self.taylor_every < 1:
            raise ValueError(f"taylor_every must be positive. Received: taylor_every={self.taylor_every}")
        if self.layer_scale_layers is not None:
            object.__setattr__(self, "layer_scale_layers", tuple(self.layer_scale_layers))
        if self.plateau_patience is not None and (self.plateau_patience < 1 or self.task != "convnet"):
            raise ValueError("plateau_patience (epochs without a new training-accuracy maximum) must be positive, "
                             "and only the convnet logs an accuracy. "
                             f"Received: plateau_patience={self.plateau_patience}, task={self.task!r}")

    @property
    def resolved_learning_rate(self) -> float:
        """The learning rate this run uses."""
        if self.learning_rate is not None:
            return self.learning_rate
        key = (self.task, self.optimizer.lower())
        if key in PAPER_LEARNING_RATES:
            return PAPER_LEARNING_RATES[key]
        if key in SWEPT_LEARNING_RATES:
            return SWEPT_LEARNING_RATES[key]
        raise ValueError(
            f"No default learning rate for optimizer {self.optimizer!r} on task {self.task!r}: "
            "pass learning_rate."
        )

    @property
    def resolved_batch_size(self) -> int:
        return self.batch_size or _BATCH_SIZES[self.task]

    @property
    def resolved_dataset(self) -> str:
        if self.dataset is not None:
            return self.dataset
        if self.task == "autoencoder" and self.data_dir is not None:
            return "mnist"
        return _DEFAULT_DATASETS[self.task]

    def run_name(self) -> str:
        """`<optimizer>_lr<rate>_seed<seed>`: the run's directory name."""
        return f"{self.optimizer.lower()}_lr{self.resolved_learning_rate:g}_seed{self.seed}"

    def to_json(self) -> dict:
        layer_scale_layers = None if self.layer_scale_layers is None else list(self.layer_scale_layers)
        return {**dataclasses.asdict(self), "scales": list(self.scales), "layer_scale_layers": layer_scale_layers}


def make_optimizer(name: str, learning_rate: float):
    """A Keras optimizer by name; "momentum" is SGD with Nesterov-free momentum 0.9, "signsgd" is SignSGD."""
    import keras  # pylint: disable=import-outside-toplevel

    from keras_taylor.optimizers import SignSGD  # pylint: disable=import-outside-toplevel

    lowered = name.lower()
    if lowered == "momentum":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    if lowered in ("signsgd", "sign_sgd"):
        return SignSGD(learning_rate)
    try:
        return keras.optimizers.get({"class_name": name, "config": {"learning_rate": learning_rate}})
    except ValueError as error:
        raise ValueError(f"Unknown optimizer {name!r}: use a Keras optimizer name, 'momentum' or 'signsgd'.") \
            from error


def load_training_data(config: TrainConfig):
    """`(x, y, description)`: the task's training inputs and targets, as float32 arrays."""
    from keras_taylor import data  # pylint: disable=import-outside-toplevel

    dataset = data.load_dataset(config.resolved_dataset, "train", config.data_dir, limit=config.limit)
    x, y = data.preprocess(dataset, "autoencoder" if config.task == "autoencoder" else "classifier")
    return x, y, dataset.source


def build_model(config: TrainConfig):
    """The task's model, compiled with its loss and the configured optimizer."""
    import keras  # pylint: disable=import-outside-toplevel

    from keras_taylor import models  # pylint: disable=import-outside-toplevel

    if config.task == "autoencoder":
        model, loss, metrics = models.autoencoder(seed=config.seed), "mse", []
    else:  # the paper trains the convnet until training accuracy passes 99%: log it every epoch
        model = models.convnet(seed=config.seed)
        loss, metrics = keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"]
    model.compile(make_optimizer(config.optimizer, config.resolved_learning_rate), loss, metrics=metrics)
    return model


def _finished(run_dir: pathlib.Path, config: TrainConfig) -> bool:
    """Whether `run_dir` finished training with `config` (settings added since then at their defaults)."""
    done = run_dir / "done.json"
    if not done.exists():
        return False
    stored = json.loads(done.read_text())["config"]
    known = {field.name for field in dataclasses.fields(TrainConfig)}
    if set(stored) - known:
        return False
    stored = {**stored, "scales": tuple(stored.get("scales", config.scales))}
    return TrainConfig(**stored).to_json() == config.to_json() and not _missing_recordings(run_dir, config.to_json())


def _missing_recordings(run_dir: pathlib.Path, config: dict) -> list[str]:
    """The recorders' directories a run trained with `config` (`TrainConfig.to_json()`) wrote that
    `run_dir` lacks (e.g. deleted after its analysis)."""
    recorded = {TAYLOR_DIR: config.get("taylor", True), ACTIVATIONS_DIR: config.get("activations", True)}
    return [name for name, on in recorded.items() if on and not (run_dir / name).is_dir()]


def drop_taylor_recording(run_dir) -> None:
    """Deletes a run's Taylor recording (gigabytes at the paper's length) once its analysis is kept
    elsewhere; the run then counts as unfinished (`train` redoes it, `analyze_run` refuses it)."""
    taylor_dir = pathlib.Path(run_dir) / TAYLOR_DIR
    if taylor_dir.exists():
        shutil.rmtree(taylor_dir)


def train(config: TrainConfig, run_dir) -> pathlib.Path:
    """Trains one run with its recorders into `run_dir` (reused if already finished).

    Returns:
        The run directory.
    """
    import keras  # pylint: disable=import-outside-toplevel

    from keras_taylor.callbacks import ActivationRecorder, TaylorRecorder  # pylint: disable=import-outside-toplevel
    from keras_taylor import schedules  # pylint: disable=import-outside-toplevel

    run_dir = pathlib.Path(run_dir)
    if _finished(run_dir, config):
        print(f"{run_dir}: finished with the same config, reused.")
        return run_dir
    if run_dir.exists():
        shutil.rmtree(run_dir)  # unfinished (interrupted): redo it from scratch
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_json(), indent=2))
    keras.utils.set_random_seed(config.seed)
    x, y, description = load_training_data(config)
    model = build_model(config)
    batch_size = config.resolved_batch_size
    callbacks = [keras.callbacks.CSVLogger(str(run_dir / "history.csv"))]
    if config.taylor:
        callbacks.append(TaylorRecorder(
            run_dir / TAYLOR_DIR, neurons=config.neurons_per_layer, scales=config.scales,
            schedule=schedules.every_k_steps(config.taylor_every), seed=config.seed, batch_size=batch_size,
            data_description={"source": description, "examples": len(x)}, verbose=config.verbose,
            examples_per_round=config.taylor_examples, storage_budget_bytes=config.storage_budget_bytes,
            layer_scale_layers=config.layer_scale_layers,
        ))
    if config.activations:
        probe = x[np.random.default_rng(config.seed).permutation(len(x))[: config.probe_size]]
        total_steps = config.epochs * -(-len(x) // batch_size)
        every = max(1, total_steps // config.activation_records)
        callbacks.append(ActivationRecorder(
            run_dir / ACTIVATIONS_DIR, probe, schedules.every_k_steps(every, start=every - 1),
            max_units_per_layer=config.max_units_per_layer, seed=config.seed,
        ))
    if config.plateau_patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="accuracy", mode="max", min_delta=0.0,
                                                       patience=config.plateau_patience))
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=batch_size, epochs=config.epochs, shuffle=True, verbose=config.verbose,
                        callbacks=callbacks)
    seconds = time.perf_counter() - start
    (run_dir / "done.json").write_text(json.dumps({
        "config": config.to_json(), "train_seconds": seconds, "data": description,
        "final_epoch_loss": float(history.history["loss"][-1]), "examples": len(x),
        "epochs_trained": len(history.history["loss"]),
    }, indent=2))
    return run_dir


def trained_epochs(run: dict) -> int:
    """The epochs a run trained: its `done.json` record's (fewer than configured when it stopped at an
    accuracy plateau; runs finished before that was recorded trained all their configured epochs)."""
    return int(run.get("epochs_trained", run["config"]["epochs"]))


def sweep_learning_rate(config: TrainConfig, rates, output_dir, summary_path=None) -> dict:
    """Trains `config` (recorders off) at each rate; returns and writes the losses and the best rate.

    The summary goes to `summary_path` (default `output_dir/sgd_sweep.json`).

    The score is the mean training loss over the last epoch (Keras's epoch loss).
    """
    output_dir = pathlib.Path(output_dir)
    losses = {}
    for rate in rates:
        run_config = dataclasses.replace(config, learning_rate=float(rate), taylor=False, activations=False)
        run_dir = train(run_config, output_dir / run_config.run_name())
        losses[float(rate)] = json.loads((run_dir / "done.json").read_text())["final_epoch_loss"]
    finite = {rate: loss for rate, loss in losses.items() if np.isfinite(loss)}
    if not finite:
        raise ValueError(f"Every rate of the sweep diverged: {losses}")
    summary = {"task": config.task, "optimizer": config.optimizer, "epochs": config.epochs,
               "dataset": config.resolved_dataset, "limit": config.limit, "seed": config.seed,
               "final_epoch_loss": {f"{rate:g}": loss for rate, loss in losses.items()},
               "best_learning_rate": min(finite, key=finite.get)}
    summary_path = pathlib.Path(summary_path or output_dir / "sgd_sweep.json")
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2))
    return summary


def read_history(run_dir) -> dict:
    """The Keras epoch log of a run: {"epoch": [...], "loss": [...]} and every other metric it logged
    (e.g. "accuracy")."""
    with open(pathlib.Path(run_dir) / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    metrics = [name for name in (rows[0] if rows else {}) if name not in ("epoch", "loss")]
    return {"epoch": [int(row["epoch"]) for row in rows], "loss": [float(row["loss"]) for row in rows],
            **{name: [_logged_number(row[name]) for row in rows] for name in metrics}}


def _logged_number(text: str) -> float | None:
    """A CSVLogger cell: a number, or None where nothing was logged ("NA": no validation data)."""
    try:
        return float(text)
    except ValueError:
        return None


# ------------------------------------------------------------------ analysis


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """What `analyze_run` computes.

    Attributes:
        neurons_per_layer: Neurons per layer for the neuron-scale bands (a fixed sample; None: all recorded).
        grid_points: About this many log-spaced round counts N, taken from the run's checkpoints.
        log_volume_k: Top singular values in the exploration log-volume (the paper's 50).
        fit_fraction: Later share of the grid used by the growth-exponent fits.
        seed: Seed of the neuron sample.
        layer_cg_rtol: Relative residual at which conjugate gradients stops, for layers whose
            Taylor optimum is solved matrix-free from streamed chain factors (the autoencoder's
            first layer); see `analysis.regret_curve`.
    """

    neurons_per_layer: int | None = 50
    grid_points: int = 20
    log_volume_k: int = 50
    fit_fraction: float = 0.5
    seed: int = 0
    layer_cg_rtol: float = 1e-4


def prefix_epochs(epochs: int) -> list[int]:
    """The shorter training lengths at which an analysis also measures a run, for verdicts by length:
    1, 2, 5, 10, 20, 50, ... epochs, those below `epochs`."""
    lengths, decade = [], 1
    while decade < epochs:
        lengths += [step * decade for step in (1, 2, 5) if step * decade < epochs]
        decade *= 10
    return lengths


def _grid(run, points: int) -> np.ndarray:
    """About `points` log-spaced N among the run's checkpoints (always including the last)."""
    from keras_taylor import analysis  # pylint: disable=import-outside-toplevel

    return analysis.nearest_grid(analysis.checkpoint_rounds(run), points)


def _curve_json(curve, fit) -> dict:
    diagnostics = curve.diagnostics
    return {
        "rounds": curve.rounds.tolist(), "cumulative_loss": curve.cumulative_loss.tolist(),
        "cumulative_taylor_optimum": curve.cumulative_taylor_optimum.tolist(), "regret": curve.regret.tolist(),
        "fit": fit.to_json(),
        "solver": {"method": diagnostics.method, "all_converged": bool(np.all(diagnostics.converged)),
                   "ill_conditioned_rounds": curve.rounds[diagnostics.ill_conditioned].tolist(),
                   "max_gradient_norm": float(np.max(diagnostics.gradient_norm)),
                   **({} if diagnostics.solve_seconds is None else
                      {"iterations": diagnostics.iterations.tolist(),
                       "solve_seconds": np.asarray(diagnostics.solve_seconds).tolist()}),
                   **({} if diagnostics.value_error is None else
                      {"value_error": np.asarray(diagnostics.value_error).tolist()})},
    }


def _band_json(band, fits) -> dict:
    from keras_taylor import analysis  # pylint: disable=import-outside-toplevel

    return {
        "neurons": band.neurons.tolist(), "rounds": band.rounds.tolist(),
        "cumulative_loss": band.cumulative_loss.tolist(),
        "cumulative_taylor_optimum": band.cumulative_taylor_optimum.tolist(), "regret": band.regret.tolist(),
        "fits": [fit.to_json() for fit in fits],
        **analysis.band_fit_summary(band.regret, fits),
        "solver_all_converged": bool(all(np.all(curve.diagnostics.converged) for curve in band.curves)),
        **({} if any(curve.diagnostics.value_error is None for curve in band.curves) else
           {"max_value_error": float(max(np.max(curve.diagnostics.value_error) for curve in band.curves))}),
        **({} if any(curve.diagnostics.solve_seconds is None for curve in band.curves) else
           {"solve_seconds": [np.asarray(curve.diagnostics.solve_seconds).tolist() for curve in band.curves]}),
    }


def _summary_of_values(values: np.ndarray, quantiles: int = 101) -> dict:
    """A sorted 1-D array as its quantiles (the JSON keeps figures small, not every point)."""
    finite = np.isfinite(values)
    levels = np.linspace(0, 1, quantiles)
    return {
        "count": int(values.size), "num_infinite": int(np.sum(~finite)),
        "mean_finite": float(values[finite].mean()) if finite.any() else None,
        "quantile_levels": levels.tolist(),
        "quantiles": [None if not np.isfinite(v) else float(v) for v in np.quantile(values, levels, method="lower")],
    }


def log_volume_summary(log_volumes: np.ndarray, top: int) -> dict:
    """Units' log-volumes, sorted ascending, as an analysis keeps them: `_summary_of_values` (count,
    −∞ count, mean of the finite, 101 quantiles) and "top_finite", the `top` largest finite values
    ascending (all of them when fewer are finite): what reports read, in a size that does not grow
    with the number of units (a convnet records 10,000 per layer)."""
    finite = log_volumes[np.isfinite(log_volumes)]
    return {**_summary_of_values(log_volumes), "top_finite": finite[finite.size - min(top, finite.size):].tolist()}


def upgrade_analysis(analysis: dict) -> dict:
    """An analysis or run record in the current schema, from any earlier one (in place; returned).

    Analyses made before `log_volume_summary` kept every unit's sorted log-volume ("log_volume_sorted",
    ascending, None for −∞) next to its summary, for the network and each layer, in "exploration"
    and each "exploration_by_length" entry; each list becomes its summary's "top_finite" (the
    `exploration.TOP_NEURONS` largest of the network's, `exploration.top_count` of a layer's).

    Raises:
        ValueError: a list is not the sorted log-volumes its summary stored beside it summarizes (a
            corrupt record), naming where.
    """
    from keras_taylor import exploration  # pylint: disable=import-outside-toplevel

    def upgrade(entry: dict, top_of, where: str) -> None:
        if "log_volume_sorted" not in entry:
            return
        try:
            values = np.array([-np.inf if value is None else value for value in entry["log_volume_sorted"]], np.float64)
            summary = entry["log_volume"]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{where}: a log-volume list without its summary, or not numbers ({error!r}).") from None
        recomputed = log_volume_summary(values, top_of(values.size))
        differing = [key for key in recomputed if key != "top_finite" and summary.get(key) != recomputed[key]]
        if np.any(np.isnan(values) | np.isposinf(values)) or np.any(values[1:] < values[:-1]) or differing:
            raise ValueError(f"{where}: the stored log-volumes ({values.size}, sorted or not, NaN/+∞ or not) disagree "
                             f"with their summary ({', '.join(differing) or 'no field'} differs).")
        del entry["log_volume_sorted"]
        summary["top_finite"] = recomputed["top_finite"]

    explorations = {"exploration": analysis.get("exploration", {}),
                    **{f"exploration_by_length/{length}": entry
                       for length, entry in analysis.get("exploration_by_length", {}).items()}}
    for where, entry in explorations.items():
        upgrade(entry, lambda units: exploration.TOP_NEURONS, where)
        for layer, layer_entry in entry.get("per_layer", {}).items():
            upgrade(layer_entry, exploration.top_count, f"{where}/{layer}")
    return analysis


def analyze_run(run_dir, config: AnalysisConfig = AnalysisConfig(), progress=None) -> dict:
    """Regret at every recorded scale and the exploration metrics of one run; writes `analysis.json`.

    Args:
        run_dir: A run directory written by `train`.
        config: What to compute.
        progress: Optional `progress(done, total, label)` called after each unit of work.

    Returns:
        The analysis as a JSON-ready dict (also in `run_dir/analysis.json`).
    """
    from keras_taylor import analysis  # pylint: disable=import-outside-toplevel

    run_dir = pathlib.Path(run_dir)
    done = run_dir / "done.json"
    if not done.exists():
        raise FileNotFoundError(f"{run_dir} holds no finished training run (no done.json).")
    start = time.perf_counter()
    result = {"run": json.loads(done.read_text()), "analysis_config": dataclasses.asdict(config),
              "history": read_history(run_dir)}
    missing = _missing_recordings(run_dir, result["run"]["config"])
    if missing:
        raise FileNotFoundError(f"{run_dir} was trained with recorders whose directories are gone: {missing}; "
                                "train it again to analyze it.")
    work = []  # "network", "layers", "exploration"
    taylor_dir = run_dir / TAYLOR_DIR
    if taylor_dir.exists():
        run = analysis.RunReader(taylor_dir)  # one reader: each stream is read once for every part
        grid = _grid(run, config.grid_points)
        result["grid"] = grid.tolist()
        losses = analysis.round_losses(run)
        result["rounds"] = {"steps": losses.steps.tolist(), "loss": losses.losses.tolist()}
        work += ["network", "layers"]
    activations_dir = run_dir / ACTIVATIONS_DIR
    if activations_dir.exists():
        work.append("exploration")
    result["network"], result["layers"] = None, {}
    result["seconds_per_part"] = {}
    for index, kind in enumerate(work):
        part_start = time.perf_counter()
        try:
            if kind == "network":
                curve = analysis.regret_curve(run, rounds=grid)
                result["network"] = _curve_json(curve, analysis.fit_growth(curve, fraction=config.fit_fraction))
            elif kind == "layers":  # every layer and scale at once: a chain's are one pass over the rounds
                regrets = analysis.layer_regrets(run, rounds=grid, sample=config.neurons_per_layer, seed=config.seed,
                                                 cg_rtol=config.layer_cg_rtol)
                for layer in run.manifest.layer_order:
                    entry = result["layers"].setdefault(layer, {})
                    if layer in regrets.layers:
                        curve = regrets.layers[layer]
                        entry["layer"] = _curve_json(curve, analysis.fit_growth(curve, fraction=config.fit_fraction))
                    if layer in regrets.neurons:
                        band = regrets.neurons[layer]
                        fits = [analysis.fit_growth(curve, fraction=config.fit_fraction) for curve in band.curves]
                        entry["neuron"] = _band_json(band, fits)
                    for scale in ("layer", "neuron"):
                        if (layer, scale) in regrets.missing:
                            entry[scale] = {"missing": regrets.missing[(layer, scale)]}
            else:
                result.update(explore_run(activations_dir, config.log_volume_k, trained_epochs(result["run"])))
        except analysis.MissingStatisticsError as error:
            if kind == "layers":
                result["layers"] = {layer: {"layer": {"missing": str(error)}, "neuron": {"missing": str(error)}}
                                    for layer in run.manifest.layer_order}
            else:
                result[kind] = {"missing": str(error)}
        result["seconds_per_part"][kind] = time.perf_counter() - part_start
        if progress is not None:
            progress(index + 1, len(work), kind)
    result["analysis_seconds"] = time.perf_counter() - start
    (run_dir / "analysis.json").write_text(json.dumps(result, indent=1, default=_json_number))
    return result


def analyze_with_progress(run_dir, config: AnalysisConfig = AnalysisConfig(), force: bool = False) -> dict:
    """`analyze_run` with a Keras progress bar; reuses an analysis.json of the same settings unless `force`."""
    import keras  # pylint: disable=import-outside-toplevel

    path = pathlib.Path(run_dir) / "analysis.json"
    if path.exists() and not force:
        existing = json.loads(path.read_text())
        if existing.get("analysis_config") == dataclasses.asdict(config):
            print(f"{run_dir}: analysis.json exists with the same settings, reused.")
            return existing
    print(f"Analyzing {run_dir}")
    bar = None

    def progress(done, total, label):
        del label
        nonlocal bar
        bar = bar or keras.utils.Progbar(total, unit_name="part")
        bar.update(done)

    return analyze_run(run_dir, config, progress)


def _json_number(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(f"not JSON serializable: {type(value)}")


def explore_run(activations_dir, log_volume_k: int, epochs: int) -> dict:
    """The exploration metrics of a run's activation records, over the whole run and its prefixes.

    Args:
        activations_dir: The run's `activations` directory (`ActivationRecorder`).
        log_volume_k: Top singular values in the log-volume (fewer when there are fewer records).
        epochs: The run's length: its `prefix_epochs` with at least two records are measured too.

    Returns:
        `{"exploration": metrics, "exploration_by_length": {str(E): metrics of the first E epochs}}`.
    """
    from keras_taylor import exploration  # pylint: disable=import-outside-toplevel

    configs = exploration.PackedConfigurations.from_run(activations_dir)
    return {"exploration": _exploration(configs, log_volume_k),
            "exploration_by_length": {str(length): _exploration(configs.first_epochs(length), log_volume_k)
                                      for length in prefix_epochs(epochs) if np.sum(configs.epochs < length) >= 2}}


def _exploration(configs, k: int) -> dict:
    from keras_taylor import exploration  # pylint: disable=import-outside-toplevel

    distances = exploration.min_hamming(configs)
    dead = exploration.dead_units(configs)  # [N, M]
    k = min(k, len(configs) - 1)  # centering leaves rank ≤ N − 1
    # A unit's log-volume is its own matrix's: a layer's are its units' entries, not a second pass.
    unit_volume = exploration.log_volume(configs, k=k, sort=False)  # [M], in unit order
    log_volume = np.sort(unit_volume)
    per_layer = {}
    for name, units in (configs.layer_slices or {}).items():
        layer_volume = np.sort(unit_volume[units])
        per_layer[name] = {"log_volume": log_volume_summary(layer_volume, exploration.top_count(layer_volume.size))}
    switches = exploration.switches(configs)
    return {
        "steps": configs.steps.tolist(), "epochs": configs.epochs.tolist(),
        "num_points": configs.num_points, "num_units": configs.num_units, "log_volume_k": k,
        "min_hamming_normalized": [None if not np.isfinite(v) else float(v) for v in distances.normalized],
        "switches": _summary_of_values(switches),
        "log_volume": log_volume_summary(log_volume, exploration.TOP_NEURONS),
        "per_layer": per_layer,
        "dead_units": {"total": dead.sum(axis=1).tolist(),  # per record: units off on every probe point
                       "per_layer": {name: dead[:, units].sum(axis=1).tolist()
                                     for name, units in (configs.layer_slices or {}).items()}},
        "alive_at_end": _alive_exploration(configs, ~dead[-1], unit_volume, distances, switches),
    }


def _alive_exploration(configs, alive: np.ndarray, unit_volume: np.ndarray, distances, switches: np.ndarray) -> dict:
    """The exploration metrics over the units alive at the last record only: what the paper's
    definitions read without the units that die (a dead unit's column is constant, so it counts as
    not exploring; a unit that died also switched off on the way, which these leave out too).
    `distances` and `switches` are all units' (`min_hamming`, `switches`): reused when none died."""
    from keras_taylor import exploration  # pylint: disable=import-outside-toplevel

    if not alive.any():
        return {"units": 0, "min_hamming_normalized": None, "switches": None, "log_volume": None}
    if not alive.all():
        kept = configs.units(alive)
        distances, switches = exploration.min_hamming(kept), exploration.switches(kept)
    return {
        "units": int(alive.sum()),
        "min_hamming_normalized": [None if not np.isfinite(v) else float(v) for v in distances.normalized],
        "switches": _summary_of_values(switches),
        "log_volume": _summary_of_values(np.sort(unit_volume[alive])),
    }


@dataclasses.dataclass(frozen=True)
class Figure1Config:
    """Fig. 1's small rectifier net: scalar in, scalar out, fitted to a wiggly target.

    Attributes:
        widths: Hidden layer widths.
        steps: Adam steps on the target.
        seed: Seed of the weights and the data.
        points: Grid points on [-1, 1] where f and df/dx are drawn.
    """

    widths: tuple = (32, 32, 32)
    steps: int = 2000
    seed: int = 0
    points: int = 4001


def figure1(config: Figure1Config, output_dir, dpi: int = 150) -> list[pathlib.Path]:
    """Trains the small net, then draws its piecewise-linear output and shattered gradient (Fig. 1).

    Returns:
        The figure files written (`fig1_piecewise_linear.png`).
    """
    import keras  # pylint: disable=import-outside-toplevel
    import matplotlib.figure  # pylint: disable=import-outside-toplevel

    from keras_taylor import plotting  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(config.seed)
    x_train = np.random.default_rng(config.seed).uniform(-1, 1, (512, 1)).astype(np.float32)
    y_train = np.sin(6 * x_train) + 0.5 * np.sin(17 * x_train)
    model = keras.Sequential([keras.Input((1,))] + [keras.layers.Dense(w, activation="relu") for w in config.widths]
                             + [keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(3e-3), "mse")
    model.fit(x_train, y_train, batch_size=64, epochs=max(1, config.steps // 8), verbose=0)
    weights = model.get_weights()
    grid = np.linspace(-1, 1, config.points)
    value, gradient = plotting.relu_net_1d(weights[0::2], weights[1::2], grid)
    figure = matplotlib.figure.Figure(figsize=(9, 3.4), layout="constrained")
    plotting.plot_piecewise_linear(figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2), grid, value, gradient,
                                   function_title=f"ReLU net 1-{'-'.join(map(str, config.widths))}-1: f(x)",
                                   gradient_title="its gradient df/dx (piecewise constant)")
    return plotting.save_figure(figure, pathlib.Path(output_dir) / "fig1_piecewise_linear", formats=("png",), dpi=dpi)
