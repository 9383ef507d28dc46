"""Layer-scale Taylor optima from streamed dense-chain factors, against explicit design matrices.

The run directories here are written by hand, as the recorder would leave them, for a
random chain 7 (+1) → 5 → 4 (no bias) → 3 → 6 with ReLU masks and a dropout keep-scale,
so that every J_l is a product of masked weights that the reference forms explicitly.
"""

import json

import numpy as np
import pytest

from keras_taylor import analysis, quadratic_terms, storage

from conftest import assert_at_most, assert_close

# The hand-made runs include a diverged round on purpose; the analysis names it in a warning.
pytestmark = pytest.mark.filterwarnings("ignore::keras_taylor.analysis.NonFiniteRoundsWarning")

CHAIN = ("h0", "h1", "h2", "out")
HIDDEN = CHAIN[:-1]
WIDTHS = {"input": 7, "h0": 5, "h1": 4, "h2": 3, "out": 6}
USE_BIAS = {"h0": True, "h1": False, "h2": True, "out": True}
KEEP = 0.75  # dropout between h1 and h2
# Examples per recorded round; 0 marks a non-finite round, which streams no rows.
BATCH_SIZES = (4, 4, 4, 0, 4, 2, 4)
FIRST_STEP = 10  # steps need not start at 0 (a resumed run)
ZERO_COLUMN = 2  # an input pixel that is zero in every example
DTYPES = ("float64", "float32")
SOLVERS = ("explicit", "cg")
CG_RTOL = 1e-10


def _relu_mask(z):
    return (z > 0).astype(np.float64)


def _with_one(rows, use_bias):
    return np.concatenate([rows, np.ones((len(rows), 1))], axis=1) if use_bias else rows


def _simulate(rng):
    """Per recorded round: the weights, every layer's x̃, z, s, the residual and κ of each example."""
    pool = rng.normal(size=(12, WIDTHS["input"]))
    pool[:, ZERO_COLUMN] = 0.0
    rounds, next_input = [], 0
    base = {name: rng.normal(0.0, 1.0, (WIDTHS[below] + USE_BIAS[name], WIDTHS[name]))
            / np.sqrt(WIDTHS[below]) for below, name in zip(("input",) + CHAIN[:-1], CHAIN)}
    for index, batch in enumerate(BATCH_SIZES):
        if batch == 0:
            rounds.append(None)
            continue
        ids = np.arange(next_input, next_input + batch) % len(pool)
        next_input += batch
        if index == 4:
            ids[1] = 0  # the pool cycles, so inputs recur across rounds; this one recurs within the round
        weights = {name: value + 0.3 * rng.normal(size=value.shape) / np.sqrt(len(value))
                   for name, value in base.items()}
        features, z, multipliers = {}, {}, {}
        layer_input = pool[ids]
        for name in CHAIN:
            features[name] = _with_one(layer_input, USE_BIAS[name])
            z[name] = features[name] @ weights[name]
            if name == "out":
                break
            multipliers[name] = _relu_mask(z[name])
            if name == "h1":
                multipliers[name] = multipliers[name] * (rng.random(z[name].shape) < KEEP) / KEEP
            layer_input = multipliers[name] * z[name]
        residual = z["out"] - rng.normal(size=z["out"].shape)
        rounds.append({"ids": ids, "weights": weights, "features": features, "z": z, "s": multipliers,
                       "residual": residual, "kappa": 1.0 / (batch * WIDTHS["out"])})
    return pool, rounds


def _kernel(weights, name):
    return weights[name][: weights[name].shape[0] - USE_BIAS[name]]


def _jacobians(taylor_round):
    """Per hidden layer, J_l `[B, 6, u_l]` formed explicitly: W_Lᵀ S_{L−1}, then J_k = J_{k+1} W_{k+1}ᵀ S_k."""
    weights, multipliers = taylor_round["weights"], taylor_round["s"]
    jacobians = {"h2": np.einsum("kp,bk->bpk", _kernel(weights, "out"), multipliers["h2"])}
    for name, above in (("h1", "h2"), ("h0", "h1")):
        jacobians[name] = np.einsum("bpj,kj,bk->bpk", jacobians[above], _kernel(weights, above), multipliers[name])
    return jacobians


def _write_run(directory, pool, rounds, dtype, skip_streams=()):
    """What a TaylorRecorder streaming the chain's factors would leave (chunks of 5 rows cut rounds apart)."""
    manifest = {
        "kind": "taylor", "dtype": dtype,
        "loss": {"name": "mean_squared_error", "reduction": "sum_over_batch_size", "quadratic": True},
        "layers": {name: {"neuron": "skipped", "layer": "chain" if name in HIDDEN else "gram", "neurons": [],
                          "reasons": [], "kind": "dense", "use_bias": USE_BIAS[name],
                          "jacobian_is_identity": name == "out"} for name in CHAIN},
        "layer_order": list(CHAIN), "network": {"route": "skipped"},
        "chain": {"layers": list(CHAIN), "use_bias": dict(USE_BIAS)},
    }
    writer = storage.RunWriter(directory, manifest, chunk_rows=5)

    def extend(stream, **rows):
        if stream not in skip_streams:
            writer.extend(stream, **rows)

    seen = set()
    for index, taylor_round in enumerate(rounds):
        step = FIRST_STEP + index
        if taylor_round is None:
            writer.append("rounds", step=step, epoch=0, loss=np.inf, batch_size=4, finite=False)
            continue
        loss = taylor_round["kappa"] * np.sum(taylor_round["residual"] ** 2)
        writer.append("rounds", step=step, epoch=0, loss=loss, batch_size=len(taylor_round["ids"]), finite=True)
        new = sorted(set(taylor_round["ids"].tolist()) - seen)
        seen.update(new)
        if new:
            extend("inputs.h0", input_id=np.array(new), inputs=_with_one(pool[new], True).astype(dtype))
        weights, batch = taylor_round["weights"], len(taylor_round["ids"])
        output_kernel = _kernel(weights, "out")
        q_top = np.einsum("kp,bp->bk", output_kernel, taylor_round["residual"]) * taylor_round["s"]["h2"]
        per_layer = {f"{name}/{key}": taylor_round[key][name].astype(dtype) for name in HIDDEN for key in ("z", "s")}
        extend("chain", step=np.full(batch, step), weight=np.full(batch, taylor_round["kappa"]),
               residual_sq=np.sum(taylor_round["residual"] ** 2, axis=1), input_id=taylor_round["ids"],
               q=q_top.astype(dtype), **per_layer)
        kernels = {f"{name}/kernel": _kernel(weights, name)[None].astype(dtype) for name in HIDDEN[1:]}
        extend("chain.weights", step=np.array([step]),
               output_gram=(output_kernel @ output_kernel.T)[None].astype(dtype), **kernels)
    writer.close()


def _reference_minima(rounds, layer):
    """`[R]` min_V Σ_{n≤N} 𝒯^n(V) for N = 1..R, by numpy.linalg.lstsq on the explicit design.

    𝒯^n(V) = Σ_e κ‖r_e + J_e(Vᵀx̃_e − z_e)‖², so example e contributes the rows √κ (J_e ⊗ x̃_eᵀ).
    The same sums through `quadratic_terms.layer_terms` must give that value at the lstsq minimizer.
    """
    designs, targets, terms, minima = [], [], [], []
    for taylor_round in rounds:
        if taylor_round is not None:
            jacobian = _jacobians(taylor_round)[layer]
            features, z = taylor_round["features"][layer], taylor_round["z"][layer]
            root = np.sqrt(taylor_round["kappa"])
            design = np.einsum("bpk,bi->bpik", jacobian, features)
            designs.append(root * design.reshape(-1, features.shape[1] * z.shape[1]))
            targets.append(-root * (taylor_round["residual"] - np.einsum("bpk,bk->bp", jacobian, z)).reshape(-1))
            terms.append(quadratic_terms.layer_terms(
                features, z, np.einsum("bpk,bp->bk", jacobian, taylor_round["residual"]),
                np.sum(taylor_round["residual"] ** 2, axis=1), np.einsum("bpk,bpl->bkl", jacobian, jacobian),
                taylor_round["kappa"]))
        if not designs:  # no example yet: the sum is empty
            minima.append(0.0)
            continue
        design, target = np.concatenate(designs), np.concatenate(targets)
        solution = np.linalg.lstsq(design, target, rcond=None)[0]
        minima.append(np.sum((design @ solution - target) ** 2))
        gram, linear, constant = (sum(parts) for parts in zip(*terms))
        assert_close(solution @ gram[0] @ solution + 2 * linear[0] @ solution + constant[0], minima[-1], "float64")
    return np.array(minima)


def _reference_neuron_minima(rounds, layer, neuron):
    """`[R]` min_v Σ_{n≤N} 𝒯^n(v) of one neuron α by lstsq: example e contributes the rows
    √κ J_e[:, α] x̃_eᵀ and the targets −√κ (r_e − J_e[:, α] z_α)."""
    designs, targets, minima = [], [], []
    for taylor_round in rounds:
        if taylor_round is not None:
            column = _jacobians(taylor_round)[layer][:, :, neuron]  # [B, p_L]
            features, z = taylor_round["features"][layer], taylor_round["z"][layer][:, neuron]
            root = np.sqrt(taylor_round["kappa"])
            designs.append(root * np.einsum("bp,bi->bpi", column, features).reshape(-1, features.shape[1]))
            targets.append(-root * (taylor_round["residual"] - column * z[:, None]).reshape(-1))
        if not designs:
            minima.append(0.0)
            continue
        design, target = np.concatenate(designs), np.concatenate(targets)
        solution = np.linalg.lstsq(design, target, rcond=None)[0]
        minima.append(np.sum((design @ solution - target) ** 2))
    return np.array(minima)


def _independent_prefixes(rounds) -> np.ndarray:
    """`[R]` whether the distinct inputs x̃ of the first layer in rounds [0, n] are linearly independent."""
    seen, independent = {}, []
    for taylor_round in rounds:
        if taylor_round is not None:
            seen.update(zip(taylor_round["ids"].tolist(), taylor_round["features"][CHAIN[0]]))
        table = np.array(list(seen.values()))
        independent.append(np.linalg.matrix_rank(table) == len(table))
    return np.array(independent)


@pytest.fixture(scope="module")
def chain_runs(tmp_path_factory):
    """The simulated rounds and their run directory at each stored dtype."""
    pool, rounds = _simulate(np.random.default_rng(20260311))
    for name in HIDDEN:  # the masks are not trivial: units on and off in every rectifier layer
        active = np.concatenate([taylor_round["s"][name] for taylor_round in rounds if taylor_round is not None]) > 0
        assert 0.2 < active.mean() < 0.8, name
    directory = tmp_path_factory.mktemp("chain")
    for dtype in DTYPES:
        _write_run(directory / dtype, pool, rounds, dtype)
    return directory, pool, rounds


@pytest.mark.parametrize("layer", HIDDEN)
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_streamed_layer_optimum_matches_an_explicit_design(chain_runs, dtype, solver, layer):
    directory, _, rounds = chain_runs
    curve = analysis.regret_curve(directory / dtype, layer, layer_solver=solver, cg_rtol=CG_RTOL)
    np.testing.assert_array_equal(curve.rounds, np.arange(1, len(BATCH_SIZES) + 1))
    assert_close(curve.cumulative_taylor_optimum, _reference_minima(rounds, layer), dtype)
    assert curve.diagnostics.converged.all()
    if solver == "cg":
        assert "conjugate gradients" in curve.diagnostics.method
        assert np.all(curve.diagnostics.gradient_norm <= CG_RTOL)
        streamed = np.array(BATCH_SIZES) > 0
        # The first layer's inputs repeat: while a prefix's distinct inputs are linearly independent
        # CG starts at the exact minimizer and takes no step.
        exact = _independent_prefixes(rounds) if layer == CHAIN[0] else np.zeros(len(rounds), bool)
        assert exact.any() == (layer == CHAIN[0]) and not exact.all()
        assert ("exact minimizer" in curve.diagnostics.method) == (layer == CHAIN[0])
        assert np.all(curve.diagnostics.iterations[streamed & ~exact] > 0)
        np.testing.assert_array_equal(curve.diagnostics.iterations[exact], 0)
        # A round without rows leaves the problem as it was: the warm start is already its solution.
        np.testing.assert_array_equal(curve.diagnostics.iterations[~streamed], 0)
    else:
        assert "Cholesky" in curve.diagnostics.method
        assert np.all(curve.diagnostics.rank > 0)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_pass_over_every_layer_and_scale_matches_the_explicit_designs(chain_runs, tmp_path, dtype, solver):
    """`layer_regrets` serves every hidden layer's layer and neuron scale from one pass down the chain."""
    directory, pool, rounds = chain_runs
    neurons = {name: list(range(WIDTHS[name])) for name in HIDDEN}
    manifest = storage.load_run(directory / dtype).manifest
    for name in HIDDEN:  # the same run, with every neuron recorded on the chain route
        manifest["layers"][name].update(neuron="chain", neurons=neurons[name])
    run = tmp_path / "run"
    _write_run(run, pool, rounds, dtype)
    (run / "manifest.json").write_text(json.dumps(manifest))
    regrets = analysis.layer_regrets(run, HIDDEN, layer_solver=solver, cg_rtol=CG_RTOL)
    assert set(regrets.layers) == set(regrets.neurons) == set(HIDDEN) and not regrets.missing
    for name in HIDDEN:
        assert_close(regrets.layers[name].cumulative_taylor_optimum, _reference_minima(rounds, name), dtype)
        band = regrets.neurons[name]
        np.testing.assert_array_equal(band.neurons, neurons[name])
        for index, neuron in enumerate(neurons[name]):
            assert_close(band.cumulative_taylor_optimum[index], _reference_neuron_minima(rounds, name, neuron), dtype,
                         err_msg=f"{name} neuron {neuron}")
        # One layer asked alone gives the same numbers as all of them in one pass.
        alone = analysis.regret_curve(run, name, layer_solver=solver, cg_rtol=CG_RTOL)
        assert_close(alone.regret, regrets.layers[name].regret, "float64")
        alone_band = analysis.neuron_regret_band(run, name)
        assert_close(alone_band.regret, band.regret, "float64")
    sampled = analysis.layer_regrets(run, ["h0"], scales=["neuron"], sample=2, seed=3)
    assert not sampled.layers
    np.testing.assert_array_equal(sampled.neurons["h0"].neurons,
                                  analysis.neuron_regret_band(run, "h0", sample=2, seed=3).neurons)


def test_a_subset_of_rounds_and_the_automatic_solver_choice(chain_runs):
    directory, _, rounds = chain_runs
    expected = _reference_minima(rounds, "h0")[[1, 5]]
    small = analysis.regret_curve(directory / "float64", "h0", rounds=[6, 2])
    large = analysis.regret_curve(directory / "float64", "h0", rounds=[2, 6], max_explicit_parameters=39,
                                  cg_rtol=CG_RTOL)
    assert "Cholesky" in small.diagnostics.method  # P·u = 8·5 = 40 parameters
    assert "conjugate gradients" in large.diagnostics.method
    np.testing.assert_array_equal(small.rounds, [2, 6])
    assert_close(small.cumulative_taylor_optimum, expected, "float64")
    assert_close(large.cumulative_taylor_optimum, expected, "float64")
    with pytest.raises(analysis.MissingStatisticsError, match="recorded 7 rounds; asked for rounds \\[2, 8\\]"):
        analysis.regret_curve(directory / "float64", "h0", rounds=[2, 8])
    with pytest.raises(ValueError, match="layer_solver="):
        analysis.regret_curve(directory / "float64", "h0", layer_solver="lbfgs")


def test_cg_warns_and_reports_an_upper_bound_when_maxiter_is_too_small(chain_runs):
    directory, _, rounds = chain_runs
    with pytest.warns(analysis.TaylorOptimumWarning, match="did not reach cg_rtol"):
        curve = analysis.regret_curve(directory / "float64", "h0", layer_solver="cg", cg_rtol=CG_RTOL, cg_maxiter=2)
    assert not curve.diagnostics.converged.all()
    assert np.all(curve.diagnostics.iterations <= 2)
    failed = ~curve.diagnostics.converged
    assert np.all(curve.diagnostics.gradient_norm[failed] > CG_RTOL)
    reference = _reference_minima(rounds, "h0")
    assert_at_most(reference, curve.cumulative_taylor_optimum, "float64")
    assert np.any(curve.cumulative_taylor_optimum[failed] > reference[failed] * (1 + 1e-6))


@pytest.mark.parametrize("stream", ["chain", "chain.weights", "inputs.h0"])
def test_a_missing_chain_stream_is_named(chain_runs, tmp_path, stream):
    _, pool, rounds = chain_runs
    _write_run(tmp_path / "run", pool, rounds, "float64", skip_streams=(stream,))
    with pytest.raises(analysis.MissingStatisticsError, match=f"no stream '{stream}'"):
        analysis.regret_curve(tmp_path / "run", "h0")


@pytest.mark.parametrize("solver", SOLVERS)
def test_rounds_before_the_first_streamed_example_sum_to_zero(chain_runs, tmp_path, solver):
    _, pool, rounds = chain_runs
    rounds = [None] + rounds[:2]  # the first round diverged: it streamed nothing
    _write_run(tmp_path / "run", pool, rounds, "float64")
    first = analysis.regret_curve(tmp_path / "run", "h1", rounds=[1], layer_solver=solver)
    np.testing.assert_array_equal(first.cumulative_taylor_optimum, [0.0])
    curve = analysis.regret_curve(tmp_path / "run", "h1", layer_solver=solver, cg_rtol=CG_RTOL)
    assert_close(curve.cumulative_taylor_optimum, _reference_minima(rounds, "h1"), "float64")
    assert curve.cumulative_taylor_optimum[0] == 0 and curve.cumulative_taylor_optimum[-1] > 0


def test_a_layer_that_cannot_be_served_is_missing_and_the_others_are_solved(chain_runs, tmp_path):
    """The lowest layer's stored inputs gone: the one pass cannot start, so each request is solved alone;
    h0 is missing with the reason and h1, h2 keep their minima (their x̃ comes from the layer below)."""
    _, pool, rounds = chain_runs
    run = tmp_path / "run"
    _write_run(run, pool, rounds, "float64", skip_streams=("inputs.h0",))
    regrets = analysis.layer_regrets(run, HIDDEN, scales=["layer"])
    assert set(regrets.layers) == {"h1", "h2"}
    assert list(regrets.missing) == [("h0", "layer")]
    assert "no stream 'inputs.h0'" in regrets.missing[("h0", "layer")]
    for name in ("h1", "h2"):
        assert_close(regrets.layers[name].cumulative_taylor_optimum, _reference_minima(rounds, name), "float64")
