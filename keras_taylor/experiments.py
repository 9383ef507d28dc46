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

# Appendix A.5 of the paper. SGD's fixed rates were chosen by `keras-taylor-sweep` (see
# results/<task>/sgd_sweep.json): the rate with the lowest training loss after its sweep.
PAPER_LEARNING_RATES = {
    ("autoencoder", "rmsprop"): 1e-3,
    ("autoencoder", "adam"): 1e-2,
    ("convnet", "rmsprop"): 5e-4,
    ("convnet", "adam"): 2e-4,
}
SWEPT_LEARNING_RATES = {
    ("autoencoder", "sgd"): 0.1,
    ("convnet", "sgd"): 0.01,
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
        neurons_per_layer: Neurons sampled per layer for the neuron scale (None: all).
        taylor_every: Record every k-th step (the sums need every step for exact regret).
        activations: Record activation configurations (ActivationRecorder) every epoch.
        probe_size: Training points in the probe set of the ActivationRecorder.
        max_units_per_layer: Units recorded per layer at most (the paper's 10,000).
        verbose: Keras progress-bar mode for `fit`.
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
    neurons_per_layer: int | None = 50
    taylor_every: int = 1
    activations: bool = True
    probe_size: int = 10_000
    max_units_per_layer: int = 10_000
    verbose: int = 1

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}. Received: task={self.task!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be positive. Received: epochs={self.epochs}")
        if self.taylor_every < 1:
            raise ValueError(f"taylor_every must be positive. Received: taylor_every={self.taylor_every}")

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
        return {**dataclasses.asdict(self), "scales": list(self.scales)}


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
    images = dataset.images.astype(np.float32) / 255.0
    if config.task == "autoencoder":
        x = images.reshape(len(images), -1)
        return x, x, dataset.source
    if images.ndim == 3:
        images = images[..., None]
    return images, dataset.labels.astype(np.int64), dataset.source


def build_model(config: TrainConfig):
    """The task's model, compiled with its loss and the configured optimizer."""
    import keras  # pylint: disable=import-outside-toplevel

    from keras_taylor import models  # pylint: disable=import-outside-toplevel

    if config.task == "autoencoder":
        model, loss = models.autoencoder(seed=config.seed), "mse"
    else:
        model = models.convnet(seed=config.seed)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(make_optimizer(config.optimizer, config.resolved_learning_rate), loss)
    return model


def _finished(run_dir: pathlib.Path, config: TrainConfig) -> bool:
    done = run_dir / "done.json"
    return done.exists() and json.loads(done.read_text())["config"] == config.to_json()


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
            run_dir / "taylor", neurons=config.neurons_per_layer, scales=config.scales,
            schedule=schedules.every_k_steps(config.taylor_every), seed=config.seed, batch_size=batch_size,
            data_description=description, verbose=config.verbose,
        ))
    if config.activations:
        probe = x[np.random.default_rng(config.seed).permutation(len(x))[: config.probe_size]]
        callbacks.append(ActivationRecorder(run_dir / "activations", probe, max_units_per_layer=config.max_units_per_layer,
                                            seed=config.seed))
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=batch_size, epochs=config.epochs, shuffle=True, verbose=config.verbose,
                        callbacks=callbacks)
    seconds = time.perf_counter() - start
    (run_dir / "done.json").write_text(json.dumps({
        "config": config.to_json(), "train_seconds": seconds, "data": description,
        "final_epoch_loss": float(history.history["loss"][-1]), "examples": len(x),
    }, indent=2))
    return run_dir


def sweep_learning_rate(config: TrainConfig, rates, output_dir) -> dict:
    """Trains `config` (recorders off) at each rate; returns and writes the losses and the best rate.

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
    (output_dir / "sgd_sweep.json").write_text(json.dumps(summary, indent=2))
    return summary


def read_history(run_dir) -> dict:
    """The Keras epoch log of a run: {"epoch": [...], "loss": [...]}."""
    with open(pathlib.Path(run_dir) / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {"epoch": [int(row["epoch"]) for row in rows], "loss": [float(row["loss"]) for row in rows]}
