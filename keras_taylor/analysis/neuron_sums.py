"""Neuron-scale sums (H, g, s) from per-example rows, aggregated per distinct input between grid points."""

import numpy as np
import scipy.linalg

from keras_taylor.analysis.quadratic import minimize_quadratic
from keras_taylor.analysis.route import empty_quadratic_info
from keras_taylor.quadratic_terms import neuron_coefficients


def weighted_gram(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`[P, P]` Σ_d w_d x_d x_dᵀ = Xᵀ diag(w) X of `rows` X `[D, P]` and `weights` w `[D]`.

    With w ≥ 0 it is the Gram of √w ⊙ X, formed by one symmetric rank-k update (BLAS
    `dsyrk`, half the multiplications of a general product); otherwise a general product.
    """
    used = weights != 0  # e.g. the inputs on which a rectifier was off whenever it saw them
    if not used.all():
        rows, weights = rows[used], weights[used]
    if rows.size == 0:
        return np.zeros((rows.shape[1],) * 2)
    if np.any(weights < 0):
        return (rows * weights[:, None]).T @ rows
    scaled = rows * np.sqrt(weights)[:, None]
    # dsyrk on the Fortran-ordered view Xᵀ computes Xᵀ(Xᵀ)ᵀ without copying X; it fills the upper triangle.
    upper = scipy.linalg.blas.dsyrk(1.0, scaled.T, trans=0, lower=0)
    return np.triu(upper) + np.triu(upper, 1).T


class NeuronSums:
    """Running (H, g, s) of K neurons' Taylor quadratics, added a block of examples at a time.

    Rows either name a distinct input of `inputs` (its weights are summed per id, and each
    distinct x̃ enters the Gram once per segment however often it was seen: H_α += X̃ᵀ
    diag(Σκc_α) X̃ over the columns non-zero in the segment, at `close`) or carry their own
    x̃ (a hidden layer, whose inputs change every round: added to H at once).

    Args:
        inputs: `[D, P]` the distinct x̃, or None if rows carry their x̃.
        size: P, when `inputs` is None.
        count: K, the neurons.
    """

    def __init__(self, inputs: np.ndarray | None, count: int, size: int | None = None):
        self.inputs = inputs
        size = inputs.shape[1] if inputs is not None else size
        self.gram, self.linear, self.constant = np.zeros((count, size, size)), np.zeros((count, size)), np.zeros(count)
        if inputs is not None:
            self._curvature_sum, self._linear_sum = np.zeros((len(inputs), count)), np.zeros((len(inputs), count))

    def add(self, weight, z, q, curvature, residual_sq, *, input_id=None, features=None) -> None:
        """Adds one block of examples.

        Args:
            weight: `[n]` κ.
            z, q, curvature: `[n, K]` per neuron (curvature c = (JᵀJ)_αα).
            residual_sq: `[n]` ‖r‖².
            input_id: `[n]` rows of `inputs` (when the sums were made with them).
            features: `[n, P]` x̃ of each example (when they were not).
        """
        weight = np.asarray(weight, np.float64)[:, None]
        z, q, curvature = (np.asarray(value, np.float64) for value in (z, q, curvature))
        residual_sq = np.asarray(residual_sq, np.float64)[:, None]
        linear_coefficient, constant_term = neuron_coefficients(z, q, curvature, residual_sq)
        self.constant += np.sum(weight * constant_term, axis=0)
        if self.inputs is not None:
            np.add.at(self._curvature_sum, input_id, weight * curvature)
            np.add.at(self._linear_sum, input_id, weight * linear_coefficient)
            return
        features = np.asarray(features, np.float64)
        count, size = len(self.constant), features.shape[1]
        weighted_curvature = weight * curvature
        # One GEMM for every neuron: [(i, α), j] = Σ_e x_i κc_α x_j.
        spread = (features[:, :, None] * weighted_curvature[:, None, :]).reshape(len(features), size * count)
        self.gram += (spread.T @ features).reshape(size, count, size).transpose(1, 0, 2)
        self.linear += (weight * linear_coefficient).T @ features

    def close(self) -> tuple[np.ndarray, dict]:
        """Folds the per-input weights of the segment into H and g; returns the minima `[K]` and diagnostics."""
        if self.inputs is not None:
            touched = np.flatnonzero(np.any(self._curvature_sum != 0, axis=1) | np.any(self._linear_sum != 0, axis=1))
            used = self.inputs[touched]
            columns = np.flatnonzero(np.any(used != 0, axis=0))
            used = used[:, columns]
            block = np.ix_(columns, columns)
            for member in range(len(self.constant)):
                self.gram[member][block] += weighted_gram(used, self._curvature_sum[touched, member])
                self.linear[member, columns] += used.T @ self._linear_sum[touched, member]
            self._curvature_sum[touched] = 0
            self._linear_sum[touched] = 0
        minimum, _, info = minimize_quadratic(self.gram, self.linear, self.constant)
        return minimum, info


def neuron_sums(inputs: np.ndarray, rows, grid: np.ndarray, count: int):
    """Neuron Taylor-optimum sums at the grid points from per-example rows in round order.

    Each row block is `(round_count, input_id, κ, z, q, c, ‖r‖²)`, the last four per
    member `[n, count]`; the rows of one distinct input are summed per segment (`NeuronSums`).

    Returns:
        `(minima [count, K], diagnostics dict of [count, K])`.
    """
    sums = NeuronSums(inputs, count)
    minima = np.full((count, len(grid)), np.nan)
    diagnostics = empty_quadratic_info(count, len(grid))
    segment = 0

    def close_segment():
        minimum, info = sums.close()
        minima[:, segment] = minimum
        for key in diagnostics:
            diagnostics[key][:, segment] = info[key]

    for round_count, input_id, weight, z, q, curvature, residual_sq in rows:
        start = 0
        while start < len(round_count):
            while segment < len(grid) and round_count[start] > grid[segment]:
                close_segment()
                segment += 1
            if segment == len(grid):
                break
            stop = start + int(np.searchsorted(round_count[start:], grid[segment], side="right"))
            part = slice(start, stop)
            sums.add(weight[part], z[part], q[part], curvature[part], residual_sq[part], input_id=input_id[part])
            start = stop
        if segment == len(grid):
            break
    while segment < len(grid):
        close_segment()
        segment += 1
    return minima, diagnostics
