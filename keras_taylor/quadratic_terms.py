"""Sufficient statistics of squared-error Taylor losses (NumPy only).

For squared error the Taylor loss of round n is a quadratic in V. Summed over
rounds it is

    Σ_n 𝒯^n(V) = vᵀ H v + 2 gᵀ v + s,

so the running sums (H, g, s) give the hindsight Taylor optimum of any prefix
exactly. With x̃ the layer input (and a 1 for the bias), z = Wᵀx̃ the
pre-activation, J = ∂f/∂z, r = f − y, q = Jᵀr, M = JᵀJ and κ the Keras
reduction's weight (1 / (B·p_L) for the mean), one example of one round
contributes κ times:

- neuron α (v = [w_α; b_α]):  H += M_αα x̃x̃ᵀ,  g += (q_α − M_αα z_α) x̃,
  s += ‖r‖² − 2 z_α q_α + M_αα z_α²;
- layer (v = vec(V), V of shape [P, u], row-major): H += x̃x̃ᵀ ⊗ M,
  g += x̃ ⊗ (q − M z),  s += ‖r‖² − 2 zᵀq + zᵀMz;
- network (all layers, G = [J_l ⊗ x̃_l]_l, c = r − Σ_l J_l z_l):
  H += GᵀG,  g += Gᵀc,  s += ‖c‖².

For the linear output layer of a squared-error model J = I, so M = I and every
neuron shares the Gram Σ x̃x̃ᵀ. The neuron terms are summed over the batch
inside the training step (`keras_taylor.recording`); the layer and network
terms below are summed here from per-example data.
"""

import dataclasses

import numpy as np

from keras_taylor.losses import reduction_scale


def reduction_weight(batch_size: int, num_outputs: int, reduction: str) -> float:
    """κ: the weight of one example's squared residual in Keras's mean squared error (the loss's
    reduction scale, `losses.reduction_scale`, over the outputs' mean)."""
    return reduction_scale(batch_size, reduction) / num_outputs


@dataclasses.dataclass
class QuadraticSums:
    """Running (H, g, s) of a family of quadratics, stacked on a leading axis.

    Attributes:
        gram: `[K, P, P]` H per member (K neurons, or 1 for a layer / network).
        linear: `[K, P]` g per member.
        constant: `[K]` s per member.
        rounds: How many rounds have been added.
    """

    gram: np.ndarray
    linear: np.ndarray
    constant: np.ndarray
    rounds: int = 0

    def add(self, gram, linear, constant) -> None:
        self.gram += gram
        self.linear += linear
        self.constant += constant
        self.rounds += 1

    def value(self, v: np.ndarray) -> np.ndarray:
        """vᵀHv + 2gᵀv + s for each member, v `[K, P]`."""
        return np.einsum("ki,kij,kj->k", v, self.gram, v) + 2 * np.einsum("ki,ki->k", self.linear, v) + self.constant


def neuron_coefficients(z, q, curvature, residual_sq):
    """Per example and neuron α, the coefficients of its Taylor quadratic in x̃ᵀv.

    𝒯 = κ (c (x̃ᵀv)² + 2 ℓ x̃ᵀv + s) with c = (JᵀJ)_αα, and

        ℓ = q_α − c z_α,  s = ‖r‖² − 2 z_α q_α + c z_α²

    (all arrays broadcast: z, q, c `[..., u]`, ‖r‖² `[..., 1]`). Returns `(ℓ, s)`.
    """
    return q - curvature * z, residual_sq - 2 * z * q + curvature * z**2


def layer_coefficients(z, q, curvature_z, residual_sq):
    """Per example, the coefficients of a layer's Taylor quadratic: H += κ x̃x̃ᵀ ⊗ M, g += κ x̃ ⊗ ℓ, s += κ s_e
    with ℓ = q − Mz `[..., u]` and s_e = ‖r‖² − 2zᵀq + zᵀMz `[...]`, given Mz. Returns `(ℓ, s_e)`."""
    return q - curvature_z, residual_sq - 2 * np.sum(z * q, axis=-1) + np.sum(z * curvature_z, axis=-1)


def neuron_terms(inputs, z, q, curvature, residual_sq, weight):
    """One round's (H, g, s) of each neuron from per-example data (the reference of the step's sums).

    Args:
        inputs: x̃ `[B, P]`.
        z, q, curvature: `[B, K]` of the K neurons (curvature c = (JᵀJ)_αα).
        residual_sq: ‖r‖² `[B]`.
        weight: κ.

    Returns:
        `(gram [K, P, P], linear [K, P], constant [K])`.
    """
    linear_coefficient, constant = neuron_coefficients(z, q, curvature, np.asarray(residual_sq)[:, None])
    gram = np.einsum("bk,bi,bj->kij", curvature, inputs, inputs)
    linear = np.einsum("bk,bi->ki", linear_coefficient, inputs)
    return weight * gram, weight * linear, weight * constant.sum(axis=0)


def layer_terms(inputs, z, q, residual_sq, jtj, weight):
    """One round's (H, g, s) for a whole dense layer, v = vec(V), V `[P, u]` row-major.

    Returns:
        `(gram [1, P·u, P·u], linear [1, P·u], constant [1])`.
    """
    inputs = np.asarray(inputs, np.float64)
    batch, size = inputs.shape
    units = z.shape[1]
    jtj = np.broadcast_to(np.eye(units), (batch, units, units)) if jtj is None else np.asarray(jtj, np.float64)
    gram = np.einsum("bi,bj,bkl->ikjl", inputs, inputs, jtj, optimize=True).reshape(size * units, size * units)
    corrected, constants = layer_coefficients(z, q, np.einsum("bkl,bl->bk", jtj, z), residual_sq)
    linear = np.einsum("bi,bk->ik", inputs, corrected).reshape(-1)
    constant = np.sum(constants)
    return weight * gram[None], weight * linear[None], weight * np.array([constant])


def network_terms(layer_inputs, layer_z, layer_jacobians, residual, weight):
    """One round's (H, g, s) at network scale from explicit per-layer J.

    Args:
        layer_inputs: Per layer x̃ `[B, P_l]`, in parameter order.
        layer_z: Per layer z `[B, u_l]`.
        layer_jacobians: Per layer J `[B, p_L, u_l]`.
        residual: r `[B, p_L]`.
        weight: κ.

    Returns:
        `(gram [1, P, P], linear [1, P], constant [1])` with P = Σ_l P_l·u_l, each
        layer's block laid out as `layer_terms`.
    """
    design = np.concatenate(
        [
            np.einsum("bpk,bi->bpik", jacobian, inputs).reshape(len(inputs), jacobian.shape[1], -1)
            for inputs, jacobian in zip(layer_inputs, layer_jacobians)
        ],
        axis=2,
    )
    offset = residual - sum(np.einsum("bpk,bk->bp", j, z) for j, z in zip(layer_jacobians, layer_z))
    gram = np.einsum("bpi,bpj->ij", design, design, optimize=True)
    linear = np.einsum("bpi,bp->i", design, offset)
    return weight * gram[None], weight * linear[None], weight * np.array([np.sum(offset**2)])
