"""keras-taylor-demo: a neural Taylor snapshot of the MNIST autoencoder on the embedded digits.

This file is intentionally kept short: the work is in keras_taylor.demo.
"""

from absl import app
from absl import flags

from keras_taylor.demo import DemoConfig, run_snapshot_demo

_EPOCHS = flags.DEFINE_integer("epochs", 1, "Training epochs on the 10,000 embedded digits.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Minibatch size.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "RMSProp learning rate.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed for shuffling and initial weights.")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 10_000, "How many embedded digits to train on.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Directory for demo.json (optional).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    run_snapshot_demo(DemoConfig(
        epochs=_EPOCHS.value,
        batch_size=_BATCH_SIZE.value,
        learning_rate=_LEARNING_RATE.value,
        seed=_SEED.value,
        num_examples=_NUM_EXAMPLES.value,
        output_dir=_OUTPUT_DIR.value,
    ))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
