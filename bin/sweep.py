"""keras-taylor-sweep: the small learning-rate sweep that fixes SGD's rate (the paper tuned it).

Trains the task with each rate (recorders off) and writes sgd_sweep.json with the
last-epoch training loss per rate and the best rate. Kept short: the work is in
keras_taylor.experiments.sweep_learning_rate.
"""

from absl import app
from absl import flags

from keras_taylor import experiments

from keras_taylor_bin import train_flags

_OPTIMIZER = flags.DEFINE_string("optimizer", "sgd", "The optimizer whose rate is swept.")
_RATES = flags.DEFINE_list("rates", ["0.01", "0.03", "0.1", "0.3", "1.0"], "Learning rates to try.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the weights and the shuffle.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/sweep", "Where the sweep's runs go.")
_SUMMARY = flags.DEFINE_string("summary", None, "Path of the summary JSON (default: <output_dir>/<task>/sgd_sweep.json).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = train_flags.train_config(_OPTIMIZER.value, None, _SEED.value)
    summary = experiments.sweep_learning_rate(config, [float(rate) for rate in _RATES.value],
                                              f"{_OUTPUT_DIR.value}/{config.task}", _SUMMARY.value)
    print(f"Best {config.optimizer} rate: {summary['best_learning_rate']:g} ({summary['final_epoch_loss']})")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
