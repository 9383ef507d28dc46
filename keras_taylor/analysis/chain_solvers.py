"""Layer-scale solvers on chain factors: the Gram formed explicitly, or matrix-free conjugate gradients."""

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from keras_taylor.analysis.chain_factors import BLOCK_ELEMENTS, ChainFactors, round_blocks
from keras_taylor.analysis.quadratic import minimize_quadratic
from keras_taylor.quadratic_terms import layer_coefficients

# Damping of the Kronecker preconditioner, relative to its largest eigenvalue.
_KRONECKER_DAMPING = 1e-6
# Default memory cap of the first layer's per-input sums M̄ (float64 [D, u, u]): MNIST's
# 60,000 inputs × 50 units take 1.2 GB; a first layer of 100 units would take 4.8 GB
# and fall back to the per-example operator.
MAX_INPUT_SUMS_BYTES = 4 << 30


def explicit_chain_minima(factors: ChainFactors, ends: np.ndarray) -> dict:
    """Forms H, g, s segment by segment (H by one GEMM per block of rounds) and solves each exactly.

    Per example H += κ (x̃x̃ᵀ) ⊗ M, so a block's H is ((κ x̃x̃ᵀ) flattened `[n, P²]`)ᵀ @ (M
    flattened `[n, u²]`), whose `[P, P, u, u]` layout is transposed to v's `[P, u, P, u]`
    once per grid point.
    """
    size, units = factors.size, factors.units
    gram, linear, constant = np.zeros((size * size, units * units)), np.zeros((size, units)), 0.0
    rounds_per_block = max(1, BLOCK_ELEMENTS // (factors.batch * (size * size + 2 * units * units)))
    results = {key: np.zeros(len(ends)) for key in ("minimum", "rank", "condition", "gradient_norm",
                                                    "range_residual", "ill_conditioned")}
    start = 0
    for position, end in enumerate(ends):
        for part in round_blocks(start, end, rounds_per_block):
            features, jtj = factors.features(part), factors.jtj(part)
            weighted = factors.weight[part][..., None] * features
            z, q = factors.z[part].astype(np.float64), factors.q(part)
            gram += (weighted[..., :, None] * features[..., None, :]).reshape(-1, size * size).T @ jtj.reshape(
                -1, units * units)
            curvature_z = (jtj @ z[..., None])[..., 0]
            linear_coefficient, constants = layer_coefficients(z, q, curvature_z, factors.residual_sq[part])
            linear += weighted.reshape(-1, size).T @ linear_coefficient.reshape(-1, units)
            constant += np.sum(factors.weight[part] * constants)
        start = end
        hessian = gram.reshape(size, size, units, units).transpose(0, 2, 1, 3).reshape(size * units, -1)
        minimum, _, info = minimize_quadratic(hessian[None], linear.reshape(1, -1), np.array([constant]))
        results["minimum"][position] = minimum[0]
        for key in info:
            results[key][position] = info[key][0]
    results["converged"] = (results["gradient_norm"] < 1e-6) & (results["range_residual"] < 1e-6)
    results["iterations"] = np.zeros(len(ends), np.int64)
    return results


def _kronecker_inverse(input_gram: np.ndarray, mean_jtj: np.ndarray) -> scipy.sparse.linalg.LinearOperator:
    """The inverse of (Σκ x̃x̃ᵀ) ⊗ (Σκ M)/(Σκ), damped relative to its largest eigenvalue.

    Pixels that are zero in every image are not among the operator's columns; the damping
    keeps inputs that are almost always zero and units that are almost always off invertible.

    Args:
        input_gram: `[P', P']` Σκ x̃x̃ᵀ on the operator's columns.
        mean_jtj: `[u, u]` (Σκ M)/(Σκ).
    """
    input_values, input_vectors = np.linalg.eigh(input_gram)
    unit_values, unit_vectors = np.linalg.eigh(mean_jtj)
    spectrum = np.outer(np.maximum(input_values, 0), np.maximum(unit_values, 0))
    spectrum += _KRONECKER_DAMPING * max(spectrum.max(), np.finfo(float).tiny)
    size, units = spectrum.shape

    def solve(vector):
        rotated = input_vectors.T @ vector.reshape(size, units) @ unit_vectors
        return (input_vectors @ (rotated / spectrum) @ unit_vectors.T).reshape(-1)

    return scipy.sparse.linalg.LinearOperator((size * units,) * 2, matvec=solve, dtype=np.float64)


class ExampleGram:
    """H of the rounds [0, `rounds`) as a matrix-free operator summed example by example.

    Hv = Σ_e κ_e x̃_e ⊗ (M_e Vᵀx̃_e) on the columns of x̃ that are not always zero: X̃V is
    formed once over the distinct inputs, its rows gathered by id, M_e applied along the
    chain, and the κ-weighted results summed per distinct input (a sparse matrix product)
    before one GEMM with X̃ᵀ. A matvec costs one chain pass per example of the prefix.

    Attributes:
        columns: `[P']` the columns of x̃ that are non-zero in some example of the prefix.
        table: `[D, P']` the distinct x̃ restricted to `columns` (each example its own row for a
            hidden layer, whose inputs change every round).
        input_weight: `[D]` Σκ of each distinct input.
        shape: The operator's shape, `(P'·u, P'·u)`.
    """

    def __init__(self, factors: ChainFactors, rounds: int):
        self.factors = factors
        valid = factors.valid[:rounds]
        widest = max([factors.units] + [multiplier.shape[2] for multiplier in factors.multipliers])
        self.blocks = list(round_blocks(0, rounds, max(1, BLOCK_ELEMENTS // (4 * factors.batch * widest))))
        if factors.input_table is not None:
            distinct, local = np.unique(factors.input_id[:rounds][valid], return_inverse=True)
            table = factors.input_table[distinct].astype(np.float64)
        else:  # inputs of a hidden layer change every round: each example is its own row
            table = np.concatenate([factors.features(part)[factors.valid[part]] for part in self.blocks])
            local = np.arange(len(table))
        self.local_id = np.zeros(valid.shape, np.int64)
        self.local_id[valid] = local
        self.columns = np.flatnonzero(np.any(table != 0, axis=0))
        self.table = np.ascontiguousarray(table[:, self.columns])
        self.input_weight = np.bincount(local, factors.weight[:rounds][valid], minlength=len(table))
        self.aggregators = []
        for part in self.blocks:
            rows = factors.valid[part].reshape(-1)
            self.aggregators.append(scipy.sparse.csr_matrix(
                (factors.weight[part].reshape(-1)[rows], (self.local_id[part].reshape(-1)[rows], np.flatnonzero(rows))),
                shape=(len(table), rows.size),
            ))
        self.shape = (len(self.columns) * factors.units,) * 2

    def matvec(self, vector: np.ndarray) -> np.ndarray:
        """`[P'·u]` Hv of v `[P'·u]` (V `[P', u]` flattened row by row)."""
        units = self.factors.units
        projected = self.table @ vector.reshape(len(self.columns), units)
        pulled = np.zeros_like(projected)
        for part, aggregator in zip(self.blocks, self.aggregators):
            curvature = self.factors.apply_jtj(part, projected[self.local_id[part]])
            pulled += aggregator @ curvature.reshape(-1, units)
        return (self.table.T @ pulled).reshape(-1)

    def kronecker_inverse(self, mean_jtj: np.ndarray) -> scipy.sparse.linalg.LinearOperator:
        """The Kronecker preconditioner (`_kronecker_inverse`) of this prefix, given (Σκ M)/(Σκ) `[u, u]`."""
        return _kronecker_inverse(self.table.T @ (self.input_weight[:, None] * self.table), mean_jtj)


class InputSums:
    """Σκ M_e and Σκ per distinct input of a layer whose inputs repeat (the first layer), added round by round.

    Grouped by input, H = Σ_d x̃_d x̃_dᵀ ⊗ M̄_d with M̄_d = Σ_{e∈d} κ_e M_e, so a layer-scale
    matvec (`InputGram`) costs one pass over the distinct inputs however often each was seen.
    The inputs of the rounds [0, `rounds`) are numbered by first appearance, which makes the
    inputs of every prefix a leading slice of these arrays.

    Memory: M̄ is float64 `[D, u, u]`, D the distinct inputs of the rounds [0, `rounds`): 1.2 GB
    for MNIST's 60,000 images × 50 units. Its pages are touched only as inputs appear.

    Attributes:
        input_order: `[D]` the ids (rows of `factors.input_table`) of the distinct inputs, by first appearance.
        input_jtj: `[D, u, u]` M̄_d over the rounds added so far.
        input_weight: `[D]` Σκ of each input over the rounds added so far.
        rounds: The rounds added so far, [0, `rounds`).
        present: The number of distinct inputs of those rounds, `input_order[:present]`.

    Raises:
        ValueError: the layer's inputs are not stored as a table of distinct inputs.
    """

    def __init__(self, factors: ChainFactors, rounds: int):
        if factors.input_table is None:
            raise ValueError("InputSums needs the distinct inputs of the first layer (factors.input_table); "
                             "a hidden layer's inputs change every round.")
        self.factors = factors
        valid = factors.valid[:rounds]
        distinct, first_row = np.unique(factors.input_id[:rounds][valid], return_index=True)
        appearance = np.argsort(first_row)
        self._slot = np.full(len(factors.input_table), -1, np.int64)  # input id → position, −1 if not seen
        self.input_order = distinct[appearance]
        self._slot[self.input_order] = np.arange(len(distinct))
        self._first_round = np.nonzero(valid)[0][first_row[appearance]]  # nondecreasing
        self._capacity = rounds
        self.input_jtj = np.zeros((len(distinct), factors.units, factors.units))
        self.input_weight = np.zeros(len(distinct))
        self.rounds, self.present = 0, 0

    def add(self, part: slice, jtj: np.ndarray) -> None:
        """Adds the examples of the rounds `part`, which start where the rounds added so far end.

        Args:
            part: The rounds [start, stop) to add, start = `rounds`, stop at most the constructor's `rounds`.
            jtj: `[r, B, u, u]` M_e of those rounds (`factors.jtj(part)`).

        Raises:
            ValueError: `part` does not continue the rounds added so far or goes past the constructor's `rounds`.
        """
        if part.start != self.rounds or not part.start <= part.stop <= self._capacity:
            raise ValueError(f"InputSums adds the rounds [{self.rounds}, {self._capacity}) in order. "
                             f"Received: part={part}")
        rows = self.factors.valid[part].reshape(-1)
        slots = self._slot[self.factors.input_id[part].reshape(-1)[rows]]
        seen, local = np.unique(slots, return_inverse=True)
        # One sparse product sums the κ M_e of each input over the block's rows (padding rows get no entry).
        aggregator = scipy.sparse.csr_matrix(
            (self.factors.weight[part].reshape(-1)[rows], (local, np.flatnonzero(rows))), shape=(len(seen), rows.size))
        units = self.factors.units
        self.input_jtj[seen] += (aggregator @ jtj.reshape(rows.size, units * units)).reshape(-1, units, units)
        self.input_weight[seen] += np.asarray(aggregator.sum(axis=1)).reshape(-1)
        self.rounds = part.stop
        self.present = int(np.searchsorted(self._first_round, self.rounds))


class InputGram:
    """H of the rounds added to `sums` so far, as a matrix-free operator summed input by input.

    Hv = X̃ᵀ(M̄_d (X̃V)_d)_d on the columns of x̃ that are not always zero: one GEMM for X̃V
    `[D', u]`, one batched u × u product per distinct input, one GEMM for X̃ᵀ(·). The table is
    dense: at MNIST's density (about 20% of the non-zero columns) a CSR table is no faster on
    one BLAS thread and slower on two (bench/bench_layer_cg.py). It reads the M̄_d of `sums`
    in place, so it describes the prefix it was made for only until `sums.add` is called again.

    Attributes:
        columns: `[P']` the columns of x̃ that are non-zero in some input of the prefix.
        table: `[D', P']` the prefix's distinct x̃ restricted to `columns`, in float64.
        input_jtj: `[D', u, u]` the prefix's M̄_d (a view of `sums.input_jtj`).
        input_weight: `[D']` Σκ of each distinct input of the prefix.
        shape: The operator's shape, `(P'·u, P'·u)`.
    """

    def __init__(self, sums: InputSums):
        table = sums.factors.input_table[sums.input_order[:sums.present]]
        self.columns = np.flatnonzero(np.any(table != 0, axis=0))
        self.table = table[:, self.columns].astype(np.float64)
        self.input_jtj = sums.input_jtj[:sums.present]
        self.input_weight = sums.input_weight[:sums.present].copy()
        self.units = sums.factors.units
        self.shape = (len(self.columns) * self.units,) * 2

    def matvec(self, vector: np.ndarray) -> np.ndarray:
        """`[P'·u]` Hv of v `[P'·u]` (V `[P', u]` flattened row by row)."""
        projected = self.table @ vector.reshape(len(self.columns), self.units)
        curvature = np.einsum("dkl,dl->dk", self.input_jtj, projected)
        return (self.table.T @ curvature).reshape(-1)

    def kronecker_inverse(self, mean_jtj: np.ndarray) -> scipy.sparse.linalg.LinearOperator:
        """The Kronecker preconditioner (`_kronecker_inverse`) of this prefix, given (Σκ M)/(Σκ) `[u, u]`."""
        return _kronecker_inverse(self.table.T @ (self.input_weight[:, None] * self.table), mean_jtj)


def cg_chain_minima(factors: ChainFactors, ends: np.ndarray, rtol: float, maxiter: int,
                    max_input_sums_bytes: int = MAX_INPUT_SUMS_BYTES) -> dict:
    """Solves each grid point's Hv = −g by preconditioned conjugate gradients, warm-started.

    g, s and Σκ M are summed segment by segment (M_e formed a block at a time and
    dropped); H is never formed. For the first layer the same blocks add M̄_d per distinct
    input (`InputSums`) and each matvec is one pass over the prefix's distinct inputs
    (`InputGram`), whatever the number of epochs; a hidden layer, or a first layer whose
    M̄ would exceed `max_input_sums_bytes`, applies M_e along the chain per example at every
    matvec (`ExampleGram`). The value reported is f(v) = vᵀHv + 2gᵀv + s
    = vᵀ(Hv + g) + gᵀv + s at the returned v, an upper bound of the minimum that meets it
    as the relative residual ‖Hv + g‖/‖g‖ goes to 0.

    Args:
        factors: The layer's chain factors.
        ends: `[G]` nondecreasing; grid point i is the prefix of rounds [0, ends[i]).
        rtol: CG stops when ‖Hv + g‖ ≤ rtol·‖g‖.
        maxiter: CG iteration limit per grid point.
        max_input_sums_bytes: The largest float64 M̄ `[D, u, u]` (D the stored distinct inputs)
            held in memory for the per-input operator.

    Returns:
        `[G]` arrays "minimum", "gradient_norm" (the relative residual), "iterations", "converged".
    """
    size, units = factors.size, factors.units
    linear, constant, jtj_sum, weight_sum = np.zeros((size, units)), 0.0, np.zeros((units, units)), 0.0
    solution = np.zeros((size, units))
    rounds_per_block = max(1, BLOCK_ELEMENTS // (factors.batch * (size + 2 * units * units)))
    results = {key: np.zeros(len(ends)) for key in ("minimum", "gradient_norm", "iterations")}
    results["converged"] = np.zeros(len(ends), bool)
    sums = None
    if factors.input_table is not None and len(factors.input_table) * units * units * 8 <= max_input_sums_bytes:
        sums = InputSums(factors, int(ends[-1]) if len(ends) else 0)
    start = 0
    for position, end in enumerate(ends):
        for part in round_blocks(start, end, rounds_per_block):
            weight, features, jtj = factors.weight[part], factors.features(part), factors.jtj(part)
            z, q = factors.z[part].astype(np.float64), factors.q(part)
            curvature_z = (jtj @ z[..., None])[..., 0]
            linear_coefficient, constants = layer_coefficients(z, q, curvature_z, factors.residual_sq[part])
            linear += (weight[..., None] * features).reshape(-1, size).T @ linear_coefficient.reshape(-1, units)
            constant += np.sum(weight * constants)
            jtj_sum += np.einsum("rb,rbkl->kl", weight, jtj)
            weight_sum += np.sum(weight)
            if sums is not None:
                sums.add(part, jtj)
        start = end
        gradient_scale = np.linalg.norm(linear)
        if gradient_scale == 0:  # no examples yet, or g = 0: v = 0 is a minimizer
            solution[:] = 0.0
            results["minimum"][position], results["converged"][position] = constant, True
            continue
        gram = InputGram(sums) if sums is not None else ExampleGram(factors, end)
        operator = scipy.sparse.linalg.LinearOperator(gram.shape, matvec=gram.matvec, dtype=np.float64)
        preconditioner = gram.kronecker_inverse(jtj_sum / weight_sum)
        target = -linear[gram.columns].reshape(-1)
        iterate, iterations = solution[gram.columns].reshape(-1), 0

        def count(_):
            nonlocal iterations
            iterations += 1

        while True:  # restarted (residual recomputed) should CG's recursive residual drift below the true one
            before = iterations
            iterate, _ = scipy.sparse.linalg.cg(operator, target, x0=iterate, rtol=rtol, atol=0.0,
                                                maxiter=maxiter - iterations, M=preconditioner, callback=count)
            residual = gram.matvec(iterate) - target  # Hv + g
            relative = np.linalg.norm(residual) / gradient_scale
            if relative <= rtol or iterations >= maxiter or iterations == before:
                break
        solution[:] = 0.0
        solution[gram.columns] = iterate.reshape(-1, units)
        results["minimum"][position] = iterate @ residual - target @ iterate + constant
        results["gradient_norm"][position] = relative
        results["iterations"][position] = iterations
        results["converged"][position] = relative <= rtol
        del gram, operator, preconditioner  # this prefix's tables go before the next prefix's are built
    results["iterations"] = results["iterations"].astype(np.int64)
    return results
