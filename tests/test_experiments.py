"""experiments: the convnet stopped at its training-accuracy plateau (Keras's EarlyStopping), and the
epochs a run trained as every report stage reads them."""

import csv
import json

import numpy as np
import pytest

from keras_taylor import experiments, exploration

from data_fixtures import write_image_folder
from record_fixtures import old_schema, write_activations


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
    write_activations(tmp_path / "activations", configs, widths)

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
    _assert_summarizes(explored["log_volume"], np.sort(unit_volume), exploration.TOP_NEURONS)
    assert explored["switches"]["mean_finite"] == pytest.approx(np.mean(configs[1:] != configs[:-1]))
    # Unit 7 switched off on the way to dying: over all units the switches count it, alive ones do not.
    assert alive_at_end["switches"]["mean_finite"] != pytest.approx(
        explored["switches"]["mean_finite"] * configs.shape[2] / 9)
    every_unit_dead = tmp_path / "dead"
    write_activations(every_unit_dead, np.zeros((3, *configs.shape[1:]), bool), widths)
    nothing_alive = experiments.explore_run(every_unit_dead, log_volume_k=1, epochs=2)["exploration"]["alive_at_end"]
    assert nothing_alive == {"units": 0, "min_hamming_normalized": None, "switches": None, "log_volume": None}
    # No unit dead: the metrics over the alive units are those over all units.
    none_dead = tmp_path / "none_dead"
    all_on_first = configs.copy()
    all_on_first[:, 0] = True  # every unit on at the first probe point
    write_activations(none_dead, all_on_first, widths)
    everyone = experiments.explore_run(none_dead, log_volume_k=3, epochs=5)["exploration"]
    assert everyone["alive_at_end"]["units"] == configs.shape[2]
    for key in ("min_hamming_normalized", "switches"):
        assert everyone["alive_at_end"][key] == everyone[key]
    everyone["log_volume"].pop("top_finite")  # the report reads the top units over all units only
    assert everyone["alive_at_end"]["log_volume"] == everyone["log_volume"]
    per_layer = np.sort(exploration.log_volume(configs[:, :, :5] | (np.arange(10) == 0)[None, :, None], k=3))
    _assert_summarizes(everyone["per_layer"]["first"]["log_volume"], per_layer, exploration.top_count(5))


def _assert_summarizes(summary: dict, sorted_values: np.ndarray, top: int) -> None:
    """`summary` is `log_volume_summary` of `sorted_values`: computed here directly."""
    finite = sorted_values[np.isfinite(sorted_values)]
    assert summary["count"] == sorted_values.size and summary["num_infinite"] == sorted_values.size - finite.size
    assert summary["mean_finite"] == (pytest.approx(finite.mean()) if finite.size else None)
    quantiles = [sorted_values[int(np.floor(level * (sorted_values.size - 1)))] for level in np.linspace(0, 1, 101)]
    assert summary["quantiles"] == [None if np.isinf(v) else pytest.approx(v) for v in quantiles]
    np.testing.assert_allclose(summary["top_finite"], finite[max(0, finite.size - top):])


def test_the_log_volume_summary_keeps_the_top_finite_values(rng):
    for size, infinite, top in ((500, 30, 40), (30, 25, 40), (10, 10, 3), (180, 0, 40), (1, 0, 1)):
        values = np.sort(np.concatenate([np.full(infinite, -np.inf), rng.normal(0, 5, size - infinite)]))
        summary = experiments.log_volume_summary(values, top)
        _assert_summarizes(summary, values, top)
        assert len(summary["top_finite"]) == min(top, size - infinite)


def test_records_of_the_old_schema_upgrade_to_what_the_analysis_writes_now(tmp_path, rng):
    rounds, points, widths = 12, 40, {"wide": 200, "narrow": 9}
    units = sum(widths.values())
    configs = rng.random((rounds, points, units)) < rng.uniform(0.05, 0.95, units)
    configs[:, :, rng.choice(units, 30, replace=False)] = False  # dead throughout: −∞ log-volumes
    write_activations(tmp_path / "activations", configs, widths)
    explored = json.loads(json.dumps(experiments.explore_run(tmp_path / "activations", log_volume_k=4, epochs=11)))
    assert set(explored["exploration_by_length"]) == {"1", "2", "5", "10"}
    old = old_schema(explored, exploration.PackedConfigurations.from_run(tmp_path / "activations"), k=4)
    assert "log_volume_sorted" in old["exploration"] and "top_finite" not in old["exploration"]["log_volume"]
    assert json.dumps(experiments.upgrade_analysis(old)) == json.dumps(explored)  # same values, same key order
    assert experiments.upgrade_analysis(json.loads(json.dumps(explored))) == explored  # the current schema: as it is

    def corrupted(change):
        record = old_schema(explored, exploration.PackedConfigurations.from_run(tmp_path / "activations"), k=4)
        change(record["exploration_by_length"]["5"]["per_layer"]["narrow"])
        return record

    def swap(entry):  # the smallest finite value last: unsorted
        values = entry["log_volume_sorted"]
        first = entry["log_volume"]["num_infinite"]
        assert values[first] < values[-1]
        values[first], values[-1] = values[-1], values[first]

    changes = {"a unit too few": lambda entry: entry["log_volume_sorted"].pop(),
               "unsorted": swap,
               "one more −∞": lambda entry: entry["log_volume_sorted"].__setitem__(entry["log_volume"]["num_infinite"], None),
               "shifted": lambda entry: entry.update(log_volume_sorted=[v if v is None else v + 10
                                                                        for v in entry["log_volume_sorted"]]),
               "NaN": lambda entry: entry["log_volume_sorted"].__setitem__(-1, float("nan")),
               "+∞": lambda entry: entry["log_volume_sorted"].__setitem__(-1, float("inf"))}
    for what, change in changes.items():
        with pytest.raises(ValueError, match="exploration_by_length/5/narrow: the stored log-volumes"):
            experiments.upgrade_analysis(corrupted(change))
            pytest.fail(f"{what}: not refused")
    missing = corrupted(lambda entry: entry.pop("log_volume"))
    with pytest.raises(ValueError, match="exploration_by_length/5/narrow: a log-volume list without its summary"):
        experiments.upgrade_analysis(missing)
