"""Recording overhead, as ratios to plain `model.fit`, measured side by side in one run.

Times the steady-state training step (median over an epoch, after a warm-up
epoch that absorbs tracing) of the paper's MNIST autoencoder at batch 64 with:
plain Keras; TaylorRecorder at neuron scale (every neuron of every layer, every
step); neuron + layer scale; the same with JᵀJ from `batch_jacobian` per output
component (the naive route); and the time ActivationRecorder takes to record
the 180 hidden units on the probe set, against an epoch of plain training.

    python bench/bench_recording.py [--mnist_dir ../shared/data/mnist] [--examples N] [--probe 10000]

Data: MNIST training images from gzipped IDX files in --mnist_dir (the paper's
60,000, so "an epoch" is the paper's epoch), else the 10,000 digits embedded in
keras_taylor.
"""

import argparse
import platform
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import keras_taylor as kt
from keras_taylor.callbacks import ActivationRecorder, TaylorRecorder


class _StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.durations = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.durations.append(time.perf_counter() - self._start)


def _step_time(pixels, make_callbacks, batch_size=64):
    """Median step time of the second epoch (the first traces the functions), and its total."""
    model = kt.models.autoencoder(seed=0)
    model.compile(keras.optimizers.RMSprop(1e-3), "mse")
    timer = _StepTimer()
    model.fit(pixels, pixels, batch_size=batch_size, epochs=2, verbose=0, shuffle=True,
              callbacks=[timer] + make_callbacks())
    second_epoch = timer.durations[len(timer.durations) // 2:]
    return float(np.median(second_epoch)), float(np.sum(second_epoch))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist_dir", default=None)
    parser.add_argument("--examples", type=int, default=6400, help="Examples per timed epoch.")
    parser.add_argument("--naive_examples", type=int, default=1280, help="Fewer for the slow naive route.")
    parser.add_argument("--probe", type=int, default=10_000)
    args = parser.parse_args()
    if args.mnist_dir:
        images, _ = kt.data.load_mnist_idx(args.mnist_dir, "train")
    else:
        images, _ = kt.data.load_embedded_mnist()
    all_pixels = images.reshape(len(images), -1).astype("float32") / 255.0
    pixels = all_pixels[: args.examples]
    scratch = tempfile.mkdtemp(prefix="kt_bench_")
    counter = iter(range(100))

    def recorder(**kwargs):
        return lambda: [TaylorRecorder(f"{scratch}/run{next(counter)}", batch_size=64, verbose=0, **kwargs)]

    configurations = [
        ("plain model.fit", lambda: []),
        ("TaylorRecorder, neuron scale", recorder(scales=("neuron",))),
        ("TaylorRecorder, neuron + layer scale", recorder(scales=("neuron", "layer"))),
        ("  same, JᵀJ from batch_jacobian (naive)", recorder(scales=("neuron", "layer"), jtj_route="batch_jacobian")),
    ]
    results = []
    for name, make in configurations:
        data = all_pixels[: args.naive_examples] if "naive" in name else pixels
        median, _ = _step_time(data, make)
        results.append((name, median))
    plain_median = results[0][1]
    _, plain_epoch = _step_time(all_pixels, lambda: [])

    model = kt.models.autoencoder(seed=0)
    probe = pixels[: args.probe]
    activations = ActivationRecorder(f"{scratch}/activations", probe, record_initial=False)
    activations.set_model(model)
    activations.on_train_begin()
    activations.record(0, 0)  # traces the probe model
    start = time.perf_counter()
    repeats = 5
    for index in range(repeats):
        activations.record(index, index)
    record_time = (time.perf_counter() - start) / repeats
    activations.on_train_end()
    shutil.rmtree(scratch)

    print(f"CPU: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores; "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}; autoencoder 784-50-30-20-30-50-784, "
          f"batch 64; step times are medians over an epoch of {len(pixels)} examples "
          f"({args.naive_examples} for the naive route)")
    print()
    print(f"| configuration | step (ms) | ratio to plain |")
    print(f"|---|---|---|")
    for name, median in results:
        print(f"| {name} | {1e3 * median:.2f} | {median / plain_median:.2f}× |")
    print(f"| ActivationRecorder, {args.probe} probe points × 180 units, per record | "
          f"{1e3 * record_time:.1f} | {100 * record_time / plain_epoch:.1f}% of a plain epoch "
          f"of {len(all_pixels)} examples ({plain_epoch:.2f} s) |")


if __name__ == "__main__":
    main()
