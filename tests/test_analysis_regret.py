"""analysis.regret: Regret(N) at every scale and route against explicit design matrices and known answers."""

import shutil

import keras
import numpy as np
import pytest

import keras_taylor as kt
from keras_taylor import analysis, schedules, storage
from keras_taylor.callbacks import TaylorRecorder

from conftest import ROUND_BATCH, assert_close, floatx, round_snapshots, train_recorded
from conftest import small_mlp as _mlp

BATCH = ROUND_BATCH


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
        weights = train_recorded(model, x, y, TaylorRecorder(directory / "gram", checkpoints=checkpoints, max_gram_cost=np.inf,
                                              verbose=0))
        # Dense layers off a chain stream their neuron factors; on it, the chain factors serve both scales.
        train_recorded(streamed, x, y, TaylorRecorder(directory / "stream", scales=("neuron",), max_gram_cost=0.0,
                                              jtj_route="batch_jacobian", dtype="float64", verbose=0))
        chained = keras.models.clone_model(model)
        chained.set_weights(initial)
        train_recorded(chained, x, y, TaylorRecorder(directory / "chain", scales=("neuron", "layer"), max_gram_cost=0.0,
                                             dtype="float64", verbose=0))
        # Without the first layer the chain's neuron Grams are summed in the step, q and diag(JᵀJ)
        # coming from the explicit backward products (recording.chain.chain_backward).
        subset = keras.models.clone_model(model)
        subset.set_weights(initial)
        train_recorded(subset, x, y, TaylorRecorder(directory / "subset", layers=["second"], scales=("neuron",),
                                            checkpoints=checkpoints, max_gram_cost=np.inf, verbose=0))
        snapshots = round_snapshots(model, x, y, weights)
    return directory, snapshots


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


def test_nonfinite_rounds_are_named_and_left_out(tmp_path, rng, float64):
    """A round with an infinite target: its Taylor data are not summed, the analysis says which step it
    was, and the regret of every prefix is that of its finite rounds (so the last point repeats the one before)."""
    model = _mlp(rng)
    x, y = rng.normal(size=(3 * BATCH, 6)), rng.normal(size=(3 * BATCH, 3))
    y[2 * BATCH + 2, 1] = np.inf  # the last of three rounds
    train_recorded(model, x, y, TaylorRecorder(tmp_path / "run", max_gram_cost=np.inf, checkpoints=schedules.every_step(),
                                       verbose=0), epochs=1)
    with pytest.warns(analysis.NonFiniteRoundsWarning, match=r"1 of 3 recorded rounds .*steps \[2\]"):
        curve = analysis.regret_curve(tmp_path / "run", "first")
    np.testing.assert_array_equal(curve.rounds, [1, 2, 3])
    assert np.all(np.isfinite(curve.regret)) and curve.regret[2] == curve.regret[1]
