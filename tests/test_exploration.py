"""Exploration metrics: each fast packed route against a naive loop or SVD, on fresh random configurations."""


import keras
import numpy as np
import pytest

import keras_taylor as kt
from conftest import assert_close, build_mlp
from keras_taylor import exploration, masks, storage
from keras_taylor.callbacks import ActivationRecorder
from keras_taylor.exploration import PackedConfigurations

# (N rounds, D points, M units): M off multiples of 8 (padding bits), D off multiples of the chunk sizes.
SHAPES = {
    "N6_D13_M11": (6, 13, 11),
    "N5_D16_M8": (5, 16, 8),
    "N8_D9_M17": (8, 9, 17),
    "N2_D7_M3": (2, 7, 3),
    "N9_D4_M5": (9, 4, 5),
}
CHUNK_SIZES = {"chunk1": 1, "chunk4": 4, "default_chunk": exploration.DEFAULT_CHUNK_POINTS}
STRUCTURES = ("walk", "independent")
INPUT_FORMS = ("bool", "packed")


def _random_configurations(rng, shape, structure="walk"):
    """bool `[N, D, M]`: each unit on with its own probability; "walk" flips ~15% of entries per round."""
    rounds, points, units = shape
    on_probability = rng.uniform(0.1, 0.9, size=units)
    if structure == "independent":
        return rng.random(shape) < on_probability
    configs = np.empty(shape, bool)
    configs[0] = rng.random((points, units)) < on_probability
    for n in range(1, rounds):
        flips = rng.random((points, units)) < 0.15
        configs[n] = configs[n - 1] ^ flips
    return configs


def _with_junk_padding(configs: PackedConfigurations, rng) -> PackedConfigurations:
    """The same configurations with every unused padding bit of the last byte drawn at random."""
    padding_bits = 8 * configs.packed.shape[2] - configs.num_units
    packed = configs.packed.copy()
    packed[:, :, -1] |= rng.integers(0, 2**padding_bits, size=packed.shape[:2], dtype=np.uint8)
    return PackedConfigurations(packed, configs.num_units, configs.steps, configs.epochs)


def _in_form(configs, form, rng):
    if form == "bool":
        return configs
    return _with_junk_padding(PackedConfigurations.from_bool(configs), rng)


# ---------------------------------------------------------------------------
# Naive references: loops over rounds, points and units; one SVD per unit.

def _naive_hamming(configs, later, earlier):
    _, points, units = configs.shape
    return sum(int(configs[later, d, m] != configs[earlier, d, m]) for d in range(points) for m in range(units))


def _naive_min_hamming(configs):
    rounds, points, units = configs.shape
    distance, nearest = [np.nan], [-1]
    for n in range(1, rounds):
        distances = [_naive_hamming(configs, n, k) for k in range(n)]
        distance.append(min(distances))
        nearest.append(distances.index(min(distances)))
    distance = np.array(distance)
    return distance, distance / (points * units), np.array(nearest)


def _naive_switches(configs):
    rounds, points, units = configs.shape
    counts = [
        sum(int(configs[n, d, m] != configs[n - 1, d, m]) for n in range(1, rounds) for m in range(units))
        for d in range(points)
    ]
    return np.array(counts) / (units * (rounds - 1))


def _naive_singular_values(configs):
    """`[M, min(N, D)]`: SVD of each unit's centered matrix, values past its numerical rank set to 0."""
    rows = []
    for m in range(configs.shape[2]):
        matrix = configs[:, :, m].astype(np.float64)
        centered = matrix - matrix.mean(axis=0)
        values = np.linalg.svd(centered, compute_uv=False)
        values[np.linalg.matrix_rank(centered):] = 0.0
        rows.append(values)
    return np.array(rows)


def _naive_log_volume(configs, k):
    with np.errstate(divide="ignore"):
        return np.array([np.sum(np.log(values[:k])) for values in _naive_singular_values(configs)])


def _assert_log_volumes_close(actual, desired):
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(desired))
    finite = np.isfinite(desired)
    assert np.isfinite(actual[finite]).all()
    assert_close(actual[finite], desired[finite], "float64")


# ---------------------------------------------------------------------------
# The metrics against the references.

@pytest.mark.parametrize("form", INPUT_FORMS)
@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("chunk_size", CHUNK_SIZES.values(), ids=CHUNK_SIZES.keys())
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_min_hamming_matches_loops(shape, chunk_size, structure, form, rng):
    configs = _random_configurations(rng, shape, structure)
    result = exploration.min_hamming(_in_form(configs, form, rng), chunk_size=chunk_size)
    distance, normalized, nearest = _naive_min_hamming(configs)
    np.testing.assert_array_equal(result.distance, distance)
    assert_close(result.normalized[1:], normalized[1:], "float64")
    assert np.isnan(result.normalized[0])
    np.testing.assert_array_equal(result.nearest, nearest)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_hamming_matrix_is_every_pair(shape, rng):
    configs = _random_configurations(rng, shape, "independent")
    distances = exploration.hamming_distances(configs, chunk_size=3)
    expected = [[_naive_hamming(configs, n, k) for k in range(shape[0])] for n in range(shape[0])]
    np.testing.assert_array_equal(distances, expected)


def test_min_hamming_looks_only_backwards(rng):
    # Round 1 equals round 2 and differs from round 0: a search over every k ≠ n would give 0.
    configs = _random_configurations(rng, (3, 10, 9), "independent")
    configs[1] = configs[2]
    configs[0] = ~configs[2]
    result = exploration.min_hamming(configs)
    np.testing.assert_array_equal(result.distance, [np.nan, 90, 0])
    np.testing.assert_array_equal(result.nearest, [-1, 0, 1])


@pytest.mark.parametrize("form", INPUT_FORMS)
def test_single_round_has_no_earlier_configuration(form, rng):
    configs = _random_configurations(rng, (1, 5, 11))
    result = exploration.min_hamming(_in_form(configs, form, rng))
    assert result.distance.shape == (1,) and np.isnan(result.distance[0]) and np.isnan(result.normalized[0])
    np.testing.assert_array_equal(result.nearest, [-1])


@pytest.mark.parametrize("form", INPUT_FORMS)
@pytest.mark.parametrize("chunk_size", CHUNK_SIZES.values(), ids=CHUNK_SIZES.keys())
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_switches_match_loops(shape, chunk_size, form, rng):
    configs = _random_configurations(rng, shape)
    unsorted = exploration.switches(_in_form(configs, form, rng), sort=False, chunk_size=chunk_size)
    expected = _naive_switches(configs)
    assert_close(unsorted, expected, "float64")
    assert_close(exploration.switches(configs, chunk_size=chunk_size), np.sort(expected), "float64")


def test_switches_of_a_point_that_flips_every_unit_every_round_are_one(rng):
    configs = _random_configurations(rng, (4, 6, 10))
    configs[:, 2] = np.arange(4)[:, None] % 2 == 0
    configs[:, 3] = configs[0, 3]
    proportions = exploration.switches(configs, sort=False)
    assert proportions[2] == 1.0 and proportions[3] == 0.0


@pytest.mark.parametrize("form", INPUT_FORMS)
def test_switches_need_two_rounds(form, rng):
    with pytest.raises(ValueError, match="at least 2 rounds"):
        exploration.switches(_in_form(_random_configurations(rng, (1, 4, 5)), form, rng))


@pytest.mark.parametrize("form", INPUT_FORMS)
@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("chunk_size", CHUNK_SIZES.values(), ids=CHUNK_SIZES.keys())
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_singular_values_and_log_volume_match_svd(shape, chunk_size, structure, form, rng):
    configs = _random_configurations(rng, shape, structure)
    given = _in_form(configs, form, rng)
    expected_values = _naive_singular_values(configs)
    values = exploration.centered_singular_values(given, chunk_size=chunk_size)
    assert values.shape == (shape[2], min(shape[:2]))
    np.testing.assert_array_equal(values == 0, expected_values == 0)
    assert_close(values, expected_values, "float64")
    available = min(shape[:2])
    for k in sorted({1, min(shape[0] - 1, available), available} - {0}):
        expected = _naive_log_volume(configs, k)
        unsorted = exploration.log_volume(given, k=k, sort=False, chunk_size=chunk_size)
        _assert_log_volumes_close(unsorted, expected)
        _assert_log_volumes_close(exploration.log_volume(given, k=k, chunk_size=chunk_size), np.sort(expected))
        _assert_log_volumes_close(exploration.log_volume_from_singular_values(values, k, sort=False), expected)


@pytest.mark.parametrize("bytes_per_block", [1, 2])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_singular_values_of_units_taken_in_blocks_are_those_of_all_at_once(shape, bytes_per_block, rng,
                                                                           monkeypatch):
    """Many units (a convnet's 24,288) are decomposed in blocks of packed bytes to bound memory: blocks
    of 8 and 16 units (the last one partial) give the SVD's values, bit for bit those of one block."""
    configs = _random_configurations(rng, shape)
    at_once = exploration.centered_singular_values(configs, chunk_size=4)
    rounds, points = shape[:2]
    per_byte = 8 * 5 * 8 * rounds * rounds + 13 * rounds * min(4, points)
    monkeypatch.setattr(exploration, "_SINGULAR_VALUES_MEMORY", bytes_per_block * per_byte + per_byte // 2)
    blocked = exploration.centered_singular_values(configs, chunk_size=4)
    np.testing.assert_array_equal(blocked, at_once)
    assert_close(blocked, _naive_singular_values(configs), "float64")


def test_log_volume_is_minus_infinity_exactly_when_rank_is_below_k(rng):
    rounds, points = 9, 400
    configs = _random_configurations(rng, (rounds, points, 4))
    configs[:, :, 0] = configs[0, :, 0]  # never changes: rank 0
    # Unit 1 alternates between two patterns: rank 1. Unit 2 moves all points but one along
    # a random pattern in time and that one along another: rank 2, the second singular
    # value 20 times smaller than the first, and kept.
    configs[:, :, 1] = np.where((np.arange(rounds) % 2 == 0)[:, None], configs[0, :, 1], ~configs[0, :, 1])
    lone = np.arange(rounds) % 3 == 0
    crowd = rng.random(rounds) < 0.5
    crowd[0], crowd[3] = True, False  # neither constant nor equal to `lone` or its negation
    configs[:, :, 2] = crowd[:, None]
    configs[:, 0, 2] = lone
    ranks = [np.linalg.matrix_rank(configs[:, :, m] - configs[:, :, m].mean(axis=0)) for m in range(4)]
    assert ranks[:3] == [0, 1, 2]
    values = exploration.centered_singular_values(configs)
    np.testing.assert_array_equal(np.count_nonzero(values, axis=1), ranks)
    for k in range(1, rounds + 1):
        volumes = exploration.log_volume(configs, k=k, sort=False)
        np.testing.assert_array_equal(np.isneginf(volumes), np.array(ranks) < k)
        _assert_log_volumes_close(volumes, _naive_log_volume(configs, k))


def test_one_point_moving_against_many_is_not_taken_for_rounding(rng):
    # The smallest nonzero eigenvalue here is ~1/D of the largest, far above rounding
    # (~N·eps of it), which a much coarser zero threshold would wrongly discard.
    rounds, points = 9, 200_000
    crowd = rng.random(rounds) < 0.5
    crowd[0], crowd[3] = True, False
    configs = np.repeat(crowd[:, None, None], points, axis=1)
    configs[:, 0, 0] = np.arange(rounds) % 3 == 0
    values = exploration.centered_singular_values(configs, chunk_size=65_536)
    expected = _naive_singular_values(configs)
    assert np.count_nonzero(values) == np.count_nonzero(expected) == 2
    assert values[0, 1] ** 2 < 1e-4 * values[0, 0] ** 2
    assert_close(values, expected, "float64")


@pytest.mark.parametrize("form", INPUT_FORMS)
def test_single_round_has_zero_volume(form, rng):
    configs = _random_configurations(rng, (1, 6, 9))
    np.testing.assert_array_equal(exploration.log_volume(_in_form(configs, form, rng), k=1), np.full(9, -np.inf))


@pytest.mark.parametrize("k", [0, 7, 2.0], ids=["zero", "above_min_N_D", "float"])
def test_log_volume_refuses_k_outside_the_singular_values(k, rng):
    configs = _random_configurations(rng, (6, 7, 3))
    # log_volume refuses before the decomposition, with the rounds' bound N − 1 in its message.
    bounds = "k must be an integer in \\[1, min\\(N, D\\)\\] = \\[1, 6\\].*min\\(N − 1, D\\) = 5"
    with pytest.raises(ValueError, match=bounds):
        exploration.log_volume(configs, k=k)
    with pytest.raises(ValueError, match="k must be an integer in \\[1, 6\\]"):
        exploration.log_volume_from_singular_values(exploration.centered_singular_values(configs), k=k)


def test_finite_floor_counts_and_floors_minus_infinity(rng):
    values = rng.normal(size=12) * 5
    values[[2, 7]] = -np.inf
    report = exploration.finite_floor(values)
    finite = np.isfinite(values)
    assert report.num_infinite == 2
    assert report.floor < values[finite].min()
    np.testing.assert_array_equal(report.values[finite], values[finite])
    np.testing.assert_array_equal(report.values[~finite], report.floor)
    assert exploration.finite_floor(values[finite]).num_infinite == 0
    assert exploration.finite_floor(np.full(3, -np.inf)).num_infinite == 3
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        exploration.finite_floor(np.array([1.0, np.nan]))


# ---------------------------------------------------------------------------
# The container.

@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_packed_round_trip_and_junk_padding_is_ignored(shape, rng):
    configs = _random_configurations(rng, shape)
    packed = PackedConfigurations.from_bool(configs)
    assert len(packed) == shape[0] and packed.num_points == shape[1] and packed.num_units == shape[2]
    np.testing.assert_array_equal(packed.unpack(), configs)
    np.testing.assert_array_equal(packed.unpack(1), configs[1])
    np.testing.assert_array_equal(packed.unpack([0, shape[0] - 1]), configs[[0, -1]])
    junk = _with_junk_padding(packed, rng)
    if shape[2] % 8:
        assert not np.array_equal(junk.packed, packed.packed)
    np.testing.assert_array_equal(junk.unpack(), configs)


def test_layer_takes_its_units(rng):
    configs = _random_configurations(rng, (4, 11, 13))
    slices = {"wide": slice(0, 9), "narrow": slice(9, 13)}
    packed = _with_junk_padding(PackedConfigurations.from_bool(configs, layer_slices=slices), rng)
    packed = PackedConfigurations(packed.packed, 13, packed.steps, packed.epochs, slices)
    for name, units in slices.items():
        layer = packed.layer(name, chunk_size=3)
        np.testing.assert_array_equal(layer.unpack(), configs[:, :, units])
        assert layer.num_units == units.stop - units.start
    with pytest.raises(ValueError, match="No layer 'missing'"):
        packed.layer("missing")
    with pytest.raises(ValueError, match="unit slices are unknown"):
        PackedConfigurations.from_bool(configs).layer("wide")


@pytest.mark.parametrize("chunk_size", [1, 4, 100], ids=["chunk1", "chunk4", "one_chunk"])
def test_units_keeps_the_selected_units_and_their_layers(chunk_size, rng):
    configs = _random_configurations(rng, (4, 11, 21))
    slices = {"first": slice(0, 9), "middle": slice(9, 13), "last": slice(13, 21)}
    packed = _with_junk_padding(PackedConfigurations.from_bool(configs, layer_slices=slices), rng)
    packed = PackedConfigurations(packed.packed, 21, packed.steps, packed.epochs, slices)
    selected = rng.random(21) < 0.6
    selected[9:13] = False  # a layer with no unit kept is dropped
    selected[[0, 20]] = True
    kept = packed.units(selected, chunk_size=chunk_size)
    np.testing.assert_array_equal(kept.unpack(), configs[:, :, selected])
    assert kept.num_units == selected.sum() and list(kept.layer_slices) == ["first", "last"]
    for name in ("first", "last"):
        np.testing.assert_array_equal(kept.layer(name).unpack(), configs[:, :, slices[name]][:, :, selected[slices[name]]])
    np.testing.assert_array_equal(exploration.switches(kept, sort=False),
                                  (configs[1:, :, selected] != configs[:-1, :, selected]).mean(axis=(0, 2)))
    for bad in (np.zeros(21, bool), np.ones(20, bool), np.ones(21, int)):
        with pytest.raises(ValueError, match="selected must be a bool"):
            packed.units(bad)


@pytest.mark.parametrize("chunk_size", [1, 4, 100], ids=["chunk1", "chunk4", "one_chunk"])
def test_dead_units_are_off_on_every_point(chunk_size, rng):
    configs = _random_configurations(rng, (5, 9, 11))
    configs[:, :, 3] = False  # dead throughout
    configs[2:, :, 7] = False  # dies at round 2
    configs[:, 4, 0] = True  # alive through one point only
    packed = _with_junk_padding(PackedConfigurations.from_bool(configs), rng)
    dead = exploration.dead_units(packed, chunk_size=chunk_size)
    np.testing.assert_array_equal(dead, ~configs.any(axis=1))
    assert dead[:, 3].all() and dead[2:, 7].all() and not dead[:, 0].any()


def test_first_epochs_are_the_records_made_before_that_epoch(rng):
    configs = _random_configurations(rng, (6, 5, 9))
    epochs = np.array([-1, 0, 0, 1, 3, 3])  # before training, twice in the first epoch, none in the third
    packed = PackedConfigurations.from_bool(configs, steps=np.arange(6) * 10, epochs=epochs)
    for first, count in ((0, 1), (1, 3), (2, 4), (3, 4), (4, 6), (9, 6)):
        prefix = packed.first_epochs(first)
        np.testing.assert_array_equal(prefix.unpack(), configs[:count])
        np.testing.assert_array_equal(prefix.steps, np.arange(count) * 10)
        np.testing.assert_array_equal(prefix.epochs, epochs[:count])
    with pytest.raises(ValueError, match="before epoch -1"):
        packed.first_epochs(-1)
    with pytest.raises(ValueError, match="not in epoch order"):
        PackedConfigurations.from_bool(configs, epochs=epochs[::-1].copy()).first_epochs(2)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 3, 4), np.uint8), np.zeros((2, 3, 4)), np.zeros((3, 4), bool), np.zeros((0, 3, 4), bool),
     [[["on"]]]],
    ids=["uint8", "float", "two_dims", "no_rounds", "strings"],
)
def test_non_boolean_configurations_are_refused(bad):
    with pytest.raises(ValueError, match="boolean array \\[N, D, M\\]"):
        exploration.min_hamming(bad)


def test_inconsistent_packed_arrays_are_refused(rng):
    packed = np.packbits(_random_configurations(rng, (3, 5, 11)), axis=2)
    steps = np.arange(3)
    with pytest.raises(ValueError, match="2 bytes per point but num_units=17 needs 3"):
        PackedConfigurations(packed, 17, steps, steps)
    with pytest.raises(ValueError, match="uint8 array"):
        PackedConfigurations(packed.astype(np.int16), 11, steps, steps)
    with pytest.raises(ValueError, match="steps must be an integer array \\[N\\] with N=3"):
        PackedConfigurations(packed, 11, np.arange(4), steps)
    with pytest.raises(ValueError, match="epochs must be an integer array"):
        PackedConfigurations(packed, 11, steps, steps.astype(float))
    with pytest.raises(ValueError, match="slices of range\\(11\\)"):
        PackedConfigurations(packed, 11, steps, steps, {"too_wide": slice(4, 12)})
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        exploration.switches(PackedConfigurations(packed, 11, steps, steps), chunk_size=0)


# ---------------------------------------------------------------------------
# Reading runs.

# Model order differs from alphabetical order, which is what the manifest's sorted JSON keys give back.
_LAYER_UNITS = {"hidden_b": 7, "hidden_a": 6}


def _write_activations_run(logdir, configs, steps, epochs, chunk_rows=2, **manifest_updates):
    units = {name: list(range(width)) for name, width in _LAYER_UNITS.items()}
    manifest = {
        "kind": "activations",
        "num_units": configs.shape[2],
        "layers": {name: {"shape": [len(u)], "units": u} for name, u in units.items()},
        **manifest_updates,
    }
    writer = storage.RunWriter(logdir, manifest, chunk_rows=chunk_rows)
    for config, step, epoch in zip(configs, steps, epochs):
        writer.append("configurations", step=step, epoch=epoch, packed=np.packbits(config, axis=1))
    writer.close()


def test_from_run_round_trip(tmp_path, rng):
    configs = _random_configurations(rng, (5, 12, sum(_LAYER_UNITS.values())))
    steps, epochs = np.array([-1, 9, 19, 29, 39]), np.array([-1, 0, 1, 2, 3])
    _write_activations_run(tmp_path / "run", configs, steps, epochs)
    assert len(storage.load_run(tmp_path / "run").stream("configurations").chunk_paths) == 3
    loaded = PackedConfigurations.from_run(tmp_path / "run", layer_order=list(_LAYER_UNITS))
    np.testing.assert_array_equal(loaded.unpack(), configs)
    np.testing.assert_array_equal(loaded.steps, steps)
    np.testing.assert_array_equal(loaded.epochs, epochs)
    np.testing.assert_array_equal(loaded.layer("hidden_b").unpack(), configs[:, :, :7])
    np.testing.assert_array_equal(loaded.layer("hidden_a").unpack(), configs[:, :, 7:])
    np.testing.assert_array_equal(exploration.min_hamming(loaded).distance, _naive_min_hamming(configs)[0])
    run = storage.load_run(tmp_path / "run")
    assert list(run.manifest["layers"]) == sorted(_LAYER_UNITS)  # why from_run needs layer_order
    with pytest.raises(ValueError, match="layer_order="):
        PackedConfigurations.from_run(run).layer("hidden_b")
    with pytest.raises(ValueError, match="name each recorded layer once"):
        PackedConfigurations.from_run(run, layer_order=["hidden_b"])


def test_from_run_of_a_single_layer_knows_its_slice(tmp_path, rng):
    configs = _random_configurations(rng, (3, 4, 6))
    manifest = {"kind": "activations", "num_units": 6, "layers": {"only": {"units": list(range(6))}}}
    writer = storage.RunWriter(tmp_path / "run", manifest)
    for config in configs:
        writer.append("configurations", step=0, epoch=0, packed=np.packbits(config, axis=1))
    writer.close()
    loaded = PackedConfigurations.from_run(storage.load_run(tmp_path / "run"))
    np.testing.assert_array_equal(loaded.layer("only").unpack(), configs)


def test_from_run_refuses_what_is_not_an_activations_run(tmp_path, rng):
    with pytest.raises(storage.CorruptRunError, match="no manifest.json"):
        PackedConfigurations.from_run(tmp_path / "nothing")
    storage.RunWriter(tmp_path / "taylor", {"kind": "taylor"}).close()
    with pytest.raises(ValueError, match="not an activations run: .*kind='taylor'"):
        PackedConfigurations.from_run(tmp_path / "taylor")
    storage.RunWriter(tmp_path / "empty", {"kind": "activations", "num_units": 3}).close()
    with pytest.raises(ValueError, match="no 'configurations' stream"):
        PackedConfigurations.from_run(tmp_path / "empty")
    (tmp_path / "empty" / "streams" / "configurations").mkdir(parents=True)
    with pytest.raises(ValueError, match="stream holds no complete chunk"):
        PackedConfigurations.from_run(tmp_path / "empty")
    storage.RunWriter(tmp_path / "no_units", {"kind": "activations"}).close()
    with pytest.raises(ValueError, match="num_units must be a positive integer"):
        PackedConfigurations.from_run(tmp_path / "no_units")


def test_from_run_refuses_rows_that_disagree(tmp_path, rng):
    units = sum(_LAYER_UNITS.values())
    configs = _random_configurations(rng, (4, 6, units))
    _write_activations_run(tmp_path / "points", configs, np.arange(4), np.arange(4))
    writer = storage.RunWriter(tmp_path / "points", {}, mode="resume")
    writer.append("configurations", step=4, epoch=4, packed=np.packbits(configs[0, :5], axis=1))
    writer.close()
    with pytest.raises(ValueError, match="chunk_000002.npz: rows of shape \\[D, B\\]=\\[5, 2\\]"):
        PackedConfigurations.from_run(tmp_path / "points")
    _write_activations_run(tmp_path / "units", configs, np.arange(4), np.arange(4), num_units=units + 8)
    with pytest.raises(ValueError, match="disagree with \\[D, B\\]=\\[6, 3\\]"):
        PackedConfigurations.from_run(tmp_path / "units", layer_order=None)
    writer = storage.RunWriter(tmp_path / "fields", {"kind": "activations", "num_units": units})
    writer.append("configurations", step=0, packed=np.packbits(configs[0], axis=1))
    writer.close()
    with pytest.raises(ValueError, match="lacks the fields \\['epoch'\\]"):
        PackedConfigurations.from_run(tmp_path / "fields")


def test_from_run_names_a_corrupt_chunk(tmp_path, rng):
    configs = _random_configurations(rng, (4, 6, 13))
    _write_activations_run(tmp_path / "run", configs, np.arange(4), np.arange(4))
    chunk = tmp_path / "run" / "streams" / "configurations" / "chunk_000001.npz"
    chunk.write_bytes(chunk.read_bytes()[:40])
    with pytest.raises(storage.CorruptRunError, match="chunk_000001.npz is corrupt"):
        PackedConfigurations.from_run(tmp_path / "run")


def test_from_run_reads_what_activation_recorder_writes(tmp_path, rng):
    model = build_mlp(rng)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    probe = rng.normal(size=(21, 5)).astype("float32")
    recorder = ActivationRecorder(tmp_path / "run", probe)
    model.fit(rng.normal(size=(16, 5)), rng.normal(size=(16, 3)), batch_size=8, epochs=2, verbose=0,
              callbacks=[recorder])
    order = [layer.name for layer in masks.rectifier_layers(model)]
    loaded = PackedConfigurations.from_run(tmp_path / "run", layer_order=order)
    assert len(loaded) == 3
    np.testing.assert_array_equal(loaded.epochs, [-1, 0, 1])
    final = kt.activation_masks(model, probe)
    for name in order:
        np.testing.assert_array_equal(loaded.layer(name).unpack(-1), final[name])
