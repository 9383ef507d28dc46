"""Observation 2 in the training step (TensorFlow): q = Jᵀr and JᵀJ of a dense chain's hidden layers.

The same recursion as the NumPy reference `keras_taylor.chain_rule` (tested against it),
written for one minibatch and one set of weights: `multipliers` lists s_j, ..., s_{m−1}
`[B, u_k]` and `kernels` W_{j+1}, ..., W_m `[u_{k−1}, u_k]`, the output layer's kernel last.
"""

import tensorflow as tf

from keras_taylor import walker
from keras_taylor.recording.capture import input_features


def chain_multipliers(model, trace: walker.ForwardTrace, chain: tuple) -> dict:
    """s_l = ∂x_{l+1}/∂z_l along a dense chain: the product of the rectifier masks and
    dropout keep masks between dense layer l and dense layer l + 1."""
    layers = [layer for layer in walker.model_layers(model) if walker.classify_layer(layer) != "input"]
    positions = {layer.name: index for index, layer in enumerate(layers)}
    multipliers = {}
    for name, next_name in zip(chain[:-1], chain[1:]):
        dtype = trace.preactivations[name].dtype
        multiplier = tf.ones_like(trace.preactivations[name])
        for layer in layers[positions[name]: positions[next_name]]:
            if layer.name in trace.masks:
                multiplier = multiplier * tf.cast(trace.masks[layer.name], dtype)
            if layer.name in trace.dropout_masks:
                multiplier = multiplier * tf.cast(trace.dropout_masks[layer.name], dtype)
        multipliers[name] = multiplier
    return multipliers


def propagate_jtj(multipliers: list, kernels: list) -> list:
    """M_k = J_kᵀJ_k `[B, u_k, u_k]` for k = j, ..., m − 1 (lowest first).

    M_{m−1} = S K S with K = W_m W_mᵀ, then M_k = S_k W_{k+1} M_{k+1} W_{k+1}ᵀ S_k downward.
    """
    jtj = [None] * len(multipliers)
    current = None
    for index in range(len(multipliers) - 1, -1, -1):
        kernel, s = kernels[index], multipliers[index]
        if current is None:
            projected = tf.matmul(kernel, kernel, transpose_b=True)[None]
        else:
            projected = tf.einsum("ij,bjk,lk->bil", kernel, current, kernel)
        current = projected * s[:, :, None] * s[:, None, :]
        jtj[index] = current
    return jtj


def propagate_backward(residual, multipliers: list, kernels: list) -> tuple[list, list]:
    """q_k = J_kᵀr and diag(M_k) `[B, u_k]` for k = j, ..., m − 1 (lowest first), by explicit products.

    q_k = s_k ⊙ (W_{k+1} q_{k+1}) from q_m = r, and M_k = A_kᵀ K A_k with
    A_k = S_{m−1} W_{m−1}ᵀ ⋯ W_{k+1}ᵀ S_k `[B, u_{m−1}, u_k]` carried upward by one
    matrix product per layer, so diag(M_k) = Σ_i A_k ⊙ (K A_k) needs no u_k × u_k block.
    """
    count = len(multipliers)
    q_values, diagonals = [None] * count, [None] * count
    q, carried, top, output_gram = residual, None, None, None  # carried: A_{k+1}
    for index in range(count - 1, -1, -1):
        kernel_above, s = kernels[index], multipliers[index]
        q = s * tf.matmul(q, kernel_above, transpose_b=True)
        q_values[index] = q
        if top is None:  # A_{m−1} = S_{m−1}: diag(M) = s² ⊙ diag(K)
            output_gram = tf.matmul(kernel_above, kernel_above, transpose_b=True)
            top = s
            diagonals[index] = s**2 * tf.linalg.diag_part(output_gram)[None]
            continue
        if carried is None:
            carried = top[:, :, None] * tf.transpose(kernel_above)[None] * s[:, None, :]
        else:
            carried = tf.einsum("bij,kj->bik", carried, kernel_above) * s[:, None, :]
        diagonals[index] = tf.reduce_sum(carried * tf.einsum("ij,bjk->bik", output_gram, carried), axis=1)
    return q_values, diagonals


def chain_jtj(model, trace: walker.ForwardTrace, chain: tuple, wanted: set) -> dict:
    """M_l = J_lᵀJ_l `[B, u_l, u_l]` of the `wanted` hidden layers of `chain` (output layer last)."""
    lowest = min(chain.index(name) for name in wanted)
    hidden = chain[lowest:-1]
    multipliers = chain_multipliers(model, trace, chain[lowest:])
    kernels = [trace.weight_values[name][0] for name in chain[lowest + 1:]]
    jtj = propagate_jtj([multipliers[name] for name in hidden], kernels)
    return {name: value for name, value in zip(hidden, jtj) if name in wanted}


def chain_backward(model, trace: walker.ForwardTrace, chain: tuple, residual, wanted: list):
    """q = Jᵀr of the `wanted` chain layers and diag(JᵀJ) of the hidden ones from the lowest wanted up.

    Returns:
        `(q per wanted layer, in order; {hidden layer: diag(M) [B, u]})`.
    """
    lowest = min(chain.index(name) for name in wanted)
    hidden = chain[lowest:-1]
    multipliers = chain_multipliers(model, trace, chain[lowest:])
    kernels = [trace.weight_values[name][0] for name in chain[lowest + 1:]]
    q_list, diagonal_list = propagate_backward(residual, [multipliers[name] for name in hidden], kernels)
    q_values = {chain[-1]: residual, **dict(zip(hidden, q_list))}
    return [q_values[name] for name in wanted], dict(zip(hidden, diagonal_list))


def chain_factors(model, trace: walker.ForwardTrace, chain: tuple, residual, per_example: dict,
                  values: dict) -> None:
    """The factors that rebuild the statistics of `chain` post hoc (route CHAIN).

    Per example: the lowest chain layer's input x̃ ("chain/inputs"), z_k and the
    multiplier s_k of every hidden chain layer ("chain/<k>/z", "chain/<k>/s") and
    q of the top hidden layer, s ⊙ (W_L r) ("chain/q"). Per round: the kernels of
    the hidden chain layers above the lowest ("chain/<k>/kernel") and K = W_L W_Lᵀ
    ("chain/output_gram"). Every M_k = J_kᵀJ_k and q_k follow from these
    (`keras_taylor.chain_rule`).
    """
    multipliers = chain_multipliers(model, trace, chain)
    output_kernel = trace.weight_values[chain[-1]][0]
    per_example["chain/inputs"] = input_features(model, trace, chain[0])
    for name in chain[:-1]:
        per_example[f"chain/{name}/z"] = trace.preactivations[name]
        per_example[f"chain/{name}/s"] = multipliers[name]
    per_example["chain/q"] = multipliers[chain[-2]] * tf.matmul(residual, output_kernel, transpose_b=True)
    for name in chain[1:-1]:
        values[f"chain/{name}/kernel"] = trace.weight_values[name][0]
    values["chain/output_gram"] = tf.matmul(output_kernel, output_kernel, transpose_b=True)
