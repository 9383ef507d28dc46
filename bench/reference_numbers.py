"""Records small runs that reach every recording route, and dumps every number the analysis gives.

Used to show that a restructuring of the package leaves its numbers unchanged:

    python bench/reference_numbers.py record  --out_dir DIR          # with the old code
    python bench/reference_numbers.py analyze --out_dir DIR --json before.json
    ... change the code ...
    python bench/reference_numbers.py analyze --out_dir DIR --json after.json   # same recordings
    python bench/reference_numbers.py record  --out_dir DIR2 && ... analyze --out_dir DIR2 --json after_new.json
    python bench/reference_numbers.py compare before.json after.json

The runs (float64, fixed seeds, a few hundred MNIST-like inputs drawn at random):
- `chain`: the autoencoder shape (784-50-30-20-30-50-784 scaled down), every scale: chain factors for
  the hidden layers (neuron route "chain", layer route streamed, the first layer solved by CG and
  explicitly), the J = I output layer's Grams, activation configurations.
- `subset`: layers relu_2, relu_3 at neuron scale only: neuron Grams summed in the step through the
  explicit chain backward pass.
- `streamed`: a small budget (`max_gram_cost=0`) that streams the neuron factors of a dense layer
  outside a chain with a linear output (a softmax-free MLP with a rectified output).
- `network`: a tiny MLP whose network-scale Gram is recorded.
- `cross_entropy`: a small convnet with a softmax output, factored data, the bounded solver.
"""

import argparse
import json
import pathlib
import sys

import numpy as np


def _record(out_dir: pathlib.Path) -> None:
    import keras  # pylint: disable=import-outside-toplevel

    from keras_taylor.callbacks import ActivationRecorder, TaylorRecorder  # pylint: disable=import-outside-toplevel

    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    rng = np.random.default_rng(0)
    x = (rng.random((256, 64)) * (rng.random((256, 64)) < 0.4)).astype("float64")

    def autoencoder(seed):
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((64,))
        hidden = inputs
        for index, width in enumerate((12, 8, 6, 8, 12)):
            hidden = keras.layers.Dense(width, activation="relu", name=f"relu_{index + 1}")(hidden)
        outputs = keras.layers.Dense(64, name="output")(hidden)
        return keras.Model(inputs, outputs)

    runs = {
        "chain": dict(kwargs={}, activations=True),
        "subset": dict(kwargs=dict(layers=["relu_2", "relu_3"], scales=("neuron",)), activations=False),
    }
    for name, spec in runs.items():
        model = autoencoder(1)
        model.compile(keras.optimizers.RMSprop(1e-3), "mse")
        callbacks = [TaylorRecorder(out_dir / name / "taylor", batch_size=32, verbose=0, **spec["kwargs"])]
        if spec["activations"]:
            callbacks.append(ActivationRecorder(out_dir / name / "activations", x[:100]))
        model.fit(x, x, batch_size=32, epochs=3, verbose=0, callbacks=callbacks, shuffle=True)

    keras.utils.set_random_seed(2)
    mlp = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu", name="relu_1"),
                            keras.layers.Dense(8, activation="relu", name="relu_2")])
    mlp.compile(keras.optimizers.SGD(0.05), "mse")
    mlp.fit(x, rng.random((256, 8)), batch_size=32, epochs=2, verbose=0, callbacks=[TaylorRecorder(
        out_dir / "streamed" / "taylor", batch_size=32, max_gram_cost=0.0, scales=("neuron", "layer"),
        verbose=0)])

    keras.utils.set_random_seed(3)
    tiny = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu", name="relu_1"),
                             keras.layers.Dense(3, name="output")])
    tiny.compile(keras.optimizers.Adam(1e-2), "mse")
    tiny_x = rng.normal(size=(128, 6))
    tiny.fit(tiny_x, rng.normal(size=(128, 3)), batch_size=16, epochs=3, verbose=0,
             callbacks=[TaylorRecorder(out_dir / "network" / "taylor", batch_size=16, verbose=0)])

    keras.utils.set_random_seed(4)
    images = rng.random((96, 8, 8, 1))
    labels = rng.integers(0, 3, size=96)
    convnet = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu", name="conv_1"),
        keras.layers.Flatten(), keras.layers.Dense(6, activation="relu", name="relu_1"),
        keras.layers.Dense(3, activation="softmax", name="output")])
    convnet.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    convnet.fit(images, labels, batch_size=16, epochs=3, verbose=0, callbacks=[TaylorRecorder(
        out_dir / "cross_entropy" / "taylor", batch_size=16, neurons=2, scales=("neuron", "layer"),
        schedule=None, verbose=0)])


def _curve_numbers(curve) -> dict:
    return {"rounds": np.asarray(curve.rounds).tolist(), "cumulative_loss": np.asarray(curve.cumulative_loss).tolist(),
            "regret": np.asarray(curve.regret).tolist()}


def _analyze(out_dir: pathlib.Path) -> dict:
    from keras_taylor import analysis, exploration, storage  # pylint: disable=import-outside-toplevel

    numbers = {}
    for run_dir in sorted(path for path in out_dir.iterdir() if path.is_dir()):
        run = storage.load_run(run_dir / "taylor")
        manifest = run.manifest
        record = numbers[run_dir.name] = {}
        grid = analysis.checkpoint_rounds(run)
        if manifest["network"]["route"] != "skipped":
            record["network"] = _curve_numbers(analysis.regret_curve(run, rounds=grid))
        for layer, layer_record in sorted(manifest["layers"].items()):
            if layer_record["layer"] != "skipped":
                options = [{}]
                if layer_record["layer"] in ("stream", "chain"):  # format version 1 named the chain route "stream"
                    options = [{"layer_solver": "explicit"}, {"layer_solver": "cg", "cg_rtol": 1e-10}]
                for option in options:
                    key = f"{layer}/layer" + "".join(f"/{k}={v}" for k, v in option.items())
                    record[key] = _curve_numbers(analysis.regret_curve(run, layer, rounds=grid, **option))
            if layer_record["neuron"] != "skipped":
                band = analysis.neuron_regret_band(run, layer, rounds=grid)
                record[f"{layer}/neuron"] = {"neurons": band.neurons.tolist(), "regret": band.regret.tolist(),
                                             "cumulative_loss": band.cumulative_loss.tolist()}
        if (run_dir / "activations").exists():
            configs = exploration.PackedConfigurations.from_run(run_dir / "activations")
            record["exploration"] = {
                "min_hamming": exploration.min_hamming(configs).normalized.tolist(),
                "switches": exploration.switches(configs).tolist(),
                "log_volume": [None if not np.isfinite(v) else float(v)
                               for v in exploration.log_volume(configs, k=3)],
            }
    return numbers


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}/{key}", item, out)
    else:
        out[prefix] = np.asarray([np.nan if item is None else item for item in np.ravel(value)], dtype=np.float64)


def _compare(before_path: str, after_path: str) -> int:
    before, after = {}, {}
    _flatten("", json.loads(pathlib.Path(before_path).read_text()), before)
    _flatten("", json.loads(pathlib.Path(after_path).read_text()), after)
    status = 0
    if set(before) != set(after):
        print(f"keys differ: only before {sorted(set(before) - set(after))}, only after {sorted(set(after) - set(before))}")
        status = 1
    worst = 0.0
    for key in sorted(set(before) & set(after)):
        first, second = before[key], after[key]
        if first.shape != second.shape:
            print(f"{key}: shapes {first.shape} vs {second.shape}")
            status = 1
            continue
        scale = max(float(np.nanmax(np.abs(first))) if np.any(np.isfinite(first)) else 0.0, 1e-300)
        difference = np.abs(first - second)
        same_nan = np.isnan(first) & np.isnan(second)
        relative = float(np.max(np.where(same_nan, 0.0, difference)) / scale) if first.size else 0.0
        worst = max(worst, relative)
        print(f"{key}: {first.size} values, max |difference| / max |value| = {relative:.2e}")
    print(f"{len(before)} arrays compared; worst relative difference {worst:.2e}")
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("record", "analyze", "compare"))
    parser.add_argument("files", nargs="*", help="compare: the two JSON files")
    parser.add_argument("--out_dir", type=pathlib.Path)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    if args.command == "record":
        _record(args.out_dir)
    elif args.command == "analyze":
        args.json.write_text(json.dumps(_analyze(args.out_dir), indent=0))
    else:
        return _compare(*args.files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
