"""ActivationRecorder: the packed configurations equal the masks of the model at each record."""

import keras
import numpy as np
import pytest

import keras_taylor as kt
from keras_taylor.callbacks import ActivationRecorder

from conftest import small_mlp as _mlp

BATCH = 8


class _MaskLog(keras.callbacks.Callback):
    def __init__(self, probe):
        super().__init__()
        self.probe, self.configurations = probe, []

    def on_train_begin(self, logs=None):
        self.configurations.append(kt.activation_masks(self.model, self.probe))

    def on_epoch_end(self, epoch, logs=None):
        self.configurations.append(kt.activation_masks(self.model, self.probe))


def test_activation_recorder_packs_the_masks_and_samples_units(tmp_path, rng):
    model = _mlp(rng)
    model.compile(keras.optimizers.Adam(0.05), "mse")
    probe = rng.normal(size=(37, 6)).astype("float32")
    x, y = rng.normal(size=(4 * BATCH, 6)), rng.normal(size=(4 * BATCH, 3))
    reference = _MaskLog(probe)
    recorder = ActivationRecorder(tmp_path / "run", probe, max_units_per_layer=3, seed=1, batch_size=10)
    model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, callbacks=[reference, recorder])
    run = kt.load_run(tmp_path / "run")
    layers = run.manifest["layers"]
    assert list(layers) == ["first", "second"]
    assert all(len(layer["units"]) == 3 for layer in layers.values())
    records = run.stream("configurations").read()
    np.testing.assert_array_equal(records["epoch"], [-1, 0, 1, 2])
    for packed, masks in zip(records["packed"], reference.configurations):
        unpacked = np.unpackbits(packed, axis=1, count=6).astype(bool)
        expected = np.concatenate([masks[name][:, layers[name]["units"]] for name in layers], axis=1)
        np.testing.assert_array_equal(unpacked, expected)
    assert not np.array_equal(records["packed"][0], records["packed"][-1])


def test_a_model_without_rectifiers_is_refused(tmp_path, rng):
    linear = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    linear.compile("sgd", "mse")
    x, y = rng.normal(size=(8, 6)), rng.normal(size=(8, 3))
    with pytest.raises(ValueError, match="no rectifier"):
        linear.fit(x, y, verbose=0, callbacks=[ActivationRecorder(tmp_path / "d", x)])
