"""scripts/: the maintenance scripts, run on tiny inputs."""

import importlib.util
import json
import pathlib

import numpy as np

from keras_taylor import experiments, exploration

from record_fixtures import old_schema, write_activations

_SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / "scripts"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, _SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_update_run_exploration_adds_what_is_new_only_where_the_stored_metrics_agree(tmp_path, rng):
    configs = rng.random((5, 12, 9)) < 0.5
    configs[:, :, 2] = False  # a dead unit
    write_activations(tmp_path / "run" / "activations", configs, {"a": 4, "b": 5})
    explored = json.loads(json.dumps(experiments.explore_run(tmp_path / "run" / "activations", 3, 4),
                                     default=lambda number: number.item()))
    old = {key: {length: {k: v for k, v in entry.items() if k != "alive_at_end"} for length, entry in value.items()}
           if key == "exploration_by_length" else {k: v for k, v in value.items() if k != "alive_at_end"}
           for key, value in explored.items()}
    record = json.loads(json.dumps({"run": {"config": {"epochs": 4}}, "analysis_config": {"log_volume_k": 3}, **old}))
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(record))
    record["exploration"]["switches"]["mean_finite"] += 1e-9  # not this run's activation records
    bad.write_text(json.dumps(record))

    script = _script("update_run_exploration")
    assert script.main([str(good), str(tmp_path / "run"), str(bad), str(tmp_path / "run")]) == 1
    updated = json.loads(good.read_text())
    assert updated["exploration"] == explored["exploration"] and updated["exploration"]["alive_at_end"]["units"] == 8
    assert updated["exploration_by_length"] == explored["exploration_by_length"]
    assert json.loads(bad.read_text()) == record  # untouched


def test_upgrade_run_records_shrinks_old_records_to_what_the_analysis_writes_now(tmp_path, rng):
    configs = rng.random((6, 20, 70)) < rng.uniform(0.1, 0.9, 70)
    configs[:, :, :8] = False  # dead units: −∞ log-volumes
    write_activations(tmp_path / "activations", configs, {"a": 60, "b": 10})
    explored = json.loads(json.dumps(experiments.explore_run(tmp_path / "activations", 3, 5)))
    # An analysis.json: its per-round losses are kept as they are (a run record would hold block means).
    current = {"run": {"config": {"epochs": 5}}, "analysis_config": {"log_volume_k": 3},
               "rounds": {"steps": list(range(300)), "loss": rng.uniform(0, 1, 300).tolist()}, **explored}
    old = {**current, **old_schema(explored, exploration.PackedConfigurations.from_run(tmp_path / "activations"), 3)}
    stale, fresh, corrupt = tmp_path / "stale.json", tmp_path / "fresh.json", tmp_path / "corrupt.json"
    stale.write_text(json.dumps(old))
    fresh.write_text(json.dumps(current))
    old["exploration"]["per_layer"]["b"]["log_volume_sorted"].insert(0, None)  # one −∞ unit too many
    corrupt.write_text(json.dumps(old))
    fresh_bytes, corrupt_bytes = fresh.read_bytes(), corrupt.read_bytes()

    script = _script("upgrade_run_records")
    assert script.main([str(stale), str(fresh), str(corrupt)]) == 1
    assert json.loads(stale.read_text()) == current
    assert fresh.read_bytes() == fresh_bytes and corrupt.read_bytes() == corrupt_bytes  # untouched
    assert script.upgrade(fresh) == "already current"
    assert script.upgrade(corrupt).startswith("NOT upgraded: exploration/b: the stored log-volumes")
