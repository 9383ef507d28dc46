"""experiments: the convnet stopped at its training-accuracy plateau (Keras's EarlyStopping), and the
epochs a run trained as every report stage reads them."""

import csv
import json

import numpy as np
import pytest

from keras_taylor import experiments

from data_fixtures import write_image_folder


def test_the_convnet_stops_when_its_training_accuracy_stops_rising(tmp_path, rng, monkeypatch):
    write_image_folder(tmp_path / "folder", rng, per_class=4, splits=("train",))
    monkeypatch.setattr("keras_taylor.data.load.DEFAULT_CACHE_DIR", str(tmp_path / "cache"))
    cap, patience = 30, 2
    config = experiments.TrainConfig(task="convnet", optimizer="adam", learning_rate=1e-3, epochs=cap,
                                     data_dir=str(tmp_path / "folder"), batch_size=4, taylor=False,
                                     activations=False, verbose=0, plateau_patience=patience)
    run_dir = experiments.train(config, tmp_path / "run")
    with open(run_dir / "history.csv") as handle:
        accuracy = [float(row["accuracy"]) for row in csv.DictReader(handle)]
    # The rule, epoch by epoch: stop after `patience` epochs without a new maximum.
    best, waited, expected = -np.inf, 0, cap
    for epoch, value in enumerate(accuracy):
        best, waited = (value, 0) if value > best else (best, waited + 1)
        if waited >= patience:
            expected = epoch + 1
            break
    done = json.loads((run_dir / "done.json").read_text())
    # 8 images: accuracy takes at most 9 values, so it stops well before the cap.
    assert done["epochs_trained"] == len(accuracy) == expected < cap
    assert experiments.trained_epochs(done) == expected
    assert experiments.trained_epochs({"config": {"epochs": 7}}) == 7  # a record from before stopping existed


def test_plateau_stopping_is_refused_where_no_accuracy_is_logged():
    with pytest.raises(ValueError, match="only the convnet logs an accuracy"):
        experiments.TrainConfig(task="autoencoder", plateau_patience=3)
    with pytest.raises(ValueError, match="plateau_patience=0"):
        experiments.TrainConfig(task="convnet", plateau_patience=0)
