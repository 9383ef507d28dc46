"""Neuron-scale sums (H, g, s) from per-example rows, aggregated per distinct input between grid points."""

import numpy as np

from keras_taylor.analysis.quadratic import minimize_quadratic
from keras_taylor.quadratic_terms import neuron_coefficients
from keras_taylor.analysis.route import empty_quadratic_info


def neuron_sums(inputs: np.ndarray, rows, grid: np.ndarray, count: int):
    """Neuron Taylor-optimum sums at the grid points from per-example rows in round order.

    Each row block is `(round_count, input_id, κ, z, q, c, ‖r‖²)`, the last four per
    member `[n, count]`. Between grid points the per-id weights are summed first, so
    each distinct x̃ enters the Gram once per segment however often it was seen:
    H_α += X̃ᵀ diag(Σκc) X̃ over the columns that are non-zero in the segment.

    Returns:
        `(minima [count, K], diagnostics dict of [count, K])`.
    """
    size = inputs.shape[1]
    gram, linear, constant = np.zeros((count, size, size)), np.zeros((count, size)), np.zeros(count)
    curvature_sum, linear_sum = np.zeros((len(inputs), count)), np.zeros((len(inputs), count))
    minima = np.full((count, len(grid)), np.nan)
    diagnostics = empty_quadratic_info(count, len(grid))
    segment = 0

    def close_segment():
        touched = np.flatnonzero(np.any(curvature_sum != 0, axis=1) | np.any(linear_sum != 0, axis=1))
        used = inputs[touched]
        columns = np.flatnonzero(np.any(used != 0, axis=0))
        used = used[:, columns]
        block = np.ix_(columns, columns)
        for member in range(count):
            gram[member][block] += (used * curvature_sum[touched, member, None]).T @ used
            linear[member, columns] += used.T @ linear_sum[touched, member]
        curvature_sum[touched] = 0
        linear_sum[touched] = 0
        minimum, _, info = minimize_quadratic(gram, linear, constant)
        minima[:, segment] = minimum
        for key in diagnostics:
            diagnostics[key][:, segment] = info[key]

    for round_count, input_id, weight, z, q, curvature, residual_sq in rows:
        weight = np.asarray(weight, np.float64)[:, None]
        z, q, curvature = (np.asarray(value, np.float64) for value in (z, q, curvature))
        residual_sq = np.asarray(residual_sq, np.float64)[:, None]
        start = 0
        while start < len(round_count):
            while segment < len(grid) and round_count[start] > grid[segment]:
                close_segment()
                segment += 1
            if segment == len(grid):
                break
            stop = start + int(np.searchsorted(round_count[start:], grid[segment], side="right"))
            part = slice(start, stop)
            ids = input_id[part]
            np.add.at(curvature_sum, ids, weight[part] * curvature[part])
            linear_coefficient, constant_term = neuron_coefficients(z[part], q[part], curvature[part],
                                                                   residual_sq[part])
            np.add.at(linear_sum, ids, weight[part] * linear_coefficient)
            constant += np.sum(weight[part] * constant_term, axis=0)
            start = stop
        if segment == len(grid):
            break
    while segment < len(grid):
        close_segment()
        segment += 1
    return minima, diagnostics
