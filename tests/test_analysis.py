"""Post-hoc Taylor optima and regret against explicit design matrices and known answers."""

import shutil
import warnings

import keras
import numpy as np
import pytest
import scipy.optimize

import keras_taylor as kt
from keras_taylor import analysis, schedules, storage
from keras_taylor.analysis.affine_rounds import LinearRound, StackedRounds
from keras_taylor.callbacks import TaylorRecorder

from conftest import WeightLog as _WeightLog
from conftest import assert_close, floatx
from conftest import small_mlp as _mlp

BATCH = 8


def _train(model, x, y, recorder, loss="mse", epochs=2):
    model.compile(keras.optimizers.SGD(0.05), loss)
    log = _WeightLog()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, callbacks=[log, recorder])
    return log.weights


def _snapshots(model, x, y, weights, loss="mse", examples=None):
    """The Taylor snapshot of every round, rebuilt from W^n and the minibatch x^n (or its first examples)."""
    snapshots = []
    batches = len(x) // BATCH
    for index, round_weights in enumerate(weights):
        model.set_weights(round_weights)
        start = (index % batches) * BATCH
        stop = start + (examples or BATCH)
        snapshots.append(kt.taylor_snapshot(model, x[start:stop], y[start:stop], loss))
    return snapshots


def _design_minimum(snapshots, layer=None, neuron=None):
    """min_V Σ_n 𝒯^n(V) for squared error from an explicit design matrix, by numpy.linalg.lstsq.

    𝒯^n(V) = κ‖f_n + G_n(V − W^n) − y_n‖² with G_n the full Jacobian w.r.t. V at that scale.
    """
    rows, targets = [], []
    for snapshot in snapshots:
        reference = snapshot.weights(layer, neuron)
        sizes = [part.size for part in reference]
        columns = []
        for part_index, part in enumerate(reference):
            for flat in range(part.size):
                unit = [np.zeros_like(p) for p in reference]
                unit[part_index].reshape(-1)[flat] = 1.0
                base = snapshot.approximation(reference, layer, neuron)
                shifted = snapshot.approximation([r + u for r, u in zip(reference, unit)], layer, neuron)
                columns.append((shifted - base).reshape(-1))
        design = np.stack(columns, axis=1)  # T(V) is affine: exact columns of G_n
        flat_reference = np.concatenate([part.reshape(-1) for part in reference])
        weight = np.sqrt(1.0 / snapshot.outputs.size)
        rows.append(weight * design)
        targets.append(weight * ((snapshot.targets - snapshot.outputs).reshape(-1) + design @ flat_reference))
        assert sum(sizes) == design.shape[1]
    design, target = np.concatenate(rows), np.concatenate(targets)
    solution = np.linalg.lstsq(design, target, rcond=None)[0]
    return float(np.sum((design @ solution - target) ** 2))


@pytest.fixture(scope="module")
def mse_runs(tmp_path_factory):
    """A tiny MLP trained 2 epochs of 3 rounds with every scale recorded, by gram and streamed routes."""
    with floatx("float64"):
        rng = np.random.default_rng(20261127)
        x, y = rng.normal(size=(3 * BATCH, 6)), rng.normal(size=(3 * BATCH, 3))
        directory = tmp_path_factory.mktemp("analysis")
        model = _mlp(np.random.default_rng(5))
        initial = model.get_weights()
        streamed = keras.models.clone_model(model)
        streamed.set_weights(model.get_weights())
        checkpoints = schedules.every_step()
        weights = _train(model, x, y, TaylorRecorder(directory / "gram", checkpoints=checkpoints, max_gram_cost=np.inf,
                                              verbose=0))
        # Dense layers off a chain stream their neuron factors; on it, the chain factors serve both scales.
        _train(streamed, x, y, TaylorRecorder(directory / "stream", scales=("neuron",), max_gram_cost=0.0,
                                              jtj_route="batch_jacobian", dtype="float64", verbose=0))
        chained = keras.models.clone_model(model)
        chained.set_weights(initial)
        _train(chained, x, y, TaylorRecorder(directory / "chain", scales=("neuron", "layer"), max_gram_cost=0.0,
                                             dtype="float64", verbose=0))
        # Without the first layer the chain's neuron Grams are summed in the step, q and diag(JᵀJ)
        # coming from the explicit backward products (recording.chain.chain_backward).
        subset = keras.models.clone_model(model)
        subset.set_weights(initial)
        _train(subset, x, y, TaylorRecorder(directory / "subset", layers=["second"], scales=("neuron",),
                                            checkpoints=checkpoints, max_gram_cost=np.inf, verbose=0))
        snapshots = _snapshots(model, x, y, weights)
    return directory, snapshots


def test_minimize_quadratic_matches_lstsq_on_rank_deficient_designs(rng):
    design = rng.normal(size=(4, 30, 9))
    design[:, :, 2] = 0.0  # a pixel that is zero in every image
    design[:, :, 5] = 3.0 * design[:, :, 1]
    target = rng.normal(size=(4, 30))
    gram = np.einsum("kbi,kbj->kij", design, design)
    linear = -np.einsum("kbi,kb->ki", design, target)
    minimum, minimizer, info = analysis.minimize_quadratic(gram, linear, np.sum(target**2, axis=1))
    for member in range(4):
        solution = np.linalg.lstsq(design[member], target[member], rcond=None)[0]
        assert_close(minimum[member], np.sum((design[member] @ solution - target[member]) ** 2), "float64")
        assert_close(design[member] @ minimizer[member], design[member] @ solution, "float64")
    np.testing.assert_array_equal(info["rank"], 7)
    assert np.all(info["range_residual"] < 1e-10)


def test_minimize_quadratic_of_a_dead_neuron_is_its_constant(rng):
    minimum, _, info = analysis.minimize_quadratic(np.zeros((1, 4, 4)), np.zeros((1, 4)), np.array([2.5]))
    assert minimum[0] == 2.5 and info["rank"][0] == 0


def test_minimize_quadratic_rejects_bad_shapes():
    with pytest.raises(ValueError, match="gram"):
        analysis.minimize_quadratic(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(2))


@pytest.mark.parametrize("scale", ["network", "layer_first", "layer_second", "layer_out", "neuron_first_2",
                                   "neuron_second_1", "neuron_out_0"])
def test_regret_matches_an_explicit_design_matrix(mse_runs, scale):
    directory, snapshots = mse_runs
    layer, neuron = None, None
    if scale != "network":
        parts = scale.split("_")
        layer, neuron = parts[1], (int(parts[2]) if parts[0] == "neuron" else None)
    curve = analysis.regret_curve(directory / "gram", layer, neuron)
    np.testing.assert_array_equal(curve.rounds, np.arange(1, 7))
    for position, count in enumerate(curve.rounds):
        expected = _design_minimum(snapshots[:count], layer, neuron)
        if curve.diagnostics.ill_conditioned[position]:
            # The Gram squares the design's condition number: directions it cannot resolve are
            # left out, which can only raise the minimum. Flagged, never silent.
            assert curve.cumulative_taylor_optimum[position] >= expected - 1e-9
            continue
        assert_close(curve.cumulative_taylor_optimum[position], expected, "float64", err_msg=f"N={count}")
    assert not curve.diagnostics.ill_conditioned[-1]
    incurred = np.cumsum([snapshot.loss for snapshot in snapshots])
    assert_close(curve.cumulative_loss, incurred, "float32")
    assert_close(curve.regret, curve.cumulative_loss - curve.cumulative_taylor_optimum, "float64")
    assert curve.diagnostics.converged.all()


@pytest.mark.parametrize("run,layer,route", [("stream", "first", "stream"), ("stream", "second", "stream"),
                                             ("stream", "out", "stream"), ("chain", "first", "chain"),
                                             ("chain", "second", "chain"), ("chain", "out", "stream"),
                                             ("subset", "second", "gram")],
                         ids=lambda value: str(value))
def test_streamed_neuron_routes_equal_the_gram_route(mse_runs, run, layer, route):
    directory, _ = mse_runs
    gram = analysis.neuron_regret_band(directory / "gram", layer)
    streamed = analysis.neuron_regret_band(directory / run, layer, rounds=[1, 2, 4, 6])
    assert kt.load_run(directory / run).manifest["layers"][layer]["neuron"] == route
    assert_close(streamed.cumulative_taylor_optimum, gram.cumulative_taylor_optimum[:, [0, 1, 3, 5]], "float32")


@pytest.mark.parametrize("layer", ["first", "second"])
@pytest.mark.parametrize("solver", ["explicit", "cg"])
def test_streamed_layer_route_matches_an_explicit_design_matrix(mse_runs, layer, solver):
    directory, snapshots = mse_runs
    assert kt.load_run(directory / "chain").manifest["layers"][layer]["layer"] == "chain"
    curve = analysis.regret_curve(directory / "chain", layer, rounds=[1, 3, 6], layer_solver=solver)
    for position, count in enumerate(curve.rounds):
        expected = _design_minimum(snapshots[:count], layer)
        assert_close(curve.cumulative_taylor_optimum[position], expected, "float32", err_msg=f"N={count}")
    assert curve.diagnostics.converged.all()


def test_neuron_band_statistics(mse_runs):
    directory, _ = mse_runs
    band = analysis.neuron_regret_band(directory / "gram", "first", sample=3, seed=1)
    assert len(band.neurons) == 3 and len(set(band.neurons.tolist())) == 3
    for curve, regret in zip(band.curves, band.regret):
        single = analysis.regret_curve(directory / "gram", "first", int(curve.neuron))
        assert_close(single.regret, regret, "float64")
    normalized = band.regret / np.sqrt(band.rounds)
    assert_close(band.mean_normalized_regret, normalized.mean(0), "float64")
    assert_close(band.std_normalized_regret, normalized.std(0), "float64")


def test_missing_scales_name_what_was_recorded(mse_runs):
    directory, _ = mse_runs
    with pytest.raises(analysis.MissingStatisticsError, match="recorded no layer 'nope'.*first"):
        analysis.regret_curve(directory / "gram", "nope")
    with pytest.raises(analysis.MissingStatisticsError, match="did not record the layer scale of layer 'first'"):
        analysis.regret_curve(directory / "stream", "first")
    with pytest.raises(analysis.MissingStatisticsError, match="no network-scale"):
        analysis.regret_curve(directory / "stream")
    with pytest.raises(analysis.MissingStatisticsError, match="no sums exist for rounds \\[7\\]"):
        analysis.regret_curve(directory / "gram", "first", 0, rounds=[2, 7])


def _fake_run(directory, losses, grams, linears, constants, counts):
    """A hand-written network-scale run: what a recorder would leave for a known problem."""
    manifest = {"kind": "taylor", "loss": {"name": "mean_squared_error", "reduction": "sum_over_batch_size",
                                           "quadratic": True},
                "layers": {}, "network": {"route": "gram"}, "checkpoints": schedules.every_step().to_config()}
    writer = storage.RunWriter(directory, manifest)
    for step, loss in enumerate(losses):
        writer.append("rounds", step=step, epoch=0, loss=loss, batch_size=1, finite=True)
    for gram, linear, constant, count in zip(grams, linears, constants, counts):
        writer.write_chunk("gram.network", step=np.array([count - 1]), rounds=np.array([count]),
                           rounds_in_sums=np.array([count]), gram=gram[None, None], linear=linear[None, None],
                           constant=np.array([[constant]]))
    writer.close()


def test_regret_of_online_gradient_descent_on_a_known_problem(tmp_path, rng):
    # f_n(v) = ‖v − a_n‖²: the hindsight optimum is Σ‖a_n − mean(a)‖², the learner's loss is known.
    points = rng.normal(size=(40, 3))
    iterate, losses = np.zeros(3), []
    for count, point in enumerate(points, start=1):
        losses.append(np.sum((iterate - point) ** 2))
        iterate = iterate - (iterate - point) / count  # the running mean: follow the leader
    counts = np.arange(1, 41)
    grams = [count * np.eye(3) for count in counts]
    linears = [-points[:count].sum(0) for count in counts]
    constants = [np.sum(points[:count] ** 2) for count in counts]
    _fake_run(tmp_path / "run", losses, grams, linears, constants, counts)
    curve = analysis.regret_curve(tmp_path / "run")
    optimum = [np.sum((points[:count] - points[:count].mean(0)) ** 2) for count in counts]
    assert_close(curve.cumulative_taylor_optimum, optimum, "float64")
    assert_close(curve.regret, np.cumsum(losses) - optimum, "float64")
    assert np.all(curve.regret >= -1e-9)  # the hindsight optimum is the best fixed point


def _power_curve(rounds, regret):
    return analysis.RegretCurve("layer", "x", None, rounds, regret, np.zeros_like(regret), regret, None)


def test_fit_growth_recovers_known_exponents_and_reports_signs():
    rounds = analysis.log_grid(10000, 20)
    fit = analysis.fit_growth(_power_curve(rounds, 3.0 * rounds**0.5))
    assert fit.status == "ok" and fit.sign == 1
    assert abs(fit.exponent - 0.5) < 1e-9 and fit.interval[0] <= 0.5 <= fit.interval[1]
    noisy = 3.0 * rounds**0.7 * np.exp(np.random.default_rng(0).normal(0, 0.05, len(rounds)))
    fit = analysis.fit_growth(_power_curve(rounds, noisy))
    assert fit.interval[0] < 0.7 < fit.interval[1] and fit.interval[1] - fit.interval[0] < 0.2
    negative = analysis.fit_growth(_power_curve(rounds, -2.0 * rounds**0.3))
    assert negative.sign == -1 and abs(negative.exponent - 0.3) < 1e-9
    assert analysis.fit_growth(_power_curve(rounds, np.zeros(len(rounds)))).status == "zero regret"
    changing = np.where(np.arange(len(rounds)) % 2 == 0, 1.0, -1.0) * rounds
    assert analysis.fit_growth(_power_curve(rounds, changing)).status == "sign changes"
    assert np.isnan(analysis.fit_growth(_power_curve(rounds, changing)).exponent)


# (sign of the regret, share of the grid fitted)
GROWTH_COEFFICIENT_CASES = {"positive_half": (1, 0.5), "negative_half": (-1, 0.5), "positive_last_third": (1, 1 / 3)}


@pytest.mark.parametrize("sign, fraction", GROWTH_COEFFICIENT_CASES.values(), ids=GROWTH_COEFFICIENT_CASES.keys())
def test_fit_growth_coefficient_is_the_least_squares_constant_of_log_regret_minus_a_log_n(rng, sign, fraction):
    rounds = np.unique(np.geomspace(1, int(rng.integers(500, 20000)), 24).astype(np.int64))
    noise = np.exp(rng.normal(0.0, 0.3, rounds.size))
    regret = sign * rng.uniform(0.1, 10.0) * rounds ** rng.uniform(0.2, 1.2) * noise
    fit = analysis.fit_growth(_power_curve(rounds, regret), fraction=fraction)
    assert fit.status == "ok" and fit.sign == sign
    used = fit.rounds_used
    log_regret = np.log(np.abs(regret[np.isin(rounds, used)]))
    # The exponent held fixed: log|c| = least squares of log|Regret(N)| − a·log N on a column of ones.
    (log_coefficient,), *_ = np.linalg.lstsq(np.ones((used.size, 1)), log_regret - fit.exponent * np.log(used),
                                             rcond=None)
    assert_close(fit.coefficient, sign * np.exp(log_coefficient), "float64")
    # Both free: the same line as the exponent's own fit.
    design = np.stack([np.ones(used.size), np.log(used)], axis=1)
    (intercept, slope), *_ = np.linalg.lstsq(design, log_regret, rcond=None)
    assert_close(fit.exponent, slope, "float64")
    assert_close(fit.coefficient, sign * np.exp(intercept), "float64")


def test_fit_growth_coefficient_of_an_exact_power_law_and_of_no_fit():
    rounds = analysis.log_grid(10000, 20)
    assert_close(analysis.fit_growth(_power_curve(rounds, -2.0 * rounds**0.3)).coefficient, -2.0, "float64")
    assert np.isnan(analysis.fit_growth(_power_curve(rounds, np.zeros(len(rounds)))).coefficient)


def test_analysis_imports_without_tensorflow():
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel

    code = "import sys, keras_taylor.analysis; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _classifier(rng, conv=False):
    if conv:
        inputs = keras.Input((6, 6, 2))
        hidden = keras.layers.Conv2D(3, 3, strides=2, padding="same", activation="relu", name="conv")(inputs)
        hidden = keras.layers.Flatten()(hidden)
    else:
        inputs = keras.Input((6,))
        hidden = keras.layers.Dense(5, activation="relu", name="first")(inputs)
    outputs = keras.layers.Dense(3, name="out")(hidden)
    model = keras.Model(inputs, outputs)
    for variable in model.weights:
        variable.assign(rng.normal(size=variable.shape) * 0.7)
    return model


@pytest.mark.parametrize("conv,examples", [(False, None), (True, None), (True, 3)],
                         ids=["dense", "conv", "conv_3_examples_per_round"])
def test_cross_entropy_optimum_matches_an_independent_bounded_solver(tmp_path, conv, examples):
    with floatx("float64"):
        rng = np.random.default_rng(7 + conv)
        x = rng.normal(size=(3 * BATCH,) + ((6, 6, 2) if conv else (6,)))
        y = rng.integers(0, 3, size=3 * BATCH)
        model = _classifier(np.random.default_rng(3), conv)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        recorder = TaylorRecorder(tmp_path / "ce", schedule=schedules.every_step(), dtype="float64", verbose=0,
                                  examples_per_round=examples)
        weights = _train(model, x, y, recorder, loss=loss, epochs=1)
        snapshots = _snapshots(model, x, y, weights, loss, examples=examples)
    layer = "conv" if conv else "first"
    for neuron, bound in ((None, None), (1, None), (1, 0.05)):  # 0.05: the ball binds
        curve = analysis.regret_curve(tmp_path / "ce", layer, neuron, rounds=[1, 3], radius=bound)
        reference = snapshots[0].weights(layer, neuron)
        shapes = [part.shape for part in reference]

        def unflatten(v):
            parts, start = [], 0
            for shape in shapes:
                size = int(np.prod(shape))
                parts.append(v[start:start + size].reshape(shape))
                start += size
            return parts

        trajectory = np.stack([np.concatenate([p.reshape(-1) for p in s.weights(layer, neuron)]) for s in snapshots])
        center = trajectory[0]
        radius = bound or max(np.linalg.norm(a - b) for a in trajectory for b in trajectory)
        for position, count in enumerate(curve.rounds):
            def objective(v):
                return sum(s.taylor_loss(unflatten(v), layer, neuron) for s in snapshots[:count])

            def gradient(v):
                return sum(np.concatenate([g.reshape(-1) for g in s.taylor_loss_gradient(unflatten(v), layer, neuron)])
                           for s in snapshots[:count])

            result = scipy.optimize.minimize(
                objective, center, jac=gradient, method="SLSQP", options={"ftol": 1e-14, "maxiter": 1000},
                constraints=[{"type": "ineq", "fun": lambda v: radius**2 - np.sum((v - center) ** 2),
                              "jac": lambda v: -2 * (v - center)}])
            assert result.success
            np.testing.assert_allclose(curve.cumulative_taylor_optimum[position], result.fun, rtol=1e-5)
        assert curve.diagnostics.converged.all()
        incurred = np.cumsum([s.loss for s in snapshots])[curve.rounds - 1]
        assert_close(curve.cumulative_loss, incurred, "float32")


@pytest.mark.parametrize("run,layer,neuron", [("chain", "first", None), ("chain", "second", 1),
                                              ("stream", "first", 2)], ids=str)
def test_rows_a_killed_run_streamed_ahead_of_its_rounds_are_left_out(mse_runs, tmp_path, run, layer, neuron):
    directory, _ = mse_runs
    killed = tmp_path / run
    shutil.copytree(directory / run, killed)
    rounds = storage.load_run(killed).stream("rounds")
    kept = {key: value[:3] for key, value in rounds.read().items()}  # the last rounds never reached the disk
    for path in rounds.chunk_paths:
        path.unlink()
    np.savez(rounds.chunk_paths[0], **kept)
    whole = analysis.regret_curve(directory / run, layer, neuron, rounds=[1, 3])
    cut = analysis.regret_curve(killed, layer, neuron, rounds=[1, 3])
    np.testing.assert_allclose(cut.cumulative_taylor_optimum, whole.cumulative_taylor_optimum, rtol=1e-12)
    with pytest.raises(analysis.MissingStatisticsError, match="recorded 3 rounds"):
        analysis.regret_curve(killed, layer, neuron, rounds=[4])


@pytest.mark.parametrize("loss", [kt.losses.SparseCategoricalCrossentropyFromLogits("sum_over_batch_size"),
                                  kt.losses.SparseCategoricalCrossentropyFromLogits("sum"),
                                  kt.losses.MeanSquaredError("sum_over_batch_size")], ids=str)
def test_stacked_neuron_rounds_match_the_per_round_loop(loss):
    rng = np.random.default_rng(11)
    outputs, size = 4, 7
    rounds = []
    for batch in (3, 5, 2, 6):  # unequal rounds: each keeps its own reduction
        targets = (rng.integers(0, outputs, batch) if "categorical" in loss.name
                   else rng.normal(size=(batch, outputs)))
        rounds.append(LinearRound(rng.normal(size=(batch, outputs)), targets,
                                            rng.normal(size=size), design=rng.normal(size=(batch, outputs, size))))
    stacked = StackedRounds.from_rounds(rounds, loss)
    for count in (1, 3, 4):
        v = rng.normal(size=size)
        value, gradient = stacked.prefix(count).value_and_gradient(v, loss)
        reference = sum(loss(r.outputs(v), r.targets) for r in rounds[:count])
        reference_gradient = sum(r.pullback(loss.gradient(r.outputs(v), r.targets)) for r in rounds[:count])
        assert_close(value, reference, "float64")
        assert_close(gradient, reference_gradient, "float64")
    assert_close(stacked.incurred(loss), [loss(r.outputs(r.weights), r.targets) for r in rounds], "float64")


def test_a_neuron_band_read_in_one_pass_equals_single_neuron_curves(tmp_path):
    with floatx("float64"):
        rng = np.random.default_rng(5)
        x, y = rng.normal(size=(3 * BATCH, 6, 6, 2)), rng.integers(0, 3, size=3 * BATCH)
        model = _classifier(np.random.default_rng(3), conv=True)
        recorder = TaylorRecorder(tmp_path / "ce", schedule=schedules.every_step(), dtype="float64", verbose=0)
        _train(model, x, y, recorder, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), epochs=1)
    band = analysis.neuron_regret_band(tmp_path / "ce", "conv", rounds=[1, 3])  # neurons 1, 2 read together
    assert band.neurons.tolist() == [0, 1, 2]
    for index, neuron in enumerate(band.neurons):
        curve = analysis.regret_curve(tmp_path / "ce", "conv", int(neuron), rounds=[1, 3])
        assert_close(band.cumulative_taylor_optimum[index], curve.cumulative_taylor_optimum, "float64")
    assert_close(band.cumulative_loss, curve.cumulative_loss, "float64")


def test_layer_stream_options_reach_cg_and_are_ignored_elsewhere(mse_runs):
    directory, _ = mse_runs
    loose = analysis.regret_curve(directory / "chain", "first", rounds=[2, 6], layer_solver="cg", cg_rtol=1e-1)
    tight = analysis.regret_curve(directory / "chain", "first", rounds=[2, 6], layer_solver="cg", cg_rtol=1e-10)
    assert (loose.diagnostics.gradient_norm <= 1e-1).all() and (tight.diagnostics.gradient_norm <= 1e-10).all()
    assert loose.diagnostics.iterations.sum() < tight.diagnostics.iterations.sum()
    gram = analysis.regret_curve(directory / "gram", "first", rounds=[2, 6], cg_rtol=1e-1)  # no CG on this route
    np.testing.assert_array_equal(gram.regret, analysis.regret_curve(directory / "gram", "first", rounds=[2, 6]).regret)
    with pytest.raises(TypeError, match="radius"):
        analysis.regret_curve(directory / "gram", "first", rounds=[2, 6], radius=1.0)
