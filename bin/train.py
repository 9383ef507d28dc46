"""keras-taylor-train: one training run of the paper's autoencoder or convnet with the recorders.

Writes <output_dir>/<optimizer>_lr<rate>_seed<seed>/ (see keras_taylor.experiments);
a rerun with the same flags reuses a finished run. Kept short: the work is in
keras_taylor.experiments.train.
"""

from absl import app
from absl import flags

from keras_taylor import experiments

from keras_taylor_bin import train_flags

_OPTIMIZER = flags.DEFINE_string("optimizer", "rmsprop", "sgd, momentum, rmsprop, adam, signsgd or a Keras name.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", None, "Learning rate (default: the paper's / the swept one).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the weights, the shuffle and the samples.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs", "Where the run directory is created.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = train_flags.train_config(_OPTIMIZER.value, _LEARNING_RATE.value, _SEED.value)
    run_dir = experiments.train(config, f"{_OUTPUT_DIR.value}/{config.task}/{config.run_name()}")
    print(f"Run written to {run_dir}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
