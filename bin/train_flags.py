"""Flags shared by the binaries that train (train, sweep, reproduce), and the config they build."""

from absl import flags

from keras_taylor.experiments import TrainConfig

TASK = flags.DEFINE_enum("task", "autoencoder", ["autoencoder", "convnet"],
                         "The paper's task: the MNIST autoencoder or the CIFAR-10 convnet.")
EPOCHS = flags.DEFINE_integer("epochs", 1, "Training epochs.")
DATASET = flags.DEFINE_string(
    "dataset", None,
    "Dataset name (mnist, fashion_mnist, cifar10, embedded_mnist); default: the embedded MNIST digits for "
    "the autoencoder (mnist when --data_dir is given), cifar10 for the convnet.")
DATA_DIR = flags.DEFINE_string(
    "data_dir", None,
    "Local copies of the dataset: a folder of MNIST IDX files, or a CIFAR-style image folder or its .tar.gz. "
    "Default: tensorflow-datasets (or the embedded digits).")
LIMIT = flags.DEFINE_integer("limit", None, "Train on the first N examples only.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Minibatch size (default: the paper's, 64 or 128).")
TAYLOR = flags.DEFINE_bool("taylor", True, "Record Taylor statistics (TaylorRecorder).")
SCALES = flags.DEFINE_list("scales", ["network", "layer", "neuron"], "Scales the TaylorRecorder records.")
LAYER_SCALE_LAYERS = flags.DEFINE_list(
    "layer_scale_layers", None, "Layers recorded at layer scale, e.g. relu_fc,logits (default: every layer).")
NEURONS_PER_LAYER = flags.DEFINE_integer("neurons_per_layer", 50, "Neurons sampled per layer (0: all).")
TAYLOR_EVERY = flags.DEFINE_integer("taylor_every", 1, "Record Taylor data every k-th step.")
TAYLOR_EXAMPLES = flags.DEFINE_integer("taylor_examples", None,
                                       "Cross-entropy: store Taylor data for the first k examples of a batch.")
STORAGE_BUDGET_GIB = flags.DEFINE_float(
    "storage_budget_gib", 4.0,
    "The TaylorRecorder refuses to start a run it estimates would write more than this (GiB); a 50-epoch "
    "full-MNIST autoencoder run writes about 6.")
ACTIVATIONS = flags.DEFINE_bool("activations", True, "Record activation configurations (ActivationRecorder).")
ACTIVATION_RECORDS = flags.DEFINE_integer("activation_records", 100, "About how many configurations to record.")
PROBE_SIZE = flags.DEFINE_integer("probe_size", 10_000, "Training points in the activation probe set.")
MAX_UNITS = flags.DEFINE_integer("max_units_per_layer", 10_000, "Units recorded per layer at most.")
PLATEAU_PATIENCE = flags.DEFINE_integer(
    "plateau_patience", None, "Convnet: stop once the training accuracy has not reached a new maximum for this many "
    "epochs (--epochs is then the cap).")
VERBOSE = flags.DEFINE_integer("verbose", 1, "Keras progress: 0 silent, 1 progress bar, 2 one line per epoch.")


def train_config(optimizer: str, learning_rate: float | None, seed: int) -> TrainConfig:
    """The TrainConfig the shared flags describe, for one optimizer and seed."""
    return TrainConfig(
        task=TASK.value, optimizer=optimizer, learning_rate=learning_rate, epochs=EPOCHS.value, seed=seed,
        dataset=DATASET.value, data_dir=DATA_DIR.value, limit=LIMIT.value, batch_size=BATCH_SIZE.value,
        taylor=TAYLOR.value, scales=tuple(SCALES.value), neurons_per_layer=NEURONS_PER_LAYER.value or None,
        layer_scale_layers=None if LAYER_SCALE_LAYERS.value is None else tuple(LAYER_SCALE_LAYERS.value),
        taylor_every=TAYLOR_EVERY.value, taylor_examples=TAYLOR_EXAMPLES.value, activations=ACTIVATIONS.value,
        activation_records=ACTIVATION_RECORDS.value, probe_size=PROBE_SIZE.value,
        max_units_per_layer=MAX_UNITS.value, verbose=VERBOSE.value,
        storage_budget_bytes=int(STORAGE_BUDGET_GIB.value * 2**30), plateau_patience=PLATEAU_PATIENCE.value,
    )
