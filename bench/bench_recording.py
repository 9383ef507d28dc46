"""Recording overhead, as ratios to plain `model.fit`, measured side by side in one run.

Times the steady-state training step (median over an epoch, after a warm-up
epoch that absorbs tracing) of the paper's MNIST autoencoder at batch 64 with:
plain Keras; TaylorRecorder at neuron scale (every neuron of every layer, every
step); neuron + layer scale; the same with JᵀJ from `batch_jacobian` per output
component (the naive route); and the time ActivationRecorder takes to record
the 180 hidden units on the probe set, against an epoch of plain training.

    python bench/bench_recording.py [--mnist_dir ../shared/data/mnist] [--examples N] [--probe 10000]
                                    [--cifar_dir ../shared/data/cifar10]

With --cifar_dir it also times the paper's CIFAR-10 convnet at batch 128: plain
Keras against TaylorRecorder with 50 fixed random filters (units) per layer on
the first 16 examples of a batch (`examples_per_round`), recorded every step
and every 4th step; the ratio is over the whole recorded span (mean step time,
recorded and unrecorded steps together).

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


def _convnet_span_time(images, labels, make_callbacks, batch_size=128):
    """Mean step time over the second of two epochs of the paper's convnet (the first traces)."""
    model = kt.models.convnet(seed=0)
    model.compile(keras.optimizers.Adam(2e-4), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    timer = _StepTimer()
    model.fit(images, labels, batch_size=batch_size, epochs=2, verbose=0, shuffle=True,
              callbacks=[timer] + make_callbacks())
    return float(np.mean(timer.durations[len(timer.durations) // 2:]))


def _convnet_rows(cifar_dir, scratch, examples):
    dataset = kt.data.preprocess(kt.data.load_dataset("cifar10", "train", cifar_dir, limit=examples), "classifier")
    images, labels = dataset
    counter = iter(range(100))

    def recorder(every):
        return lambda: [TaylorRecorder(f"{scratch}/conv{next(counter)}", neurons=50, examples_per_round=16,
                                       schedule=kt.schedules.every_k_steps(every), scales=("neuron",),
                                       batch_size=128, verbose=0)]

    plain = _convnet_span_time(images, labels, lambda: [])
    rows = [("convnet: plain model.fit", plain)]
    for every in (1, 4):
        rows.append((f"convnet: TaylorRecorder, 50 filters/layer, 16 examples, every {every} step(s)",
                     _convnet_span_time(images, labels, recorder(every))))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist_dir", default=None)
    parser.add_argument("--examples", type=int, default=6400, help="Examples per timed epoch.")
    parser.add_argument("--naive_examples", type=int, default=1280, help="Fewer for the slow naive route.")
    parser.add_argument("--probe", type=int, default=10_000)
    parser.add_argument("--cifar_dir", default=None, help="CIFAR-10 image folder (or its .tar.gz) for the convnet.")
    parser.add_argument("--cifar_examples", type=int, default=1280, help="Examples per timed convnet epoch.")
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
    convnet_rows = _convnet_rows(args.cifar_dir, scratch, args.cifar_examples) if args.cifar_dir else []
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
    if convnet_rows:
        print()
        print(f"Convnet (3 × Conv2D(64, 5×5) + pooling, Dense 192, 10 logits), batch 128, mean step over an "
              f"epoch of {args.cifar_examples} CIFAR-10 images")
        print()
        print("| configuration | step (ms) | ratio to plain |")
        print("|---|---|---|")
        for name, mean in convnet_rows:
            print(f"| {name} | {1e3 * mean:.0f} | {mean / convnet_rows[0][1]:.2f}× |")


if __name__ == "__main__":
    main()
