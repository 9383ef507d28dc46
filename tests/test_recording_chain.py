"""The training step's Observation-2 recursion (TensorFlow) against the NumPy reference `chain_rule`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_taylor as kt
from keras_taylor import analysis, chain_rule, schedules
from keras_taylor.callbacks import TaylorRecorder
from keras_taylor.recording import chain

from conftest import assert_close

# (widths u_j, ..., u_m of the chain from the lowest recorded layer to the output, dropout)
CHAINS = {"two_hidden": ((5, 4, 3), False), "four_hidden_dropout": ((7, 6, 5, 4, 6), True),
          "one_hidden": ((4, 3), False)}


def _random_chain(rng, widths, dropout):
    batch = 6
    multipliers = [(rng.random((batch, width)) < 0.6).astype(np.float64) for width in widths[:-1]]
    if dropout:
        multipliers = [s * rng.choice([0.0, 1.0 / 0.7], size=s.shape) for s in multipliers]
    kernels = [rng.normal(size=(widths[k], widths[k + 1])) for k in range(len(widths) - 1)]
    residual = rng.normal(size=(batch, widths[-1]))
    return multipliers, kernels, residual


def _reference(multipliers, kernels, residual, lowest):
    """q, M and diag M of the hidden layer `lowest` from `chain_rule` on its sub-chain."""
    output_kernel = kernels[-1]
    sub_multipliers, sub_kernels = multipliers[lowest:], kernels[lowest:-1]
    q_top = chain_rule.top_q(residual, output_kernel, multipliers[-1])
    output_gram = output_kernel @ output_kernel.T
    q = chain_rule.chain_q(q_top, sub_multipliers, sub_kernels)
    jtj = chain_rule.chain_jtj(sub_multipliers, sub_kernels, output_gram)
    return q, jtj


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_propagated_q_and_jtj_equal_the_numpy_reference(rng, name):
    widths, dropout = CHAINS[name]
    multipliers, kernels, residual = _random_chain(rng, widths, dropout)
    as_tensors = [tf.constant(value) for value in multipliers], [tf.constant(value) for value in kernels]
    q_list, diagonals = chain.propagate_backward(tf.constant(residual), *as_tensors)
    jtj_list = chain.propagate_jtj(*as_tensors)
    for lowest in range(len(multipliers)):
        q, jtj = _reference(multipliers, kernels, residual, lowest)
        assert_close(q_list[lowest].numpy(), q, "float64", err_msg=f"q of hidden layer {lowest}")
        assert_close(jtj_list[lowest].numpy(), jtj, "float64", err_msg=f"JᵀJ of hidden layer {lowest}")
        assert_close(diagonals[lowest].numpy(), np.diagonal(jtj, axis1=-2, axis2=-1), "float64",
                     err_msg=f"diag JᵀJ of hidden layer {lowest}")


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_numpy_reference_equals_explicit_jacobians(rng, name):
    """J_j built explicitly as a product of Jacobian matrices, per example: the reference's q, M and M·y."""
    widths, dropout = CHAINS[name]
    multipliers, kernels, residual = _random_chain(rng, widths, dropout)
    q, jtj = _reference(multipliers, kernels, residual, 0)
    vectors = rng.normal(size=q.shape)
    output_kernel = kernels[-1]
    applied = chain_rule.apply_chain_jtj(multipliers, kernels[:-1], output_kernel @ output_kernel.T, vectors)
    for example in range(len(residual)):
        # z_{k+1} = W_{k+1}ᵀ (s_k ⊙ z_k) + b: ∂z_{k+1}/∂z_k = W_{k+1}ᵀ diag(s_k); f = z_m.
        jacobian = np.eye(widths[-1])
        for kernel, multiplier in zip(reversed(kernels), reversed(multipliers)):
            jacobian = jacobian @ kernel.T @ np.diag(multiplier[example])
        assert_close(q[example], jacobian.T @ residual[example], "float64")
        assert_close(jtj[example], jacobian.T @ jacobian, "float64")
        assert_close(applied[example], jacobian.T @ jacobian @ vectors[example], "float64")


def _deep_mlp(seed: int) -> keras.Model:
    """6 → 5 → 4 → 4 → 3: three hidden rectifier layers, so the backward products carry A_k twice."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((6,))
    hidden = inputs
    for name, width in (("h1", 5), ("h2", 4), ("h3", 4)):
        hidden = keras.layers.Dense(width, activation="relu", name=name)(hidden)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden))
    for variable in model.weights:
        variable.assign(rng.normal(size=variable.shape) * 0.8)
    return model


def test_in_step_neuron_grams_of_a_layer_subset_equal_the_chain_route(tmp_path, rng, float64):
    """Recording only some chain layers sums their neuron Grams in the step from `chain_backward`'s
    q and diag(JᵀJ); the chain route rebuilds the same sums post hoc from the NumPy reference."""
    x, y = rng.normal(size=(24, 6)), rng.normal(size=(24, 3))
    routes = {"subset": dict(layers=["h1", "h2"], max_gram_cost=np.inf, checkpoints=schedules.every_step()),
              "chain": dict(max_gram_cost=0.0)}
    for name, options in routes.items():
        model = _deep_mlp(7)
        model.compile(keras.optimizers.SGD(0.05), "mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[
            TaylorRecorder(tmp_path / name, scales=("neuron",), dtype="float64", verbose=0, **options)])
    for layer in ("h1", "h2"):
        layers = kt.load_run(tmp_path / "subset").manifest["layers"]
        assert layers[layer]["neuron"] == "gram"
        assert kt.load_run(tmp_path / "chain").manifest["layers"][layer]["neuron"] == "chain"
        subset = analysis.neuron_regret_band(tmp_path / "subset", layer)
        chained = analysis.neuron_regret_band(tmp_path / "chain", layer, rounds=subset.rounds)
        assert np.any(subset.regret != 0)
        assert_close(subset.cumulative_taylor_optimum, chained.cumulative_taylor_optimum, "float64",
                     err_msg=layer)
