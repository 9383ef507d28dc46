"""Post-hoc analysis time as a ratio to plain training of the same configuration.

Two modes:

- `--epochs=1,5,20,50 --data_dir=... --work_dir=...`: for each length, trains the MNIST
  autoencoder plainly (`keras-taylor-train --notaylor --noactivations`) and with both recorders,
  analyzes the recorded run (`keras-taylor-analyze`), and prints one row per length: plain
  `model.fit` time, recorded `model.fit` time, analysis time, the analysis's parts, and the
  first layer's layer-scale solve time per grid point. The runs are made one after another, so
  nothing else should run on the machine meanwhile; a length whose runs exist is not rerun
  (delete its folder to time it again).
- `--run_dirs=...`: reads runs already trained and analyzed (their done.json and analysis.json)
  and prints their training and analysis times; with --reanalyze it times the analysis again.
"""

import json
import pathlib
import platform
import subprocess
import sys
import time

from absl import app
from absl import flags

from keras_taylor import experiments

_RUN_DIRS = flags.DEFINE_list("run_dirs", None, "Analyzed run directories (the second mode).")
_REANALYZE = flags.DEFINE_bool("reanalyze", False, "With --run_dirs: time the analysis again instead of reading it.")
_EPOCHS = flags.DEFINE_list("epochs", None, "Training lengths (epochs) to train, record and analyze (the first mode).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "MNIST IDX files (default: tensorflow-datasets).")
_WORK_DIR = flags.DEFINE_string("work_dir", "bench_runs", "Where the runs of the first mode are written.")
_OPTIMIZER = flags.DEFINE_string("optimizer", "sgd", "Optimizer of the runs.")
_PROBE_SIZE = flags.DEFINE_integer("probe_size", 10000, "Probe inputs of the activation records.")
_GRID_POINTS = flags.DEFINE_integer("grid_points", 12, "Log-spaced N of the regret curves.")
_NEURONS = flags.DEFINE_integer("neurons_per_layer", 10, "Neurons analyzed per layer.")


def _binary(name: str, *arguments: str) -> None:
    command = [sys.executable, "-m", f"keras_taylor_bin.{name}", *arguments]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def _train(epochs: int, output_dir: pathlib.Path, *extra: str) -> pathlib.Path:
    """The run directory of one training (made unless a finished one is there)."""
    if not list(output_dir.glob(f"autoencoder/{_OPTIMIZER.value}_*/done.json")):
        data = [f"--data_dir={_DATA_DIR.value}"] if _DATA_DIR.value else ["--dataset=mnist"]
        _binary("train", *data, f"--optimizer={_OPTIMIZER.value}", f"--epochs={epochs}",
                f"--probe_size={_PROBE_SIZE.value}", f"--output_dir={output_dir}", *extra)
    return next(output_dir.glob(f"autoencoder/{_OPTIMIZER.value}_*/done.json")).parent


def _by_length(epochs: int) -> str:
    work_dir = pathlib.Path(_WORK_DIR.value) / f"epochs{epochs}"
    plain = _train(epochs, work_dir / "plain", "--notaylor", "--noactivations")
    recorded = _train(epochs, work_dir / "recorded", "--storage_budget_gib=16")
    if not (recorded / "analysis.json").exists():
        _binary("analyze", f"--run_dirs={recorded}", f"--grid_points={_GRID_POINTS.value}",
                f"--neurons_per_layer={_NEURONS.value}")
    plain_seconds = json.loads((plain / "done.json").read_text())["train_seconds"]
    recorded_seconds = json.loads((recorded / "done.json").read_text())["train_seconds"]
    analysis = json.loads((recorded / "analysis.json").read_text())
    first = next(iter(analysis["layers"].values()))["layer"]["solver"]
    per_point = " ".join(f"{seconds:.1f}" for seconds in first.get("solve_seconds", []))
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
              "parts (s) | first layer, layer scale: solve per grid point (s) |\n|---|---|---|---|---|---|---|---|")
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
