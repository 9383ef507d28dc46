"""keras-taylor-reproduce: the paper's experiment for one task, end to end.

Trains every optimizer × seed with the recorders (finished runs are reused), analyzes
each run, keeps each run's analysis as a small record in <results_dir>/runs/<run>.json the
moment it is done, and writes figures, numbers and a README into --results_dir (default
reproduced/<task>) from those records. A setting whose record exists is skipped, so a
reproduction that outlasts one sitting resumes on any machine from the committed records. With no data flags the autoencoder runs on the 10,000 MNIST digits
embedded in the package, so this works offline. Kept short: the work is in
keras_taylor.experiments and keras_taylor.report.
"""

import dataclasses
import pathlib
import sys

from absl import app
from absl import flags

from keras_taylor import experiments, report

from keras_taylor_bin import train_flags

_OPTIMIZERS = flags.DEFINE_list("optimizers", ["sgd", "rmsprop", "adam"], "Optimizers to compare.")
_LEARNING_RATES = flags.DEFINE_list(
    "learning_rates", [], "Rates as optimizer=rate pairs, e.g. sgd=2,sgd=8,sgd=32 (an optimizer at several rates "
    "gets a run per rate); an optimizer not named here runs at its task's default rate.")
# The defaults are a first look, a few minutes on 2 CPU cores: one seed, 10 sampled units per layer,
# 8 grid points, a 2,000-image probe set. The paper's setting is a flag away (README, results/).
_SEEDS = flags.DEFINE_integer("seeds", 1, "Seeds per optimizer (0 .. seeds-1).")
_WORK_DIR = flags.DEFINE_string("work_dir", "runs", "Where the (large) run directories go.")
_RESULTS_DIR = flags.DEFINE_string("results_dir", None, "Where figures and numbers go (default reproduced/<task>).")
_NEURONS = flags.DEFINE_integer("analysis_neurons", 10, "Neurons per layer in the neuron-scale bands (0: all).")
_GRID_POINTS = flags.DEFINE_integer("grid_points", 8, "About how many log-spaced N to evaluate regret at.")
_LAYER_CG_RTOL = flags.DEFINE_float("layer_cg_rtol", 1e-4, "Conjugate-gradient relative residual for layers "
                                    "solved matrix-free (the autoencoder's first layer).")
_FIGURE1 = flags.DEFINE_bool("figure1", True, "Also train Fig. 1's small ReLU net and draw its shattered gradient.")
_SEEDS_OUTER = flags.DEFINE_bool(
    "seeds_outer", False, "Run seed 0 of every setting before seed 1 of any: a reproduction stopped part way "
    "has the same seeds of every setting.")
_KEEP_TAYLOR_DATA = flags.DEFINE_bool(
    "keep_taylor_data", True, "Keep each run's Taylor recording (<work_dir>/<task>/<run>/taylor, gigabytes at the "
    "paper's length) after its record is written. The report needs only the records; analyzing the run again "
    "needs the recording (without it the run is trained again).")


flags.FLAGS.set_default("probe_size", 2000)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    task = train_flags.TASK.value
    analysis_config = experiments.AnalysisConfig(neurons_per_layer=_NEURONS.value or None,
                                                 grid_points=_GRID_POINTS.value,
                                                 layer_cg_rtol=_LAYER_CG_RTOL.value)
    results_dir = pathlib.Path(_RESULTS_DIR.value or f"reproduced/{task}")
    rates = _rates_by_optimizer(_LEARNING_RATES.value)
    records = []
    settings = [(optimizer, rate) for optimizer in _OPTIMIZERS.value for rate in rates.get(optimizer, [None])]
    runs = ([(setting, seed) for seed in range(_SEEDS.value) for setting in settings] if _SEEDS_OUTER.value else
            [(setting, seed) for setting in settings for seed in range(_SEEDS.value)])
    for (optimizer, rate), seed in runs:
        config = train_flags.train_config(optimizer, rate, seed)
        records.append(results_dir / "runs" / f"{config.run_name()}.json")
        if report.existing_run_record(records[-1], config.to_json(), dataclasses.asdict(analysis_config)):
            print(f"{records[-1]}: done with the same settings, skipped.")
            continue
        run_dir = experiments.train(config, f"{_WORK_DIR.value}/{task}/{config.run_name()}")
        report.write_run_record(experiments.analyze_with_progress(run_dir, analysis_config), records[-1])
        if not _KEEP_TAYLOR_DATA.value:
            experiments.drop_taylor_recording(run_dir)
    report.write_report(records, results_dir, " ".join(["keras-taylor-reproduce"] + sys.argv[1:]))
    if _FIGURE1.value:
        experiments.figure1(experiments.Figure1Config(), results_dir)
    print(f"Results written to {results_dir}")


def _rates_by_optimizer(pairs) -> dict:
    """`{optimizer: [rate, ...]}` of `--learning_rates`' optimizer=rate pairs."""
    rates = {}
    for pair in pairs:
        optimizer, _, rate = pair.partition("=")
        if optimizer not in _OPTIMIZERS.value or not rate:
            raise app.UsageError(f"--learning_rates takes optimizer=rate pairs naming optimizers of --optimizers "
                                 f"({_OPTIMIZERS.value}). Received: {pair!r}")
        rates.setdefault(optimizer, []).append(float(rate))
    return rates


def run():
    app.run(main)


if __name__ == "__main__":
    run()
