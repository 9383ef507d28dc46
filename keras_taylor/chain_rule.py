"""Observation 2 along a dense chain, the NumPy reference: q = Jᵀr and M = JᵀJ of every hidden layer.

In a chain of dense layers c_j, ..., c_m (c_m the linear output, f = z_m) joined by
elementwise ops, J_k = ∂f/∂z_k satisfies J_k = J_{k+1} W_{k+1}ᵀ diag(s_k), with W_{k+1}
`[u_k, u_{k+1}]` the kernel above and s_k the multiplier between the two layers (the
rectifier mask times the dropout scale). Hence, with K = W_m W_mᵀ:

    q_{m−1} = s_{m−1} ⊙ (W_m r),        q_k = s_k ⊙ (W_{k+1} q_{k+1}),
    M_{m−1} = S_{m−1} K S_{m−1},        M_k = S_k W_{k+1} M_{k+1} W_{k+1}ᵀ S_k,

so neither J nor a per-output Jacobian is ever formed. The analysis evaluates these on
the streamed chain factors; the recorder's TensorFlow versions
(`keras_taylor.recording.chain`) are tested against them.

Shapes: per-example arrays are `[..., B, u_k]` and per-round arrays `[..., u, u']`, the
leading dimensions (rounds, or none) shared, so a block of rounds is one batched product.
`multipliers` lists s_j, ..., s_{m−1}; `kernels` lists W_{j+1}, ..., W_{m−1} (one fewer).
"""

import numpy as np


def _transposed(kernel: np.ndarray) -> np.ndarray:
    return np.swapaxes(kernel, -1, -2)


def top_q(residual: np.ndarray, output_kernel: np.ndarray, top_multiplier: np.ndarray) -> np.ndarray:
    """`[..., B, u_{m−1}]` q_{m−1} = s_{m−1} ⊙ (W_m r) from the output residual r `[..., B, u_m]`."""
    return top_multiplier * (residual @ _transposed(output_kernel))


def chain_q(q_top: np.ndarray, multipliers, kernels) -> np.ndarray:
    """`[..., B, u_j]` q_j = J_jᵀr, from q_{m−1} by q_k = s_k ⊙ (W_{k+1} q_{k+1})."""
    return chain_q_all(q_top, multipliers, kernels)[0]


def chain_q_all(q_top: np.ndarray, multipliers, kernels) -> list:
    """q_k `[..., B, u_k]` of every layer k = j, ..., m − 1 (bottom first), from one pass down the chain."""
    qs = [q_top]
    for kernel, multiplier in zip(reversed(kernels), reversed(multipliers[:-1])):
        qs.append(multiplier * (qs[-1] @ _transposed(kernel)))
    return qs[::-1]


def chain_jtj(multipliers, kernels, output_gram: np.ndarray) -> np.ndarray:
    """`[..., B, u_j, u_j]` M_j = J_jᵀJ_j, from M_{m−1} = S K S down by M_k = S_k W_{k+1} M_{k+1} W_{k+1}ᵀ S_k."""
    return chain_jtj_all(multipliers, kernels, output_gram, keep=(0,))[0]


def chain_jtj_all(multipliers, kernels, output_gram: np.ndarray, keep=None) -> dict:
    """M_k `[..., B, u_k, u_k]` of the layers k = j + offset for each offset in `keep` (default all), from
    one pass down the chain; `{offset: M}`. Each M below the top costs the one above it, so the
    layers of one chain are best formed together."""
    top = multipliers[-1].astype(np.result_type(multipliers[-1], output_gram), copy=False)
    offsets = range(len(multipliers)) if keep is None else keep
    jtj = top[..., :, None] * output_gram[..., None, :, :]
    jtj *= top[..., None, :]
    offset = len(multipliers) - 1
    kept = {offset: jtj} if offset in offsets else {}
    lowest = min(offsets)
    for kernel, multiplier in zip(reversed(kernels), reversed(multipliers[:-1])):
        if offset == lowest:
            break
        jtj = _congruence(kernel, jtj)
        jtj = jtj.astype(np.result_type(jtj, multiplier), copy=False)
        # In place on the fresh product, with the multipliers cast once: masks are stored as bytes, and
        # mixed-type broadcasts over [B, u, u] cost more than the congruence's GEMMs.
        scale = multiplier.astype(jtj.dtype, copy=False)
        jtj *= scale[..., :, None]
        jtj *= scale[..., None, :]
        offset -= 1
        if offset in offsets:
            kept[offset] = jtj
    return kept


def _congruence(kernel: np.ndarray, jtj: np.ndarray) -> np.ndarray:
    """`[..., B, b, b]` W M_e Wᵀ of every example's M_e `[..., B, a, a]` (symmetric), W `[..., b, a]` per round.

    As two products per round with the B examples stacked, `[B·a, a] @ Wᵀ` and, on the transposed
    result, `[B·b, a] @ Wᵀ` (the second gives (W M Wᵀ)ᵀ, which is W M Wᵀ), rather than 2B small ones.
    """
    *lead, batch, size, _ = jtj.shape
    transposed = _transposed(kernel)
    half = (jtj.reshape(*lead, batch * size, size) @ transposed).reshape(*lead, batch, size, -1)  # M Wᵀ
    flipped = np.ascontiguousarray(_transposed(half)).reshape(*lead, -1, size)  # (M Wᵀ)ᵀ = W M, stacked
    return (flipped @ transposed).reshape(*lead, batch, kernel.shape[-2], kernel.shape[-2])


def apply_chain_jtj(multipliers, kernels, output_gram: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """`[..., B, u_j]` M_j y of `vectors` y `[..., B, u_j]`, without forming M_j.

    Up the chain (S_j, then W_kᵀ and S_k), through K, and back down (S_k, W_k).
    """
    product = multipliers[0] * vectors
    for kernel, multiplier in zip(kernels, multipliers[1:]):
        product = multiplier * (product @ kernel)
    product = multipliers[-1] * (product @ output_gram)
    for kernel, multiplier in zip(reversed(kernels), reversed(multipliers[:-1])):
        product = multiplier * (product @ _transposed(kernel))
    return product
