"""Shared fixtures for the keras_taylor tests: dtypes, tolerances, random generators, tiny models.

Every model here is small enough that a test builds its own in milliseconds, and
every weight (biases included) is drawn at random, so that the activation
configuration is non-trivial: some units on, some off, in every rectifier layer.
"""

import contextlib
import zlib

import keras
import numpy as np
import pytest

from keras_taylor import layers as kt_layers

# The one place where tolerances live. float64 results are compared tightly; float32
# ones carry the rounding of a few matmuls and a log-sum-exp.
_RTOL = {"float64": 1e-6, "float32": 2e-4}


def tolerance(dtype) -> float:
    """The relative tolerance for results computed in `dtype`."""
    return _RTOL[np.dtype(dtype).name]


def assert_close(actual, desired, dtype, err_msg: str = "") -> None:
    """Elementwise `|actual − desired| ≤ rtol·|desired| + rtol·max|desired|`.

    The absolute part is scaled by the largest entry of `desired`, so that entries that
    are exactly zero in one computation and rounding noise in the other (a dead unit's
    gradient) compare equal, while a wrong entry of typical size does not.
    """
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    rtol = tolerance(dtype)
    scale = float(np.max(np.abs(desired))) if desired.size else 0.0
    np.testing.assert_allclose(
        actual, desired, rtol=rtol, atol=rtol * scale + 1e-300, err_msg=err_msg
    )


def assert_at_most(smaller, larger, dtype) -> None:
    """`smaller ≤ larger` up to the dtype's rounding, relative to the larger magnitude of the two."""
    smaller = np.asarray(smaller, dtype=np.float64)
    larger = np.asarray(larger, dtype=np.float64)
    slack = tolerance(dtype) * max(float(np.max(np.abs(larger))), float(np.max(np.abs(smaller))))
    excess = smaller - larger
    assert np.all(excess <= slack), (
        f"expected smaller <= larger; worst excess {excess.max():.3e} > slack {slack:.3e}"
    )


@contextlib.contextmanager
def floatx(dtype: str):
    """Runs the block with Keras's floatx and global dtype policy set to `dtype`, then restores them.

    Both are needed: Keras caches the global dtype policy from floatx the first time a
    layer is built, after which layers ignore `set_floatx`.
    """
    previous_floatx = keras.config.floatx()
    previous_policy = keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield dtype
    finally:
        keras.config.set_floatx(previous_floatx)
        keras.config.set_dtype_policy(previous_policy)


@pytest.fixture
def float64():
    """Builds Keras layers in float64 for the duration of the test."""
    with floatx("float64") as dtype:
        yield dtype


@pytest.fixture
def rng(request):
    """A fresh generator per test case, seeded from the case's node id (so distinct per case)."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


# ---------------------------------------------------------------------------
# Tiny models. Each builder returns a built model with random weights.

MLP_INPUT_SHAPE = (5,)
CONVNET_INPUT_SHAPE = (10, 10, 2)
NUM_OUTPUTS = 3
# The layers with weights, in order, so that parameter grids can name them.
MLP_WEIGHTED_LAYERS = (
    "rectified_dense",
    "dense_relu",
    "dense_before_relu_layer",
    "dense_before_activation",
    "logits",
)
CONVNET_WEIGHTED_LAYERS = ("conv_valid", "conv_stride2_same", "conv_dilated_same", "dense_relu", "logits")


def _mlp_layers(rng, output_activation=None):
    # Every form of rectifier the package knows, one per hidden layer.
    stack = [
        kt_layers.RectifiedDense(6, name="rectified_dense"),
        keras.layers.Dense(7, activation="relu", name="dense_relu"),
        keras.layers.Dense(5, name="dense_before_relu_layer"),
        keras.layers.ReLU(name="relu_layer"),
        keras.layers.Dense(4, name="dense_before_activation"),
        keras.layers.Activation("relu", name="activation_relu"),
    ]
    if output_activation == "softmax_layer":
        stack += [keras.layers.Dense(NUM_OUTPUTS, name="logits"), keras.layers.Softmax(name="softmax")]
    elif output_activation == "sigmoid_layer":
        stack += [keras.layers.Dense(NUM_OUTPUTS, name="logits"), keras.layers.Activation("sigmoid", name="sigmoid")]
    else:
        stack.append(keras.layers.Dense(NUM_OUTPUTS, activation=output_activation, name="logits"))
    return stack


def _convnet_layers(rng):
    # 10×10 → valid 8×8 → stride-2 "same" 4×4, padded (0, 1): TF puts the odd pixel of
    # "same" padding at the end → dilated "same" 4×4 → pool 2×2×4 → 16 features.
    return [
        keras.layers.Conv2D(3, 3, padding="valid", activation="relu", name="conv_valid"),
        kt_layers.RectifiedConv2D(4, 3, strides=2, padding="same", name="conv_stride2_same"),
        keras.layers.Conv2D(4, 2, dilation_rate=2, padding="same", name="conv_dilated_same"),
        keras.layers.ReLU(name="conv_relu"),
        keras.layers.MaxPooling2D(2, name="max_pool"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dropout(0.25, seed=int(rng.integers(2**31)), name="dropout"),
        keras.layers.Dense(6, activation="relu", name="dense_relu"),
        keras.layers.Dense(NUM_OUTPUTS, name="logits"),
    ]


def _assemble(stack, input_shape, functional: bool, name: str) -> keras.Model:
    inputs = keras.Input(input_shape, name="x")
    if not functional:
        return keras.Sequential([inputs, *stack], name=name)
    outputs = inputs
    for layer in stack:
        outputs = layer(outputs)
    return keras.Model(inputs, outputs, name=name)


def randomize_weights(model: keras.Model, rng: np.random.Generator) -> keras.Model:
    """Draws every kernel ~ N(0, 1/fan_in) and every bias ~ N(0, 0.5²)."""
    for layer in model.layers:
        if getattr(layer, "kernel", None) is None:
            continue
        kernel_shape = tuple(layer.kernel.shape)
        fan_in = int(np.prod(kernel_shape[:-1]))
        layer.kernel.assign(rng.normal(0.0, 1.0 / np.sqrt(fan_in), kernel_shape))
        if layer.bias is not None:
            layer.bias.assign(rng.normal(0.0, 0.5, tuple(layer.bias.shape)))
    return model


def build_mlp(rng, functional: bool = False) -> keras.Model:
    """Dense ReLU MLP 5 → 6 → 7 → 5 → 4 → 3 with linear outputs."""
    model = _assemble(_mlp_layers(rng), MLP_INPUT_SHAPE, functional, "mlp")
    assert tuple(weighted_layer_names(model)) == MLP_WEIGHTED_LAYERS
    return randomize_weights(model, rng)


def build_convnet(rng, functional: bool = False) -> keras.Model:
    """10×10×2 → valid, strided same, dilated same convs → max pool → dense; 3 outputs."""
    model = _assemble(_convnet_layers(rng), CONVNET_INPUT_SHAPE, functional, "convnet")
    assert tuple(weighted_layer_names(model)) == CONVNET_WEIGHTED_LAYERS
    return randomize_weights(model, rng)


def build_softmax_classifier(rng, functional: bool = False, softmax: str = "dense") -> keras.Model:
    """The MLP ending in a softmax: inside the last Dense ("dense") or as a Softmax layer."""
    output_activation = "softmax" if softmax == "dense" else "softmax_layer"
    model = _assemble(_mlp_layers(rng, output_activation), MLP_INPUT_SHAPE, functional, "classifier")
    assert tuple(weighted_layer_names(model)) == MLP_WEIGHTED_LAYERS
    return randomize_weights(model, rng)


def build_sigmoid_classifier(rng, functional: bool = False, sigmoid: str = "dense") -> keras.Model:
    """The MLP ending in NUM_OUTPUTS sigmoids (multi-label): inside the last Dense or as Activation("sigmoid")."""
    output_activation = "sigmoid" if sigmoid == "dense" else "sigmoid_layer"
    model = _assemble(_mlp_layers(rng, output_activation), MLP_INPUT_SHAPE, functional, "multilabel")
    assert tuple(weighted_layer_names(model)) == MLP_WEIGHTED_LAYERS
    return randomize_weights(model, rng)


MODEL_BUILDERS = {
    "mlp_seq": lambda rng: build_mlp(rng, functional=False),
    "mlp_fun": lambda rng: build_mlp(rng, functional=True),
    "convnet_seq": lambda rng: build_convnet(rng, functional=False),
    "convnet_fun": lambda rng: build_convnet(rng, functional=True),
    "softmax_dense_seq": lambda rng: build_softmax_classifier(rng, functional=False, softmax="dense"),
    "softmax_layer_fun": lambda rng: build_softmax_classifier(rng, functional=True, softmax="layer"),
    "sigmoid_dense_fun": lambda rng: build_sigmoid_classifier(rng, functional=True, sigmoid="dense"),
    "sigmoid_layer_seq": lambda rng: build_sigmoid_classifier(rng, functional=False, sigmoid="layer"),
}
LOGIT_MODELS = ("mlp_seq", "mlp_fun", "convnet_seq", "convnet_fun")
SOFTMAX_MODELS = ("softmax_dense_seq", "softmax_layer_fun")
SIGMOID_MODELS = ("sigmoid_dense_fun", "sigmoid_layer_seq")


def random_inputs(model: keras.Model, rng: np.random.Generator, batch_size: int = 4) -> np.ndarray:
    """A standard-normal batch `[B, *input_shape]` in the model's dtype."""
    shape = (batch_size, *model.inputs[0].shape[1:])
    return rng.normal(size=shape).astype(model.inputs[0].dtype)


def weighted_layer_names(model: keras.Model) -> list[str]:
    """Names of the layers with a kernel, in order."""
    return [layer.name for layer in model.layers if getattr(layer, "kernel", None) is not None]


def small_mlp(rng, dropout=0.0, name="mlp"):
    """6 → RectifiedDense(5) "first" [→ Dropout] → Dense(4, relu) "second" → Dense(3) "out", random weights."""
    inputs = keras.Input((6,))
    hidden = kt_layers.RectifiedDense(5, name="first")(inputs)
    if dropout:
        hidden = keras.layers.Dropout(dropout, seed=int(rng.integers(1 << 30)), name="drop")(hidden)
    hidden = keras.layers.Dense(4, activation="relu", name="second")(hidden)
    outputs = keras.layers.Dense(3, name="out")(hidden)
    model = keras.Model(inputs, outputs, name=name)
    for variable in model.weights:
        variable.assign(rng.normal(size=variable.shape) * 0.7)
    return model


class WeightLog(keras.callbacks.Callback):
    """The weights W^n before every step (the slow reference's view of training)."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_train_batch_begin(self, batch, logs=None):
        self.weights.append([variable.numpy().copy() for variable in self.model.trainable_weights])


ROUND_BATCH = 8


def train_recorded(model, x, y, recorder, loss="mse", epochs=2, batch_size=ROUND_BATCH):
    """Trains by SGD(0.05) in a fixed order with `recorder`; returns W^n of every round."""
    model.compile(keras.optimizers.SGD(0.05), loss)
    log = WeightLog()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0, callbacks=[log, recorder])
    return log.weights


def round_snapshots(model, x, y, weights, loss="mse", examples=None, batch_size=ROUND_BATCH):
    """The Taylor snapshot of every round, rebuilt from W^n and the minibatch x^n (or its first examples)."""
    import keras_taylor as kt  # pylint: disable=import-outside-toplevel

    snapshots = []
    batches = len(x) // batch_size
    for index, round_weights in enumerate(weights):
        model.set_weights(round_weights)
        start = (index % batches) * batch_size
        stop = start + (examples or batch_size)
        snapshots.append(kt.taylor_snapshot(model, x[start:stop], y[start:stop], loss))
    return snapshots
