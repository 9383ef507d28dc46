"""recording.step: the neuron sums formed in the training step against `quadratic_terms.neuron_terms`."""

import numpy as np
import pytest
import tensorflow as tf

from keras_taylor import quadratic_terms
from keras_taylor.recording.step import neuron_gram_sums

from conftest import assert_close


@pytest.mark.parametrize("shared_gram", [False, True], ids=["curvature", "identity_output"])
def test_neuron_gram_sums_equal_the_numpy_reference(rng, shared_gram):
    batch, size, neurons = 7, 5, 3
    inputs, z, q = rng.normal(size=(batch, size)), rng.normal(size=(batch, neurons)), rng.normal(size=(batch, neurons))
    curvature = np.ones((batch, neurons)) if shared_gram else rng.random((batch, neurons))
    residual_sq = rng.random(batch)
    gram, linear, constant = (value.numpy() for value in neuron_gram_sums(
        *(tf.constant(value) for value in (inputs, z, q, curvature, residual_sq)), shared_gram=shared_gram))
    expected = quadratic_terms.neuron_terms(inputs, z, q, curvature, residual_sq, 1.0)
    if shared_gram:
        gram = np.broadcast_to(gram, expected[0].shape)
    for name, actual, reference in zip(("gram", "linear", "constant"), (gram, linear, constant), expected):
        assert_close(actual, reference, "float64", err_msg=name)


def test_neuron_coefficients_expand_the_linearized_squared_residual(rng):
    """One output: J_α = j, so c = j², q = j r, and 𝒯 = (r + j (x̃ᵀv − z))² per example."""
    batch, size = 9, 4
    inputs, z = rng.normal(size=(batch, size)), rng.normal(size=(batch, 1))
    jacobian, residual = rng.normal(size=(batch, 1)), rng.normal(size=batch)
    curvature, q = jacobian**2, jacobian * residual[:, None]
    gram, linear, constant = quadratic_terms.neuron_terms(inputs, z, q, curvature, residual**2, 1.0)
    v = rng.normal(size=(1, size))
    direct = np.sum((residual[:, None] + jacobian * (inputs @ v.T - z)) ** 2)
    assert_close(quadratic_terms.QuadraticSums(gram, linear, constant).value(v), [direct], "float64")
