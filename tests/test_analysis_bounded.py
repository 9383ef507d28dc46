"""analysis.bounded: the ball-constrained Taylor optimum against SLSQP, and its Lanczos subproblem against a dense solve."""

import numpy as np
import pytest
import scipy.optimize

from keras_taylor import losses
from keras_taylor.analysis import bounded
from keras_taylor.analysis.affine_rounds import LinearRound, StackedRounds

OUTPUTS, SIZE = 3, 6

LOSS_CASES = {
    "sparse_ce": (losses.SparseCategoricalCrossentropyFromLogits(), "classes"),
    "ce_smoothed_sum": (losses.CategoricalCrossentropyFromLogits(0.1, "sum"), "one_hot"),
    "binary_ce": (losses.BinaryCrossentropyFromLogits(), "binary"),
    "huber": (losses.Huber(0.5), "dense"),
    "log_cosh": (losses.LogCosh(), "dense"),
    "squared_hinge": (losses.SquaredHinge(), "signs"),
}
RADII = {"binding": 0.3, "wide": 50.0}


def _targets(kind, batch, rng):
    if kind == "classes":
        return rng.integers(0, OUTPUTS, batch)
    if kind == "one_hot":
        return np.eye(OUTPUTS)[rng.integers(0, OUTPUTS, batch)]
    if kind == "binary":
        return rng.integers(0, 2, (batch, OUTPUTS)).astype(float)
    if kind == "signs":
        return rng.choice([-1.0, 1.0], (batch, OUTPUTS))
    return rng.normal(size=(batch, OUTPUTS))


def _rounds(loss, kind, rng, rounds=5, batch=4):
    return StackedRounds.from_rounds([
        LinearRound(rng.normal(size=(batch, OUTPUTS)), _targets(kind, batch, rng), rng.normal(size=SIZE),
                    design=rng.normal(size=(batch, OUTPUTS, SIZE))) for _ in range(rounds)], loss)


def _slsqp_minimum(stacked, loss, center, radius):
    def objective(v):
        value, gradient, _ = stacked.curvature(v, loss)
        return value, gradient

    result = scipy.optimize.minimize(
        objective, center, jac=True, method="SLSQP", options={"ftol": 1e-12, "maxiter": 2000},
        constraints=[{"type": "ineq", "fun": lambda v: radius**2 - np.sum((v - center) ** 2),
                      "jac": lambda v: -2 * (v - center)}])
    # Status 8 ("positive directional derivative for linesearch") is SLSQP finding no descent at
    # ftol=1e-12, below what rounding resolves: a fresh install (NumPy 2.4.6, SciPy 1.17.1) stopped so
    # at the optimum (value within 4e-12 of the solver's) where earlier installs reported success. The
    # point must still be feasible; a reference stopped short of the optimum would fail the comparison
    # with the solver, never pass it.
    assert result.success or result.status == 8, result.message
    assert np.sum((result.x - center) ** 2) <= radius**2 * (1 + 1e-8)
    return result.fun


@pytest.mark.parametrize("radius_name", sorted(RADII))
@pytest.mark.parametrize("loss_name", sorted(LOSS_CASES))
def test_minimum_matches_slsqp_and_its_gap_bounds_the_error(loss_name, radius_name, rng):
    loss, kind = LOSS_CASES[loss_name]
    stacked = _rounds(loss, kind, rng)
    center, radius = rng.normal(size=SIZE), RADII[radius_name]
    reference = _slsqp_minimum(stacked, loss, center, radius)
    value, point, details = bounded.factored_taylor_optimum(stacked, loss, center, radius)
    assert details["converged"]
    assert np.linalg.norm(point - center) <= radius * (1 + 1e-12)
    assert value == pytest.approx(stacked.value(point, loss), rel=1e-14)
    np.testing.assert_allclose(value, reference, rtol=1e-8)
    assert value - reference <= details["gap"] + 1e-9 * abs(reference)
    assert details["constrained"] == (radius_name == "binding")


def test_the_gap_is_a_bound_where_the_solver_is_stopped_early(rng):
    loss, kind = LOSS_CASES["sparse_ce"]
    stacked = _rounds(loss, kind, rng, rounds=8)
    center = rng.normal(size=SIZE)
    reference = _slsqp_minimum(stacked, loss, center, 2.0)
    for iterations in (0, 1, 2):
        value, _, details = bounded.factored_taylor_optimum(stacked, loss, center, 2.0, max_iterations=iterations)
        assert details["iterations"] == iterations and not details["converged"]
        assert 0 <= value - reference <= details["gap"]


def test_a_warm_start_outside_the_ball_is_pulled_in(rng):
    loss, kind = LOSS_CASES["binary_ce"]
    stacked = _rounds(loss, kind, rng)
    center = rng.normal(size=SIZE)
    reference = _slsqp_minimum(stacked, loss, center, 0.5)
    value, point, details = bounded.factored_taylor_optimum(stacked, loss, center, 0.5, start=center + 10.0)
    assert details["converged"] and np.linalg.norm(point - center) <= 0.5 * (1 + 1e-12)
    np.testing.assert_allclose(value, reference, rtol=1e-8)


def test_a_ball_of_radius_zero_is_its_center(rng):
    loss, kind = LOSS_CASES["sparse_ce"]
    stacked = _rounds(loss, kind, rng)
    center = rng.normal(size=SIZE)
    value, point, details = bounded.factored_taylor_optimum(stacked, loss, center, 0.0)
    np.testing.assert_array_equal(point, center)
    assert value == stacked.value(center, loss) and details["converged"]


def _dense_ball_minimizer(hessian, linear, radius):
    """min bᵀu + ½uᵀHu, ‖u‖ ≤ ρ, H ⪰ 0, through H's eigendecomposition and a bisection on λ."""
    values, vectors = np.linalg.eigh(hessian)
    rotated = vectors.T @ linear
    values = np.maximum(values, 0)

    def solution(multiplier):
        return -vectors @ (rotated / (values + multiplier))

    if values.min() > 1e-12 and np.linalg.norm(solution(0.0)) <= radius:
        return solution(0.0)
    low, high = 0.0, np.linalg.norm(linear) / radius
    for _ in range(200):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if np.linalg.norm(solution(middle)) > radius else (low, middle)
    return solution(high)


SUBPROBLEMS = {"interior": (30.0, 12), "boundary": (0.2, 12), "singular_boundary": (0.5, 4)}


@pytest.mark.parametrize("name", sorted(SUBPROBLEMS))
def test_lanczos_subproblem_matches_the_dense_solution(name, rng):
    radius, rank = SUBPROBLEMS[name]
    size = 12
    factor = rng.normal(size=(rank, size))
    hessian = factor.T @ factor + (0.5 * np.eye(size) if rank == size else 0.0)
    linear = rng.normal(size=size)
    solution, multiplier, dimension = bounded.ball_quadratic_minimizer(
        lambda v: hessian @ v, linear, radius, 1e-12, size)
    expected = _dense_ball_minimizer(hessian, linear, radius)
    np.testing.assert_allclose(solution, expected, rtol=1e-7, atol=1e-9)
    assert (multiplier > 0) == (name != "interior")
    assert dimension <= size
    np.testing.assert_allclose(hessian @ solution + multiplier * solution, -linear, atol=1e-9)


def test_without_a_bound_the_minimizer_is_the_unconstrained_one(rng):
    loss, kind = LOSS_CASES["log_cosh"]  # E·p_L = 60 rows for 6 weights: a unique unconstrained minimizer
    stacked = _rounds(loss, kind, rng)
    center = rng.normal(size=SIZE)
    reference = scipy.optimize.minimize(lambda v: stacked.curvature(v, loss)[:2], center, jac=True, method="BFGS",
                                        options={"gtol": 1e-12})
    value, point, details = bounded.factored_taylor_optimum(stacked, loss, center, np.inf)
    assert details["converged"] and not details["constrained"]
    np.testing.assert_allclose(value, reference.fun, rtol=1e-10)
    np.testing.assert_allclose(point, reference.x, rtol=1e-5, atol=1e-6)
