"""experiments: the convnet stopped at its training-accuracy plateau (Keras's EarlyStopping), and the
epochs a run trained as every report stage reads them."""

import csv
import json

import numpy as np
import pytest

from keras_taylor import experiments, exploration, storage

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


def test_exploration_without_the_units_dead_at_the_end(tmp_path, rng):
    rounds, points, widths = 6, 10, {"first": 5, "second": 6}
    configs = rng.random((rounds, points, sum(widths.values()))) < rng.uniform(0.2, 0.8, sum(widths.values()))
    configs[:, :, 3] = False  # dead throughout
    configs[4:, :, 7] = False  # dies at record 4: switches off on every point on the way
    configs[:4, 0, 7] = True
    manifest = {"kind": "activations", "num_units": configs.shape[2], "layer_order": list(widths),
                "layers": {name: {"shape": [width], "units": list(range(width))} for name, width in widths.items()}}
    writer = storage.RunWriter(tmp_path / "activations", manifest)
    for index, config in enumerate(configs):
        writer.append("configurations", step=index * 10, epoch=index - 1, packed=np.packbits(config, axis=1))
    writer.close()

    explored = experiments.explore_run(tmp_path / "activations", log_volume_k=3, epochs=5)["exploration"]
    alive = np.ones(configs.shape[2], bool)
    alive[[3, 7]] = False
    kept = configs[:, :, alive]
    alive_at_end = explored["alive_at_end"]
    assert alive_at_end["units"] == 9 and explored["dead_units"]["total"][-1] == 2
    naive_min_hamming = [min(np.sum(kept[n] != kept[k]) for k in range(n)) / kept[0].size for n in range(1, rounds)]
    np.testing.assert_allclose(alive_at_end["min_hamming_normalized"][1:], naive_min_hamming)
    assert alive_at_end["switches"]["mean_finite"] == pytest.approx(np.mean(kept[1:] != kept[:-1]))
    unit_volume = exploration.log_volume(configs, k=3, sort=False)
    assert alive_at_end["log_volume"]["mean_finite"] == pytest.approx(np.mean(unit_volume[alive][np.isfinite(unit_volume[alive])]))
    # The metrics over all units are unchanged by it.
    stored = [-np.inf if value is None else value for value in explored["log_volume_sorted"]]
    np.testing.assert_allclose(stored, np.sort(unit_volume))
    assert explored["switches"]["mean_finite"] == pytest.approx(np.mean(configs[1:] != configs[:-1]))
    # Unit 7 switched off on the way to dying: over all units the switches count it, alive ones do not.
    assert alive_at_end["switches"]["mean_finite"] != pytest.approx(
        explored["switches"]["mean_finite"] * configs.shape[2] / 9)
    every_unit_dead = tmp_path / "dead"
    writer = storage.RunWriter(every_unit_dead, manifest)
    for index in range(3):
        writer.append("configurations", step=index, epoch=index - 1,
                      packed=np.packbits(np.zeros(configs.shape[1:], bool), axis=1))
    writer.close()
    nothing_alive = experiments.explore_run(every_unit_dead, log_volume_k=1, epochs=2)["exploration"]["alive_at_end"]
    assert nothing_alive == {"units": 0, "min_hamming_normalized": None, "switches": None, "log_volume": None}
    # No unit dead: the metrics over the alive units are those over all units.
    none_dead = tmp_path / "none_dead"
    writer = storage.RunWriter(none_dead, manifest)
    for index, config in enumerate(configs):
        config = config.copy()
        config[0] = True  # every unit on at the first probe point
        writer.append("configurations", step=index, epoch=index - 1, packed=np.packbits(config, axis=1))
    writer.close()
    everyone = experiments.explore_run(none_dead, log_volume_k=3, epochs=5)["exploration"]
    assert everyone["alive_at_end"]["units"] == configs.shape[2]
    for key in ("min_hamming_normalized", "switches", "log_volume"):
        assert everyone["alive_at_end"][key] == everyone[key]
    per_layer = np.sort(exploration.log_volume(configs[:, :, :5] | (np.arange(10) == 0)[None, :, None], k=3))
    assert everyone["per_layer"]["first"]["log_volume_sorted"] == [None if not np.isfinite(v) else v for v in per_layer]
