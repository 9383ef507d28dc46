"""The layer-scale operators of the chain solvers, against H formed explicitly from masked weights.

Chain factors are built directly (as `chain_factors.load_chain_factors` lays them out) for
the first layer of a random chain 6 (+1) → 4 → 3 → 5 → 4 trained for several epochs over
a small pool of inputs: ids repeat across epochs
(so the per-input operator sums several examples' M_e per input) and once within a round, one pixel is
zero in every input, rounds hold unequal numbers of examples and the padding rows (κ = 0)
carry garbage that must not leak into any sum.
"""

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from keras_taylor import chain_rule
from keras_taylor.analysis.chain_factors import ChainFactors, round_blocks
from keras_taylor.analysis import chain_solvers
from keras_taylor.analysis.chain_solvers import (ExampleGram, ExplicitLayerSolver, InputGram, InputSums,
                                                 cg_chain_minima, example_coefficients, explicit_chain_minima,
                                                 independent_inputs_minimizer)
from keras_taylor.analysis.quadratic import minimize_quadratic

from conftest import assert_close

PIXELS = 6  # fewer non-zero columns than the POOL inputs: a prefix of more than 5 inputs is dependent
WIDE_PIXELS = 12  # more columns than inputs: every prefix's inputs are independent
UNITS = (4, 3, 5)  # the hidden layers; the first is the layer solved for
OUTPUTS = 4
POOL = 9  # distinct inputs the run cycles through
TABLE_ROWS = 14  # the input table holds rows the run never uses, so ids are not 0..POOL-1
ZERO_PIXEL = 3  # zero in every input
KEEP = 0.8  # dropout keep-probability of the second hidden layer
EPOCHS = 3
ROUND_SIZES = (4, 3, 2)  # examples of the rounds of one epoch (the batch is padded to 4)
# Operators that are equal in exact arithmetic agree to rounding; this is far tighter than
# the float64 tolerance of solved results (conftest.tolerance), which carry a solver's error.
OPERATOR_RTOL = 1e-10
# The damped Kronecker inverses (condition number up to 1e6) of input Grams summed in two orders.
PRECONDITIONER_RTOL = 1e-8
CG_RTOL = 1e-10
PREFIXES = {"first round": 1, "one epoch": 3, "mid second epoch": 5, "whole run": 9}


def _chain_factors(rng, pixels_per_input: int = PIXELS) -> ChainFactors:
    """Random first-layer factors of `EPOCHS` epochs over `POOL` inputs, rows padded to the largest round."""
    table = np.zeros((TABLE_ROWS, pixels_per_input + 1))
    pool_ids = rng.choice(TABLE_ROWS, POOL, replace=False)
    pixels = rng.normal(size=(POOL, pixels_per_input)) * (rng.random((POOL, pixels_per_input)) < 0.6)  # sparse, as images are
    pixels[:, ZERO_PIXEL] = 0.0
    table[pool_ids] = np.concatenate([pixels, np.ones((POOL, 1))], axis=1)
    sizes = ROUND_SIZES * EPOCHS
    rounds, batch = len(sizes), max(ROUND_SIZES)
    valid = np.arange(batch) < np.array(sizes)[:, None]
    input_id = rng.integers(0, TABLE_ROWS, (rounds, batch))  # padding rows name any row
    for epoch in range(EPOCHS):
        input_id[epoch * len(ROUND_SIZES):(epoch + 1) * len(ROUND_SIZES)][valid[:len(ROUND_SIZES)]] = (
            rng.permutation(pool_ids))
    input_id[4, 1] = input_id[4, 0]  # an input twice in one round
    widths = UNITS + (OUTPUTS,)
    multipliers = [(rng.random((rounds, batch, width)) < 0.6).astype(np.float64) for width in UNITS]
    multipliers[1] = multipliers[1] * (rng.random(multipliers[1].shape) < KEEP) / KEEP
    kernels = [rng.normal(size=(rounds, below, above)) / np.sqrt(below) for below, above in zip(widths, widths[1:])]
    output_kernel = kernels.pop()
    weight = np.where(valid, rng.uniform(0.5, 1.5, valid.shape) / (np.array(sizes)[:, None] * OUTPUTS), 0.0)
    # q = Jᵀr of an output residual r, as recorded: g then lies in H's range (a random q would make
    # the quadratic unbounded below along the masked units).
    residual = rng.normal(size=(rounds, batch, OUTPUTS))
    return ChainFactors(
        round_counts=np.arange(1, rounds + 1) * 2,  # not every training round was recorded
        valid=valid, weight=weight,
        residual_sq=np.sum(residual ** 2, axis=2), z=rng.normal(size=(rounds, batch, UNITS[0])),
        multipliers=tuple(multipliers), kernels=tuple(kernels),
        output_gram=output_kernel @ np.swapaxes(output_kernel, 1, 2),
        q_top=chain_rule.top_q(residual, output_kernel, multipliers[-1]), input_table=table, input_id=input_id, below=None,
        use_bias=False,
    )


def _explicit_gram(factors: ChainFactors, rounds: int) -> np.ndarray:
    """`[P·u, P·u]` H = Σ_e κ_e (x̃_e x̃_eᵀ) ⊗ (J_eᵀJ_e) over the rounds [0, `rounds`), J_e from W and s.

    J_e = W_Lᵀ S_{L−1} W_{L−1}ᵀ ⋯ W_1ᵀ S_0 with W_L W_Lᵀ = K factored by its eigendecomposition.
    """
    size = factors.size
    gram = np.zeros((size * UNITS[0],) * 2)
    for round_index in range(rounds):
        values, vectors = np.linalg.eigh(factors.output_gram[round_index])
        output_kernel_t = (vectors * np.sqrt(np.maximum(values, 0))).T  # Wᵀ up to a rotation of the outputs
        for row in np.flatnonzero(factors.valid[round_index]):
            jacobian = output_kernel_t * factors.multipliers[-1][round_index, row]
            for kernel, multiplier in zip(reversed(factors.kernels), reversed(factors.multipliers[:-1])):
                jacobian = (jacobian @ kernel[round_index].T) * multiplier[round_index, row]
            features = factors.input_table[factors.input_id[round_index, row]]
            gram += factors.weight[round_index, row] * np.kron(np.outer(features, features), jacobian.T @ jacobian)
    return gram


def _entries(columns: np.ndarray) -> np.ndarray:
    """The entries of v = vec(V), V `[P, u]` row-major, that belong to the input columns `columns`."""
    return (columns[:, None] * UNITS[0] + np.arange(UNITS[0])).reshape(-1)


def _restricted(gram: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """The rows and columns of `gram` ([P·u]²) that belong to the input columns `columns`."""
    return gram[np.ix_(_entries(columns), _entries(columns))]


def _assert_operators_equal(actual, desired, rtol=OPERATOR_RTOL):
    error = np.linalg.norm(actual - desired)
    assert error <= rtol * np.linalg.norm(desired), f"relative error {error / np.linalg.norm(desired):.2e}"


@pytest.fixture
def factors(rng):
    return _chain_factors(rng)


@pytest.mark.parametrize("rounds", PREFIXES.values(), ids=PREFIXES.keys())
def test_example_gram_is_the_explicit_gram(factors, rng, rounds):
    gram = ExampleGram(factors, rounds)
    used = factors.input_table[factors.input_id[:rounds][factors.valid[:rounds]]]
    np.testing.assert_array_equal(gram.columns, np.flatnonzero(np.any(used != 0, axis=0)))
    assert ZERO_PIXEL not in gram.columns
    vector = rng.normal(size=gram.shape[0])
    _assert_operators_equal(gram.matvec(vector), _restricted(_explicit_gram(factors, rounds), gram.columns) @ vector)


def _products(factors: ChainFactors, part: slice) -> tuple[np.ndarray, np.ndarray]:
    """M_e `[r, B, u, u]` and ℓ_e = q_e − M_e z_e `[r, B, u]` of the rounds `part`."""
    jtj, qs = factors.products(part)
    return jtj[0], example_coefficients(factors, part, jtj[0], qs[0])[0]


def _sums_by_segments(factors: ChainFactors, ends, rounds_per_block: int = 2):
    """Yields (end, InputSums of the rounds [0, end)) for each of `ends`, added a few rounds at a time."""
    sums, start = InputSums(factors, ends[-1]), 0
    for end in ends:
        for part in round_blocks(start, end, rounds_per_block):
            sums.add(part, *_products(factors, part))
        start = end
        yield end, sums


def _explicit_terms(factors: ChainFactors, rounds: int) -> tuple[np.ndarray, np.ndarray, float]:
    """H `[P·u, P·u]` (`_explicit_gram`), g `[P·u]` and s of the rounds [0, `rounds`), g and s summed example by example."""
    solver = ExplicitLayerSolver(factors, 1)
    for part in round_blocks(0, rounds, 1):
        jtj, qs = factors.products(part)
        solver.add(part, jtj[0], qs[0])
    return _explicit_gram(factors, rounds), solver.linear.reshape(-1), solver.constant


def test_input_gram_is_the_example_gram_and_the_explicit_gram(factors, rng):
    for rounds, sums in _sums_by_segments(factors, list(PREFIXES.values())):
        per_input, per_example = InputGram(sums), ExampleGram(factors, rounds)
        np.testing.assert_array_equal(per_input.columns, per_example.columns)
        assert sums.present == len(np.unique(factors.input_id[:rounds][factors.valid[:rounds]]))
        vector = rng.normal(size=per_input.shape[0])
        _assert_operators_equal(per_input.matvec(vector), per_example.matvec(vector))
        _assert_operators_equal(per_input.matvec(vector),
                                _restricted(_explicit_gram(factors, rounds), per_input.columns) @ vector)
        # Chunks of two inputs on two threads: the same operator.
        with ThreadPoolExecutor(2) as executor:
            chunked = InputGram(sums, executor, chunk_inputs=2)
            _assert_operators_equal(chunked.matvec(vector), per_input.matvec(vector))
        # The same input Gram and Σκ M give the same preconditioner.
        mean_jtj = np.cov(rng.normal(size=(UNITS[0], 2 * UNITS[0])))
        _assert_operators_equal(per_input.kronecker_inverse(mean_jtj).matvec(vector),
                                per_example.kronecker_inverse(mean_jtj).matvec(vector), PRECONDITIONER_RTOL)


def test_input_sums_of_the_linear_term_are_g(factors):
    """Σ_d x̃_d ⊗ ℓ̄_d over the distinct inputs is g summed example by example, in every prefix."""
    for rounds, sums in _sums_by_segments(factors, list(PREFIXES.values())):
        table = factors.input_table[sums.input_order[:sums.present]]
        _, linear, _ = _explicit_terms(factors, rounds)
        _assert_operators_equal((table.T @ sums.input_linear[:sums.present]).reshape(-1), linear)


def test_input_sums_add_the_rounds_in_order(factors):
    sums = InputSums(factors, 5)
    with pytest.raises(ValueError, match="in order"):
        sums.add(slice(1, 3), *_products(factors, slice(1, 3)))
    sums.add(slice(0, 3), *_products(factors, slice(0, 3)))
    with pytest.raises(ValueError, match="in order"):
        sums.add(slice(3, 6), *_products(factors, slice(3, 6)))  # past the rounds the sums were sized for
    with pytest.raises(ValueError, match="input_table"):
        InputSums(dataclasses.replace(factors, input_table=None, input_id=None), 5)


OPERATORS = {"per input": None, "per example": 0}  # max_input_sums_bytes; 0 leaves no room for M̄


WORKERS = {"one thread": 1, "two threads": 2}


@pytest.mark.parametrize("workers", WORKERS.values(), ids=WORKERS.keys())
@pytest.mark.parametrize("max_input_sums_bytes", OPERATORS.values(), ids=OPERATORS.keys())
def test_cg_minima_are_the_explicit_minima(factors, max_input_sums_bytes, workers):
    ends = np.array([1, 3, 3, 5, 9])  # a repeated end adds no rounds: the warm start is already the solution
    options = {} if max_input_sums_bytes is None else {"max_input_sums_bytes": max_input_sums_bytes}
    results = cg_chain_minima(factors, ends, CG_RTOL, 500, workers=workers, **options)
    assert results["converged"].all()
    assert np.all(results["gradient_norm"] <= CG_RTOL)
    # The first round's 4 inputs are independent in 6 columns: the per-input operator starts at the
    # exact minimizer; the per-example one, and every later prefix (9 inputs), iterate.
    assert (results["iterations"][0] == 0) == (max_input_sums_bytes is None)
    assert results["iterations"][2] == 0 and np.all(results["iterations"][[1, 3, 4]] > 0)
    assert_close(results["minimum"], explicit_chain_minima(factors, ends)["minimum"], "float64")


def test_cg_minima_of_independent_inputs_take_no_step(rng):
    factors = _chain_factors(rng, WIDE_PIXELS)
    ends = np.array(list(PREFIXES.values()))
    results = cg_chain_minima(factors, ends, CG_RTOL, 500)
    assert results["converged"].all() and np.all(results["iterations"] == 0)
    assert_close(results["minimum"], explicit_chain_minima(factors, ends)["minimum"], "float64")


# pixels per input, the dependence planted, and whether each prefix of PREFIXES has independent inputs
INDEPENDENCE = {
    "more columns than inputs": (WIDE_PIXELS, False, [True, True, True, True]),
    "more inputs than columns": (PIXELS, False, [True, False, False, False]),  # 4 inputs, then 9, in 6 columns
    "an input a combination of two others": (WIDE_PIXELS, True, [None, False, False, False]),  # None: 4 random inputs
}


@pytest.mark.parametrize("pixels_per_input, dependent, independent", INDEPENDENCE.values(), ids=INDEPENDENCE.keys())
def test_independent_inputs_minimizer_is_the_explicit_minimizer(rng, pixels_per_input, dependent, independent):
    """Where the inputs are independent its V has the explicit minimum and Hv + g = 0 (H and g formed
    example by example); where they are not it declines."""
    factors = _chain_factors(rng, pixels_per_input)
    if dependent:  # x̃_2 = 2x̃_0 − x̃_1 keeps the bias entry 1
        pool = np.flatnonzero(np.any(factors.input_table != 0, axis=1))
        factors.input_table[pool[2]] = 2 * factors.input_table[pool[0]] - factors.input_table[pool[1]]
    for expected, (rounds, sums) in zip(independent, _sums_by_segments(factors, list(PREFIXES.values()))):
        gram = InputGram(sums)
        minimizer = independent_inputs_minimizer(gram.table, gram.input_jtj, gram.input_linear)
        if expected is not None:
            assert (minimizer is not None) == expected, f"{rounds} rounds"
        if minimizer is None:
            continue
        hessian, linear, constant = _explicit_terms(factors, rounds)
        entries = _entries(gram.columns)
        hessian, linear = hessian[np.ix_(entries, entries)], linear[entries]
        vector = minimizer.reshape(-1)
        minimum = minimize_quadratic(hessian[None], linear[None], np.array([constant]))[0][0]
        assert np.linalg.norm(hessian @ vector + linear) <= 1e-9 * np.linalg.norm(linear)
        assert vector @ hessian @ vector + 2 * linear @ vector + constant == pytest.approx(minimum, rel=1e-9)


@pytest.mark.parametrize("rank", [12, 7], ids=["definite", "singular_consistent"])
def test_preconditioned_cg_solves_and_its_steps_sum_to_the_value_decrease(rank, rng):
    """The solution against numpy's least squares, and Σ α_k r_kᵀz_k = f(x_0) − f(x_K) for f = xᵀHx − 2bᵀx
    (the identity behind the error estimate) when every step is summed."""
    size = 12
    factor = rng.normal(size=(rank, size)) * rng.uniform(0.1, 3.0, size=size)
    hessian = factor.T @ factor
    target = hessian @ rng.normal(size=size)  # in H's range
    diagonal = np.diag(hessian).copy()
    start = rng.normal(size=size)
    solution, iterations, decrease = chain_solvers.preconditioned_cg(
        lambda v: hessian @ v, target, start, lambda r: r / diagonal, 1e-10 * np.linalg.norm(target), 500,
        delay=10_000)

    def value(v):
        return v @ hessian @ v - 2 * target @ v

    assert np.linalg.norm(hessian @ solution - target) <= 1e-10 * np.linalg.norm(target)
    expected = np.linalg.lstsq(hessian, target, rcond=None)[0]
    assert value(solution) == pytest.approx(value(expected), rel=1e-9, abs=1e-9)
    assert 0 < iterations <= 500
    assert decrease == pytest.approx(value(start) - value(solution), rel=1e-8)
