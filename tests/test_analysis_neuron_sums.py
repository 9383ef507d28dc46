"""Neuron-scale sums: the weighted Gram and the per-input aggregation against per-example references."""

import numpy as np
import pytest

from keras_taylor.analysis.neuron_sums import NeuronSums, weighted_gram
from keras_taylor.quadratic_terms import neuron_terms

from conftest import assert_close

WEIGHTS = {"non-negative": 0.0, "some negative": -0.5}
ZERO_WEIGHTS = {"none zero": 0.0, "some zero": 0.4, "all zero": 1.0}


@pytest.mark.parametrize("zero", ZERO_WEIGHTS.values(), ids=ZERO_WEIGHTS.keys())
@pytest.mark.parametrize("shift", WEIGHTS.values(), ids=WEIGHTS.keys())
def test_weighted_gram_is_the_explicit_product(rng, shift, zero):
    rows, weights = rng.normal(size=(40, 7)), rng.random(40) + shift
    weights[rng.random(40) < zero] = 0.0  # rows that must not count, however large
    assert_close(weighted_gram(rows, weights), rows.T @ np.diag(weights) @ rows, "float64")
    np.testing.assert_array_equal(weighted_gram(rows[:0], weights[:0]), np.zeros((7, 7)))


def test_sums_per_input_and_per_example_are_the_per_round_terms(rng):
    inputs = rng.normal(size=(6, 5))
    inputs[:, 2] = 0.0  # a column no input uses
    ids = rng.integers(0, 6, size=30)
    weight, z, q = rng.random(30), rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    curvature, residual_sq = rng.random((30, 3)), rng.random(30)
    per_input, per_example = NeuronSums(inputs, 3), NeuronSums(None, 3, size=5)
    for part in (slice(0, 12), slice(12, 30)):
        per_input.add(weight[part], z[part], q[part], curvature[part], residual_sq[part], input_id=ids[part])
        per_example.add(weight[part], z[part], q[part], curvature[part], residual_sq[part], features=inputs[ids[part]])
    per_input.close()
    per_example.close()
    expected = [np.zeros((3, 5, 5)), np.zeros((3, 5)), np.zeros(3)]
    for row in range(30):
        terms = neuron_terms(inputs[ids[row]][None], z[row][None], q[row][None], curvature[row][None],
                             residual_sq[row][None], weight[row])
        for total, term in zip(expected, terms):
            total += term
    for sums in (per_input, per_example):
        for actual, desired in zip((sums.gram, sums.linear, sums.constant), expected):
            assert_close(actual, desired, "float64")
