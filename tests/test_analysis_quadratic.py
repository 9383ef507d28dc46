"""analysis.quadratic: the exact minimum of a positive semidefinite quadratic against lstsq."""

import numpy as np
import pytest

from keras_taylor import analysis

from conftest import assert_close


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
