"""analysis.affine_rounds: stacked rounds against the per-round loop, and the affine Taylor map
against the snapshot's `LayerFactors` (the NumPy algebra of keras_taylor.taylor)."""

import dataclasses

import numpy as np
import pytest

import keras_taylor as kt
from keras_taylor.analysis.affine_rounds import (LinearRound, RoundList, StackedDenseRounds, StackedRounds,
                                                 as_rounds)
from keras_taylor.analysis.factors_route import layer_features
from keras_taylor.schema import LayerRecord, Route
from keras_taylor.taylor import LayerFactors

from conftest import assert_close


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
        v, direction = rng.normal(size=size), rng.normal(size=size)
        value, gradient, hessian_product = stacked.prefix(count).curvature(v, loss)
        reference = sum(loss(r.outputs(v), r.targets) for r in rounds[:count])
        reference_gradient = sum(r.pullback(loss.gradient(r.outputs(v), r.targets)) for r in rounds[:count])
        assert_close(value, reference, "float64")
        assert_close(stacked.prefix(count).value(v, loss), reference, "float64")
        assert_close(gradient, reference_gradient, "float64")
        step = 1e-5  # central differences of the per-round gradient: exact for a quadratic, O(step²) otherwise
        differences = [sum(r.pullback(loss.gradient(r.outputs(v + sign * step * direction), r.targets))
                           for r in rounds[:count]) for sign in (1, -1)]
        np.testing.assert_allclose(hessian_product(direction), (differences[0] - differences[1]) / (2 * step),
                                   rtol=1e-6, atol=1e-8)
        listed = RoundList(rounds[:count]).curvature(v, loss)
        assert_close(listed[0], reference, "float64")
        assert_close(listed[2](direction), hessian_product(direction), "float64")
    assert_close(stacked.incurred(loss), [loss(r.outputs(r.weights), r.targets) for r in rounds], "float64")


@pytest.mark.parametrize("loss", [kt.losses.SparseCategoricalCrossentropyFromLogits("sum_over_batch_size"),
                                  kt.losses.BinaryCrossentropyFromLogits(reduction="sum"),
                                  kt.losses.MeanSquaredError("sum_over_batch_size")], ids=str)
def test_stacked_dense_layer_rounds_match_the_per_round_loop(loss):
    """The factored stack of a dense layer's rounds (layer scale) against `RoundList`'s loop."""
    rng = np.random.default_rng(12)
    outputs, inputs, units = 3, 5, 4
    rounds = []
    for batch in (4, 2, 5, 3):  # unequal rounds: each keeps its own reduction
        if "categorical" in loss.name:
            targets = rng.integers(0, outputs, batch)
        elif "binary" in loss.name:
            targets = rng.integers(0, 2, (batch, outputs)).astype(float)
        else:
            targets = rng.normal(size=(batch, outputs))
        features = np.concatenate([rng.normal(size=(batch, 1, inputs)), np.ones((batch, 1, 1))], axis=2)
        rounds.append(LinearRound(rng.normal(size=(batch, outputs)), targets, rng.normal(size=(inputs + 1) * units),
                                  features=features, jacobian=rng.normal(size=(batch, outputs, 1, units))))
    stacked = as_rounds(rounds, loss)
    assert isinstance(stacked, StackedDenseRounds)
    for count in (1, 3, 4):
        v, direction = rng.normal(size=(inputs + 1) * units), rng.normal(size=(inputs + 1) * units)
        value, gradient, hessian_product = stacked.prefix(count).curvature(v, loss)
        listed_value, listed_gradient, listed_product = RoundList(rounds[:count]).curvature(v, loss)
        assert_close(value, listed_value, "float64")
        assert_close(stacked.prefix(count).value(v, loss), listed_value, "float64")
        assert_close(gradient, listed_gradient, "float64")
        assert_close(hessian_product(direction), listed_product(direction), "float64")
        assert np.array_equal(stacked.prefix(count).weights, RoundList(rounds[:count]).weights)
    assert_close(stacked.incurred(loss), RoundList(rounds).incurred(loss), "float64")
    conv_like = [dataclasses.replace(r, features=np.repeat(r.features, 2, axis=1),
                                     jacobian=np.repeat(r.jacobian, 2, axis=2)) for r in rounds]
    assert isinstance(as_rounds(conv_like, loss), RoundList)  # several output positions: listed


LAYER_CASES = {"dense": dict(kind="dense"), "conv_same_stride2": dict(kind="conv2d", kernel_size=(3, 3),
                                                                          strides=(2, 2), padding="same"),
               "conv_valid": dict(kind="conv2d", kernel_size=(2, 3), strides=(1, 1), padding="valid")}


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_linear_rounds_equal_the_layer_factors_taylor_map(rng, name):
    """T(v) − T(W^n) and the pullback of a layer's LinearRound are LayerFactors' ⟨G, Δ⟩ and Gᵀg."""
    case = dict(LAYER_CASES[name])
    kind = case.pop("kind")
    batch, outputs, units = 3, 4, 5
    if kind == "dense":
        inputs, kernel = rng.normal(size=(batch, 6)), rng.normal(size=(6, units))
        jacobian = rng.normal(size=(batch, outputs, units))
        geometry = {}
    else:
        inputs, kernel = rng.normal(size=(batch, 7, 6, 2)), rng.normal(size=case["kernel_size"] + (2, units))
        geometry = dict(case, dilation_rate=(1, 1))
        spatial = kt.taylor.conv_patches(inputs, **geometry).shape[1:3]
        jacobian = rng.normal(size=(batch, outputs) + spatial + (units,))
    bias = rng.normal(size=units)
    factors = LayerFactors("layer", kind, inputs, jacobian, kernel, bias, **geometry)
    record = LayerRecord("layer", kind, Route.FACTORS, Route.FACTORS, tuple(range(units)), (), False, True,
                         {key: list(value) if isinstance(value, tuple) else value for key, value in geometry.items()})
    features = layer_features(inputs, record)
    weights = np.concatenate([kernel.reshape(-1, units), bias[None]])
    round_jacobian = jacobian.reshape(batch, outputs, -1, units)
    offset = rng.normal(size=(batch, outputs))
    layer_round = LinearRound(offset, None, weights.reshape(-1), features=features, jacobian=round_jacobian)
    delta_kernel, delta_bias = rng.normal(size=kernel.shape), rng.normal(size=units)
    moved = np.concatenate([(kernel + delta_kernel).reshape(-1, units), (bias + delta_bias)[None]]).reshape(-1)
    assert_close(layer_round.outputs(moved) - layer_round.outputs(weights.reshape(-1)),
                 factors.output_delta([delta_kernel, delta_bias]), "float64")
    cotangent = rng.normal(size=(batch, outputs))
    gradient_kernel, gradient_bias = factors.weight_gradient(cotangent)
    expected = np.concatenate([gradient_kernel.reshape(-1, units), gradient_bias[None]]).reshape(-1)
    assert_close(layer_round.pullback(cotangent), expected, "float64")
