"""Post-hoc analysis time as a ratio to plain training of the same configuration.

Two modes:

- `--epochs=1,5,20,50 --data_dir=... --work_dir=...`: for each length, trains the task
  (`--task`: the MNIST autoencoder, or the CIFAR-10 convnet on `--limit` images) plainly
  (`keras-taylor-train --notaylor --noactivations`) and with both recorders, analyzes the
  recorded run (`keras-taylor-analyze`), and prints one row per length: plain `model.fit`
  time, recorded `model.fit` time, analysis time, the analysis's parts, and the solve time per
  grid point of the first layer's layer scale (autoencoder) or the summed bounded solves of
  each grid point (convnet). The runs are made one after another, so nothing else should run
  on the machine meanwhile; a length whose runs exist is not rerun (delete its folder to time
  it again).
- `--run_dirs=...`: reads runs already trained and analyzed (their done.json and analysis.json)
  and prints their training and analysis times; with --reanalyze it times the analysis again.
"""

import json
import pathlib
import platform
import subprocess
import sys
import time

import numpy as np
from absl import app
from absl import flags

from keras_taylor import experiments

_RUN_DIRS = flags.DEFINE_list("run_dirs", None, "Analyzed run directories (the second mode).")
_REANALYZE = flags.DEFINE_bool("reanalyze", False, "With --run_dirs: time the analysis again instead of reading it.")
_EPOCHS = flags.DEFINE_list("epochs", None, "Training lengths (epochs) to train, record and analyze (the first mode).")
_TASK = flags.DEFINE_enum("task", "autoencoder", ["autoencoder", "convnet"], "The experiment of the first mode.")
_LIMIT = flags.DEFINE_integer("limit", None, "Train on the first N examples only (the convnet's table: 10000).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "MNIST IDX files or the CIFAR-10 archive (default: "
                                "tensorflow-datasets).")
_WORK_DIR = flags.DEFINE_string("work_dir", "bench_runs", "Where the runs of the first mode are written.")
_OPTIMIZER = flags.DEFINE_string("optimizer", "sgd", "Optimizer of the runs.")
_PROBE_SIZE = flags.DEFINE_integer("probe_size", None, "Probe inputs of the activation records (default: "
                                   "10000 for the autoencoder, 500 for the convnet, 1% of the paper's 50,000).")
_GRID_POINTS = flags.DEFINE_integer("grid_points", 12, "Log-spaced N of the regret curves.")
_NEURONS = flags.DEFINE_integer("neurons_per_layer", 10, "Neurons analyzed per layer.")


def _binary(name: str, *arguments: str) -> None:
    command = [sys.executable, "-m", f"keras_taylor_bin.{name}", *arguments]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


# The convnet is recorded as results/convnet's runs are (issue 13): layer scale of the dense layers,
# 10 filters/units per layer at neuron scale, 16 examples every 10th step, activations of 500 probe
# images twice an epoch (those runs' 120 records over the 60-epoch cap: every 39th step).
_RECORDING = {"autoencoder": lambda epochs: ("--storage_budget_gib=16",),
              "convnet": lambda epochs: ("--scales=neuron,layer", "--layer_scale_layers=relu_fc,logits",
                                         "--neurons_per_layer=10", "--taylor_every=10", "--taylor_examples=16",
                                         f"--activation_records={2 * epochs}")}
_PROBES = {"autoencoder": 10000, "convnet": 500}


def _train(epochs: int, output_dir: pathlib.Path, *extra: str) -> pathlib.Path:
    """The run directory of one training (made unless a finished one is there)."""
    task = _TASK.value
    if not list(output_dir.glob(f"{task}/{_OPTIMIZER.value}_*/done.json")):
        data = [f"--data_dir={_DATA_DIR.value}"] if _DATA_DIR.value else []
        limit = [f"--limit={_LIMIT.value}"] if _LIMIT.value else []
        _binary("train", f"--task={task}", *data, *limit, f"--optimizer={_OPTIMIZER.value}", f"--epochs={epochs}",
                f"--probe_size={_PROBE_SIZE.value or _PROBES[task]}", f"--output_dir={output_dir}", *extra)
    return next(output_dir.glob(f"{task}/{_OPTIMIZER.value}_*/done.json")).parent


def _per_point_seconds(analysis: dict) -> str:
    """The autoencoder's first layer at layer scale: each grid point's CG solve; the convnet: each grid
    point's bounded solves summed over every layer and neuron."""
    if _TASK.value == "autoencoder":
        first = next(iter(analysis["layers"].values()))["layer"]["solver"]
        return " ".join(f"{seconds:.1f}" for seconds in first.get("solve_seconds", []))
    total = np.zeros(len(analysis["grid"]))
    for entry in analysis["layers"].values():
        for seconds in (entry.get("layer", {}).get("solver", {}).get("solve_seconds"),
                        entry.get("neuron", {}).get("solve_seconds")):
            if seconds is not None:
                total += np.asarray(seconds).reshape(-1, len(total)).sum(axis=0)
    return " ".join(f"{seconds:.1f}" for seconds in total)


def _by_length(epochs: int) -> str:
    work_dir = pathlib.Path(_WORK_DIR.value) / f"epochs{epochs}"
    plain = _train(epochs, work_dir / "plain", "--notaylor", "--noactivations")
    recorded = _train(epochs, work_dir / "recorded", *_RECORDING[_TASK.value](epochs))
    if not (recorded / "analysis.json").exists():
        _binary("analyze", f"--run_dirs={recorded}", f"--grid_points={_GRID_POINTS.value}",
                f"--neurons_per_layer={_NEURONS.value}")
    plain_seconds = json.loads((plain / "done.json").read_text())["train_seconds"]
    recorded_seconds = json.loads((recorded / "done.json").read_text())["train_seconds"]
    analysis = json.loads((recorded / "analysis.json").read_text())
    per_point = _per_point_seconds(analysis)
    parts = ", ".join(f"{name} {seconds:.0f}" for name, seconds in analysis["seconds_per_part"].items())
    seconds = analysis["analysis_seconds"]
    return (f"| {epochs} | {len(analysis['rounds']['loss'])} | {plain_seconds:.1f} | {recorded_seconds:.1f} "
            f"({recorded_seconds / plain_seconds:.2f}×) | {seconds:.0f} | {seconds / plain_seconds:.2f}× | {parts} | "
            f"{per_point} |")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if (_EPOCHS.value is None) == (_RUN_DIRS.value is None):
        raise app.UsageError("Give either --epochs (train, record and analyze) or --run_dirs (read finished runs).")
    print(f"CPU: {platform.machine()}")
    if _EPOCHS.value is not None:
        print("| epochs | rounds | plain fit (s) | recorded fit (s) | analysis (s) | analysis / plain fit | "
              "parts (s) | solve per grid point (s) |\n|---|---|---|---|---|---|---|---|")
        for epochs in _EPOCHS.value:
            print(_by_length(int(epochs)), flush=True)
        return
    print("| run | rounds | train (s) | analysis (s) | ratio |\n|---|---|---|---|---|")
    for run_dir in _RUN_DIRS.value:
        run_dir = pathlib.Path(run_dir)
        done = json.loads((run_dir / "done.json").read_text())
        if _REANALYZE.value:
            start = time.perf_counter()
            analysis = experiments.analyze_run(run_dir, experiments.AnalysisConfig(**json.loads(
                (run_dir / "analysis.json").read_text())["analysis_config"]))
            seconds = time.perf_counter() - start
        else:
            analysis = json.loads((run_dir / "analysis.json").read_text())
            seconds = analysis["analysis_seconds"]
        rounds = len(analysis.get("rounds", {}).get("loss", []))
        print(f"| {run_dir.name} | {rounds} | {done['train_seconds']:.0f} | {seconds:.0f} | "
              f"{seconds / done['train_seconds']:.2f}× |")


if __name__ == "__main__":
    app.run(main)
