"""callbacks.TaylorRecorder against slow references: what it records is what the optimizer used."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_taylor as kt
from keras_taylor import schedules, storage
from keras_taylor.callbacks import TaylorRecorder
from keras_taylor.errors import UnsupportedLayerError
from keras_taylor.quadratic_terms import QuadraticSums

from conftest import WeightLog as _WeightLog
from conftest import assert_close
from conftest import small_mlp as _mlp

BATCH = 8


def _fit_recorded(model, x, y, recorder, epochs=2, optimizer=None):
    model.compile(optimizer or keras.optimizers.SGD(0.05), "mse")
    log = _WeightLog()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, callbacks=[log, recorder])
    return log.weights


def _last(run, stream):
    rows = run.stream(stream).read()
    return QuadraticSums(rows["gram"][-1], rows["linear"][-1], rows["constant"][-1], int(rows["rounds"][-1]))


def _flat_layer(values):
    """[kernel, bias] -> vec of the [P, u] matrix with the bias as last row."""
    return np.concatenate([values[0], values[1][None]], axis=0).reshape(-1)


def test_sufficient_statistics_equal_summed_snapshot_taylor_losses(tmp_path, rng, float64):
    model = _mlp(rng)
    x, y = rng.normal(size=(5 * BATCH, 6)), rng.normal(size=(5 * BATCH, 3))
    weights = _fit_recorded(model, x, y, TaylorRecorder(tmp_path / "run", max_gram_cost=np.inf, verbose=0))
    run = kt.load_run(tmp_path / "run")
    reference = keras.models.clone_model(model)
    layer_totals, neuron_totals, network_total = {}, {}, 0.0
    probe = None
    for step, step_weights in enumerate(weights):
        for variable, value in zip(reference.trainable_weights, step_weights):
            variable.assign(value)
        batch = slice((step % 5) * BATCH, (step % 5 + 1) * BATCH)
        snapshot = kt.taylor_snapshot(reference, x[batch], y[batch], "mse")
        assert_close(run.stream("rounds").read("loss")[step], snapshot.loss, "float64")
        if probe is None:  # one random V per scale, far from W^n
            probe = {name: [rng.normal(size=w.shape) for w in snapshot.weights(name)] for name in snapshot.factors}
            network_probe = [rng.normal(size=w.shape) for w in snapshot.weights()]
        for name in snapshot.factors:
            layer_totals[name] = layer_totals.get(name, 0.0) + snapshot.taylor_loss(probe[name], layer=name)
            for unit in range(snapshot.factors[name].units):
                neuron_probe = [part[..., unit] for part in probe[name]]
                neuron_totals.setdefault(name, []).append(0.0) if step == 0 else None
                neuron_totals[name][unit] += snapshot.taylor_loss(neuron_probe, layer=name, neuron=unit)
        network_total += snapshot.taylor_loss(network_probe)
    assert _last(run, "gram.network").rounds == len(weights) == 10
    for name in ("first", "second"):
        sums = _last(run, f"gram.{name}.layer")
        assert_close(sums.value(_flat_layer(probe[name])[None])[0], layer_totals[name], "float64")
    for name in ("first", "second", "out"):
        sums = _last(run, f"gram.{name}.neuron")
        members = np.concatenate([probe[name][0], probe[name][1][None]]).T
        if name == "out":  # J = I: one shared Gram for every output unit
            sums = QuadraticSums(np.repeat(sums.gram, 3, 0), sums.linear, sums.constant)
        assert_close(sums.value(members), neuron_totals[name], "float64")
    network_vector = np.concatenate([_flat_layer(network_probe[i:i + 2]) for i in (0, 2, 4)])
    assert_close(_last(run, "gram.network").value(network_vector[None])[0], network_total, "float64")


def test_recorded_loss_and_gradient_are_those_the_optimizer_applied(tmp_path, rng, float64):
    model = _mlp(rng, dropout=0.4)
    x, y = rng.normal(size=(4 * BATCH, 6)), rng.normal(size=(4 * BATCH, 3))
    learning_rate = 0.05
    weights = _fit_recorded(
        model, x, y, TaylorRecorder(tmp_path / "run", record_gradients=True, verbose=0), epochs=1,
        optimizer=keras.optimizers.SGD(learning_rate),
    )
    weights.append([variable.numpy() for variable in model.trainable_weights])
    run = kt.load_run(tmp_path / "run")
    gradients = run.stream("gradients").read()
    for step in range(4):
        for index in range(len(model.trainable_weights)):
            applied = (weights[step][index] - weights[step + 1][index]) / learning_rate
            assert_close(gradients[f"w{index}"][step], applied, "float64")
    # The recorded loss is the training-mode (dropout) loss at W^0, not the inference one.
    losses = run.stream("rounds").read("loss")
    reference = keras.models.clone_model(model)
    reference.set_weights(weights[0])
    inference = float(keras.losses.MeanSquaredError()(y[:BATCH], reference(x[:BATCH], training=False)))
    assert np.all(np.isfinite(losses)) and abs(losses[0] - inference) > 1e-6 * inference


_DETERMINISM = """
import json, sys
import numpy as np, keras, tensorflow as tf
tf.config.experimental.enable_op_determinism()
from keras_taylor.callbacks import TaylorRecorder
def train(record):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    hidden = keras.layers.Dropout(0.3, seed=5)(hidden)
    outputs = keras.layers.Dense(3)(keras.layers.Dense(8, activation="relu")(hidden))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(96, 6)).astype("float32"), rng.normal(size=(96, 3)).astype("float32")
    callbacks = [TaylorRecorder(sys.argv[1], verbose=0)] if record else []
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=callbacks)
    return [w.numpy() for w in model.trainable_weights]
plain, recorded = train(False), train(True)
print(json.dumps(all(np.array_equal(a, b) for a, b in zip(plain, recorded))))
"""


def _python(script, *args):
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_recording_does_not_change_training(tmp_path):
    assert _python(_DETERMINISM, tmp_path / "run") is True


_MIRRORED = """
import json, sys
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import keras_taylor as kt
from keras_taylor.callbacks import TaylorRecorder
rng = np.random.default_rng(0)
x, y = rng.normal(size=(64, 5)).astype("float32"), rng.normal(size=(64, 2)).astype("float32")
def build():  # inside the strategy's scope
    keras.utils.set_random_seed(1)
    inputs = keras.Input((5,))
    hidden = kt.layers.RectifiedDense(6, name="first")(inputs)
    hidden = keras.layers.Dense(4, activation="relu", name="second")(hidden)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(hidden))
def train(strategy, logdir):
    with strategy.scope():
        model = build()
        model.compile(keras.optimizers.SGD(0.05), "mse")
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
              callbacks=[TaylorRecorder(logdir, verbose=0)])
    return kt.load_run(logdir)
def train_loop(strategy, logdir):  # a custom loop: TaylorRecorder.step_function
    with strategy.scope():
        model = build()
        optimizer = keras.optimizers.SGD(0.05)
        optimizer.build(model.trainable_weights)
    loss_fn = keras.losses.MeanSquaredError()
    def replica_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))
    recorder = TaylorRecorder(logdir, loss="mse", verbose=0)
    recorder.attach(model, batch_size=16, total_steps=8)
    step = recorder.step_function(replica_step, strategy)
    replicas = strategy.num_replicas_in_sync
    for epoch in range(2):
        recorder.on_epoch_begin(epoch)
        for start in range(0, 64, 16):
            def shard(values):
                return lambda context: values[start:start + 16][
                    context.replica_id_in_sync_group * 16 // replicas:][:16 // replicas]
            step(strategy.experimental_distribute_values_from_function(shard(x)),
                 strategy.experimental_distribute_values_from_function(shard(y)))
    recorder.close()
    return kt.load_run(logdir)
def compare(first, second):
    worst = 0.0
    for name in second.streams:
        a, b = first.stream(name).read(), second.stream(name).read()
        for key in b:
            scale = max(1.0, float(np.max(np.abs(b[key]))))
            worst = max(worst, float(np.max(np.abs(a[key].astype(float) - b[key].astype(float)))) / scale)
    return sorted(first.streams) == sorted(second.streams), worst
mirrored = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), sys.argv[1] + "/mirrored")
single = train(tf.distribute.OneDeviceStrategy("/cpu:0"), sys.argv[1] + "/single")
same, worst = compare(mirrored, single)
loop_same, loop_worst = compare(train_loop(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
                                           sys.argv[1] + "/loop"), single)
print(json.dumps({"same_streams": same, "worst": worst, "loop_same_streams": loop_same, "loop_worst": loop_worst}))
"""


def test_mirrored_strategy_records_the_single_device_statistics(tmp_path):
    result = _python(_MIRRORED, tmp_path)
    assert result["same_streams"] and result["loop_same_streams"]
    assert result["worst"] < 1e-4 and result["loop_worst"] < 1e-4  # fit, and a custom loop by step_function


def test_custom_loop_records_what_fit_records(tmp_path, rng, float64):
    x, y = rng.normal(size=(3 * BATCH, 6)), rng.normal(size=(3 * BATCH, 3))
    seed_rng = np.random.default_rng(7)
    fit_model = _mlp(seed_rng)
    loop_model = keras.models.clone_model(fit_model)
    loop_model.set_weights(fit_model.get_weights())
    _fit_recorded(fit_model, x, y, TaylorRecorder(tmp_path / "fit", max_gram_cost=np.inf, verbose=0), epochs=1)
    recorder = TaylorRecorder(tmp_path / "loop", loss="mse", max_gram_cost=np.inf, verbose=0)
    recorder.attach(loop_model, batch_size=BATCH, total_steps=3)
    optimizer, loss_fn = keras.optimizers.SGD(0.05), keras.losses.MeanSquaredError()
    import tensorflow as tf

    for step in range(3):
        xb, yb = x[step * BATCH:(step + 1) * BATCH], y[step * BATCH:(step + 1) * BATCH]
        with recorder.step(xb, yb):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, loop_model(xb, training=True))
            grads = tape.gradient(loss, loop_model.trainable_weights)
            optimizer.apply_gradients(zip(grads, loop_model.trainable_weights))
    recorder.close()
    fit_run, loop_run = kt.load_run(tmp_path / "fit"), kt.load_run(tmp_path / "loop")
    assert_close(loop_run.stream("rounds").read("loss"), fit_run.stream("rounds").read("loss"), "float64")
    for name in ("gram.first.layer", "gram.second.neuron", "gram.network"):
        assert_close(_last(loop_run, name).gram, _last(fit_run, name).gram, "float64")


def test_compiled_step_function_records_what_fit_records(tmp_path, rng, float64):
    x, y = rng.normal(size=(3 * BATCH, 6)), rng.normal(size=(3 * BATCH, 3))
    fit_model = _mlp(np.random.default_rng(7))
    loop_model = keras.models.clone_model(fit_model)
    loop_model.set_weights(fit_model.get_weights())
    _fit_recorded(fit_model, x, y, TaylorRecorder(tmp_path / "fit", max_gram_cost=np.inf, verbose=0), epochs=1)
    recorder = TaylorRecorder(tmp_path / "loop", loss="mse", max_gram_cost=np.inf, verbose=0,
                              schedule=schedules.every_k_steps(2))
    with pytest.raises(RuntimeError, match="attach"):
        recorder.step_function(lambda xb, yb: None)
    recorder.attach(loop_model, batch_size=BATCH, total_steps=3)
    optimizer, loss_fn = keras.optimizers.SGD(0.05), keras.losses.MeanSquaredError()
    import tensorflow as tf

    def replica_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, loop_model(xb, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, loop_model.trainable_weights),
                                      loop_model.trainable_weights))
        return loss

    step = recorder.step_function(replica_step)
    for index in range(3):
        step(x[index * BATCH:(index + 1) * BATCH], y[index * BATCH:(index + 1) * BATCH])
    recorder.close()
    for fit_weight, loop_weight in zip(fit_model.get_weights(), loop_model.get_weights()):
        assert_close(loop_weight, fit_weight, "float64")  # unrecorded steps train too
    fit_run, loop_run = kt.load_run(tmp_path / "fit"), kt.load_run(tmp_path / "loop")
    assert_close(loop_run.stream("rounds").read("loss"), fit_run.stream("rounds").read("loss")[[0, 2]], "float64")
    assert list(loop_run.stream("rounds").read("step")) == [0, 2]


_MULTI_WORKER = """
import json, os, sys
index, ports, logdir = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
if index >= 0:
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                          "task": {"type": "worker", "index": index}})
import numpy as np, tensorflow as tf
if index >= 0:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
else:
    strategy = tf.distribute.get_strategy()
import keras
import keras_taylor as kt
from keras_taylor.callbacks import TaylorRecorder
GLOBAL, STEPS, WORKERS = 32, 4, len(ports)
rng = np.random.default_rng(0)
x, y = rng.normal(size=(GLOBAL * STEPS, 5)).astype("float32"), rng.normal(size=(GLOBAL * STEPS, 2)).astype("float32")
with strategy.scope():
    inputs = keras.Input((5,))
    hidden = kt.layers.RectifiedDense(6, name="first")(inputs)
    hidden = keras.layers.Dense(4, activation="relu", name="second")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(hidden))
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    optimizer = keras.optimizers.SGD(0.05)
    optimizer.build(model.trainable_weights)
loss_fn = keras.losses.MeanSquaredError()
def replica_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))
    return loss
recorder = TaylorRecorder(logdir, loss="mse", max_gram_cost=float("inf"), verbose=0)
recorder.attach(model, batch_size=GLOBAL, total_steps=STEPS)
step = recorder.step_function(replica_step, strategy)
part = GLOBAL // WORKERS
for number in range(STEPS):
    batch = slice(number * GLOBAL, (number + 1) * GLOBAL)
    if index < 0:
        step(x[batch], y[batch])
        continue
    def shard(values):  # worker k's replica takes the k-th part of the global batch
        return lambda context: values[batch][context.replica_id_in_sync_group * part:][:part]
    step(strategy.experimental_distribute_values_from_function(shard(x)),
         strategy.experimental_distribute_values_from_function(shard(y)))
recorder.close()
print(json.dumps({"weights": [float(np.sum(np.abs(w))) for w in model.get_weights()]}))
"""


def _free_port() -> int:
    import socket  # pylint: disable=import-outside-toplevel

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_multi_worker_strategy_records_the_single_device_statistics(tmp_path):
    """Two workers on 127.0.0.1, one CPU each: the chief alone writes the one-device run."""
    import os  # pylint: disable=import-outside-toplevel

    ports = json.dumps([_free_port(), _free_port()])
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1",
                   "TMPDIR": str(tmp_path)}
    workers = [subprocess.Popen([sys.executable, "-c", _MULTI_WORKER, str(index), ports, str(tmp_path / "multi")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
               for index in range(2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    single = _python(_MULTI_WORKER, -1, ports, tmp_path / "single")
    assert [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs] == [single] * 2  # same training
    assert sorted(path.name for path in tmp_path.iterdir()) == ["multi", "single"]  # worker 1 cleaned up
    multi, reference = kt.load_run(tmp_path / "multi"), kt.load_run(tmp_path / "single")
    assert sorted(multi.streams) == sorted(reference.streams)
    assert len(reference.stream("rounds").read("loss")) == 4
    for name in reference.streams:
        expected, recorded = reference.stream(name).read(), multi.stream(name).read()
        for key in expected:
            assert_close(recorded[key], expected[key], "float32")


def test_nonfinite_rounds_are_recorded_and_flagged(tmp_path, rng, float64):
    model = _mlp(rng)
    x, y = rng.normal(size=(3 * BATCH, 6)), rng.normal(size=(3 * BATCH, 3))
    y[2 * BATCH + 2, 1] = np.inf  # the last round's loss is infinite
    _fit_recorded(model, x, y, TaylorRecorder(tmp_path / "run", max_gram_cost=np.inf, verbose=0), epochs=1)
    run = kt.load_run(tmp_path / "run")
    rounds = run.stream("rounds").read()
    np.testing.assert_array_equal(rounds["finite"], [True, True, False])
    assert np.isinf(rounds["loss"][2])
    assert run.manifest["nonfinite_rounds"] == [2]
    sums = _last(run, "gram.first.layer")
    assert np.all(np.isfinite(sums.gram)) and sums.rounds == 3
    assert run.stream("gram.first.layer").read("rounds_in_sums")[-1] == 2


def test_cross_entropy_stores_factored_data_of_sampled_neurons(tmp_path, rng):
    inputs = keras.Input((7, 7, 2))
    hidden = kt.layers.RectifiedConv2D(6, 3, padding="same", name="conv")(inputs)
    hidden = keras.layers.MaxPooling2D(2)(hidden)
    outputs = keras.layers.Dense(4, name="logits")(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = rng.normal(size=(2 * BATCH, 7, 7, 2)).astype("float32"), rng.integers(0, 4, 2 * BATCH)
    log = _WeightLog()
    recorder = TaylorRecorder(tmp_path / "run", neurons=2, schedule=schedules.every_step(), verbose=0)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[log, recorder])
    run = kt.load_run(tmp_path / "run")
    chosen = run.manifest["layers"]["conv"]["neurons"]
    assert len(chosen) == 2 and run.manifest["layers"]["conv"]["neuron"] == "factors"
    chunk = next(run.stream("factors").chunks())
    reference = keras.models.clone_model(model)
    for variable, value in zip(reference.trainable_weights, log.weights[0]):
        variable.assign(value)
    factors = kt.jacobians.layer_factors(reference, x[:BATCH])
    np.testing.assert_allclose(chunk["conv/jacobian"][0], factors["conv"].jac_out_wrt_preact, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(chunk["conv/inputs"][0], x[:BATCH], rtol=1e-6)
    np.testing.assert_array_equal(chunk["targets"][0], y[:BATCH])


def test_refusals_name_the_problem(tmp_path, rng):
    inputs = keras.Input((4,))
    hidden = keras.layers.BatchNormalization(name="bn")(keras.layers.Dense(3, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    model.compile("sgd", "mse")
    x, y = rng.normal(size=(8, 4)), rng.normal(size=(8, 2))
    with pytest.raises(UnsupportedLayerError, match="'bn'"):
        model.fit(x, y, verbose=0, callbacks=[TaylorRecorder(tmp_path / "a", verbose=0)])
    good = _mlp(rng)
    good.compile("sgd", "mse")
    x, y = rng.normal(size=(8, 6)), rng.normal(size=(8, 3))
    good.fit(x, y, verbose=0, callbacks=[TaylorRecorder(tmp_path / "b", verbose=0)])
    with pytest.raises(storage.RunExistsError, match="already holds a run"):
        good.fit(x, y, verbose=0, callbacks=[TaylorRecorder(tmp_path / "b", verbose=0)])
    with pytest.raises(ValueError, match="storage_budget_bytes"):
        good.fit(x, y, verbose=0, callbacks=[TaylorRecorder(tmp_path / "c", storage_budget_bytes=100, verbose=0)])


def test_resumed_run_appends_and_continues_the_sums(tmp_path, rng, float64):
    x, y = rng.normal(size=(3 * BATCH, 6)), rng.normal(size=(3 * BATCH, 3))
    whole = _mlp(np.random.default_rng(5))
    split = keras.models.clone_model(whole)
    split.set_weights(whole.get_weights())
    _fit_recorded(whole, x, y, TaylorRecorder(tmp_path / "whole", max_gram_cost=np.inf, verbose=0), epochs=2)
    split.compile(keras.optimizers.SGD(0.05), "mse")
    for mode in ("new", "resume"):
        split.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                  callbacks=[TaylorRecorder(tmp_path / "split", mode=mode, max_gram_cost=np.inf, verbose=0)])
    whole_run, split_run = kt.load_run(tmp_path / "whole"), kt.load_run(tmp_path / "split")
    np.testing.assert_array_equal(split_run.stream("rounds").read("step"), np.arange(6))
    assert_close(split_run.stream("rounds").read("loss"), whole_run.stream("rounds").read("loss"), "float64")
    for name in ("gram.first.layer", "gram.second.neuron", "gram.network"):
        resumed, reference = _last(split_run, name), _last(whole_run, name)
        assert resumed.rounds == reference.rounds == 6
        assert_close(resumed.gram, reference.gram, "float64")
        assert_close(resumed.constant, reference.constant, "float64")
    assert len(split_run.manifest["sessions"]) == 1


def test_tensorboard_scalars_and_data_description(tmp_path, rng):
    import tensorflow as tf

    model = _mlp(rng)
    x, y = rng.normal(size=(3 * BATCH, 6)).astype("float32"), rng.normal(size=(3 * BATCH, 3)).astype("float32")
    recorder = TaylorRecorder(tmp_path / "run", tensorboard_dir=tmp_path / "tb", verbose=0,
                              data_description={"name": "gaussian", "examples": 24})
    _fit_recorded(model, x, y, recorder, epochs=1)
    run = kt.load_run(tmp_path / "run")
    assert run.manifest["data"] == {"name": "gaussian", "examples": 24}
    scalars = {}
    for event_file in (tmp_path / "tb").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                scalars[event.step] = float(tf.make_ndarray(value.tensor))
    np.testing.assert_allclose([scalars[step] for step in range(3)], run.stream("rounds").read("loss"), rtol=1e-6)


def test_streamed_neuron_factors_sum_to_the_accumulated_grams(tmp_path, rng, float64):
    x, y = rng.normal(size=(3 * BATCH, 6)), rng.normal(size=(3 * BATCH, 3))
    accumulated = _mlp(np.random.default_rng(11))
    streamed = keras.models.clone_model(accumulated)
    streamed.set_weights(accumulated.get_weights())
    _fit_recorded(accumulated, x, y, TaylorRecorder(tmp_path / "gram", scales=("neuron",), verbose=0))
    _fit_recorded(streamed, x, y, TaylorRecorder(tmp_path / "stream", scales=("neuron",), max_gram_cost=0.0,
                                                 jtj_route="batch_jacobian",
                                                 dtype="float64", verbose=0))
    gram_run, stream_run = kt.load_run(tmp_path / "gram"), kt.load_run(tmp_path / "stream")
    assert stream_run.manifest["layers"]["second"]["neuron"] == "stream"
    for name in ("first", "second"):
        rows = stream_run.stream(f"stream.{name}").read()
        table = stream_run.stream(f"inputs.{name}").read()
        assert len(np.unique(table["inputs"], axis=0)) == len(table["inputs"])  # each distinct row once
        if name == "first":  # the model input: two epochs over x store x once
            assert len(table["inputs"]) == len(x) < len(rows["input_id"])
        inputs = table["inputs"][np.argsort(table["input_id"])][rows["input_id"]]
        weight, curvature = rows["weight"], rows["curvature"]
        gram = np.einsum("e,ek,ei,ej->kij", weight, curvature, inputs, inputs)
        linear = np.einsum("e,ek,ei->ki", weight, rows["q"] - curvature * rows["z"], inputs)
        constant = np.einsum("e,ek->k", weight, rows["residual_sq"][:, None] - 2 * rows["z"] * rows["q"]
                             + curvature * rows["z"] ** 2)
        reference = _last(gram_run, f"gram.{name}.neuron")
        assert_close(gram, reference.gram, "float64")
        assert_close(linear, reference.linear, "float64")
        assert_close(constant, reference.constant, "float64")


def test_propagated_jtj_equals_the_batch_jacobian_route_under_dropout(tmp_path, rng, float64):
    x, y = rng.normal(size=(3 * BATCH, 6)), rng.normal(size=(3 * BATCH, 3))
    runs = {}
    for route in ("propagate", "batch_jacobian"):
        model = _mlp(np.random.default_rng(3), dropout=0.3)
        _fit_recorded(model, x, y, TaylorRecorder(tmp_path / route, scales=("neuron", "layer"), jtj_route=route,
                                                  max_gram_cost=np.inf, verbose=0))
        runs[route] = kt.load_run(tmp_path / route)
    for name in ("gram.first.layer", "gram.first.neuron", "gram.second.layer"):
        fast, slow = _last(runs["propagate"], name), _last(runs["batch_jacobian"], name)
        assert_close(fast.gram, slow.gram, "float64")
        assert_close(fast.linear, slow.linear, "float64")


def test_streamed_chain_factors_rebuild_the_layer_grams(tmp_path, rng, float64):
    x, y = rng.normal(size=(3 * BATCH, 6)), rng.normal(size=(3 * BATCH, 3))
    runs = {}
    for route, cost in (("gram", np.inf), ("stream", 0.0)):
        model = _mlp(np.random.default_rng(3), dropout=0.3)
        _fit_recorded(model, x, y, TaylorRecorder(tmp_path / route, scales=("layer",), max_gram_cost=cost,
                                                  dtype="float64", verbose=0))
        runs[route] = kt.load_run(tmp_path / route)
    manifest = runs["stream"].manifest
    assert [manifest["layers"][name]["layer"] for name in ("first", "second", "out")] == ["chain", "chain", "gram"]
    assert manifest["chain"]["layers"] == ["first", "second", "out"]
    rows = runs["stream"].stream("chain").read()
    weights = runs["stream"].stream("chain.weights").read()
    table = runs["stream"].stream("inputs.first").read()
    first_inputs = table["inputs"][np.argsort(table["input_id"])][rows["input_id"]]
    for name, below in (("first", None), ("second", "first")):
        totals = [np.zeros_like(part) for part in (_last(runs["gram"], f"gram.{name}.layer").gram[0],
                                                   _last(runs["gram"], f"gram.{name}.layer").linear[0], 0.0)]
        for example in range(len(rows["step"])):
            round_index = int(np.flatnonzero(weights["step"] == rows["step"][example])[0])
            s_first, s_second = rows["first/s"][example], rows["second/s"][example]
            output_gram = weights["output_gram"][round_index]
            second_kernel = weights["second/kernel"][round_index]
            jtj = {"second": np.diag(s_second) @ output_gram @ np.diag(s_second)}
            jtj["first"] = np.diag(s_first) @ second_kernel @ jtj["second"] @ second_kernel.T @ np.diag(s_first)
            q = {"second": rows["q"][example]}
            q["first"] = s_first * (second_kernel @ q["second"])
            inputs = first_inputs[example] if below is None else np.append(
                rows[f"{below}/s"][example] * rows[f"{below}/z"][example], 1.0)
            terms = kt.quadratic_terms.layer_terms(inputs[None], rows[f"{name}/z"][example][None], q[name][None],
                                              rows["residual_sq"][example:example + 1], jtj[name][None],
                                              rows["weight"][example])
            for total, term in zip(totals, terms):
                total += term[0]
        reference = _last(runs["gram"], f"gram.{name}.layer")
        assert_close(totals[0], reference.gram[0], "float64")
        assert_close(totals[1], reference.linear[0], "float64")
        assert_close(totals[2], reference.constant[0], "float64")
