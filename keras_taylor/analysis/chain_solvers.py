"""Layer-scale solvers on chain factors: the Gram formed explicitly, or matrix-free conjugate gradients."""

import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
from threadpoolctl import ThreadpoolController

from keras_taylor.analysis.chain_factors import BLOCK_ELEMENTS, ChainFactors, round_blocks
from keras_taylor.analysis.chain_pass import run_chain_pass
from keras_taylor.analysis.neuron_sums import weighted_gram
from keras_taylor.analysis.quadratic import minimize_quadratic
from keras_taylor.quadratic_terms import layer_coefficients

# Damping of the Kronecker preconditioner, relative to its largest eigenvalue.
_KRONECKER_DAMPING = 1e-6
# Inputs per chunk of the per-input matvec: 4,096 MNIST rows (22 MB of float64 X̃) stay in a 32 MB L3
# cache between the chunk's two products.
MATVEC_CHUNK_INPUTS = 4096
# Default memory cap of the first layer's per-input sums M̄ (float64 [D, u, u]): MNIST's
# 60,000 inputs × 50 units take 1.2 GB; a first layer of 100 units would take 4.8 GB
# and fall back to the per-example operator.
MAX_INPUT_SUMS_BYTES = 4 << 30


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """The BLAS libraries loaded in this process (found once: a search of the loaded libraries takes a millisecond)."""
    return ThreadpoolController()


def available_cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _pair_index(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (i ≤ j) pairs of `size` indices: `(first, second, number)`, `number[i, j]` the pair's position."""
    first, second = np.triu_indices(size)
    number = np.zeros((size, size), np.int64)
    number[first, second] = number[second, first] = np.arange(len(first))
    return first, second, number


def example_coefficients(factors: ChainFactors, part: slice, jtj: np.ndarray, q: np.ndarray):
    """Each example's ℓ = q − Mz `[r, B, u]` and s_e `[r, B]` of the rounds `part` from its M `[r, B, u, u]`
    and q `[r, B, u]` (`quadratic_terms.layer_coefficients`): g = Σκ x̃ ⊗ ℓ, s = Σκ s_e."""
    z = factors.z[part].astype(np.float64)
    return layer_coefficients(z, q, (jtj @ z[..., None])[..., 0], factors.residual_sq[part])


def _layer_linear_terms(factors: ChainFactors, part: slice, jtj: np.ndarray, q: np.ndarray):
    """What the rounds `part` add to a layer's g and s (`example_coefficients`).

    Returns:
        `(features [n, P], weighted [n, P] = κ x̃, linear [P, u], constant, coefficient [r, B, u])` over
        the n = r·B rows, `coefficient` the examples' ℓ.
    """
    size, units = factors.size, factors.units
    features = factors.features(part).reshape(-1, size)
    weighted = factors.weight[part].reshape(-1, 1) * features
    linear_coefficient, constants = example_coefficients(factors, part, jtj, q)
    return (features, weighted, weighted.T @ linear_coefficient.reshape(-1, units),
            np.sum(factors.weight[part] * constants), linear_coefficient)


class ExplicitLayerSolver:
    """H, g, s of a layer summed block by block, each grid point solved exactly (pivoted Cholesky).

    Per example H += κ (x̃x̃ᵀ) ⊗ M. Both factors are symmetric, so the sums are kept packed:
    G[(i ≤ j), (k ≤ l)] = Σκ x̃_i x̃_j M_kl is one GEMM per block, `[n, P(P+1)/2]ᵀ @ [n, u(u+1)/2]`
    (a quarter of the full product's multiplications), unpacked to H `[P·u, P·u]` at each grid point.
    """

    def __init__(self, factors: ChainFactors, points: int):
        self.factors = factors
        size, units = factors.size, factors.units
        self._first, self._second, self._input_pair_of = _pair_index(size)
        unit_first, unit_second, self._unit_pair_of = _pair_index(units)
        self._unit_pairs = unit_first * units + unit_second  # their positions in a row-major [u, u]
        self.packed_gram = np.zeros((len(self._first), len(self._unit_pairs)))
        self.linear, self.constant = np.zeros((size, units)), 0.0
        self.results = {key: np.zeros(points) for key in ("minimum", "rank", "condition", "gradient_norm",
                                                          "range_residual", "ill_conditioned")}

    def row_elements(self) -> int:
        """Float64 temporaries per example of `add`."""
        return 2 * len(self._first) + len(self._unit_pairs) + 2 * self.factors.size

    def add(self, part: slice, jtj: np.ndarray, q: np.ndarray) -> None:
        """Adds the rounds `part`, given their M `[r, B, u, u]` and q `[r, B, u]`."""
        features, weighted, linear, constant, _ = _layer_linear_terms(self.factors, part, jtj, q)
        outer = weighted[:, self._first] * features[:, self._second]
        self.packed_gram += outer.T @ jtj.reshape(len(features), -1)[:, self._unit_pairs]
        self.linear += linear
        self.constant += constant

    def hessian(self) -> np.ndarray:
        """`[P·u, P·u]` H of the rounds added so far, v = vec(V) with V `[P, u]` row-major."""
        size, units = self.factors.size, self.factors.units
        rows = self._input_pair_of[:, None, :, None]
        columns = self._unit_pair_of[None, :, None, :]
        return self.packed_gram[rows, columns].reshape(size * units, size * units)

    def close(self, position: int) -> None:
        minimum, _, info = minimize_quadratic(self.hessian()[None], self.linear.reshape(1, -1), np.array([self.constant]))
        self.results["minimum"][position] = minimum[0]
        for key in info:
            self.results[key][position] = info[key][0]

    def finish(self) -> dict:
        results = dict(self.results)
        results["converged"] = (results["gradient_norm"] < 1e-6) & (results["range_residual"] < 1e-6)
        results["iterations"] = np.zeros(len(results["minimum"]), np.int64)
        return results


def explicit_chain_minima(factors: ChainFactors, ends: np.ndarray) -> dict:
    """Forms H, g, s segment by segment (`ExplicitLayerSolver`) and solves each grid point exactly.

    Args:
        factors: The layer's chain factors.
        ends: `[G]` nondecreasing; grid point i is the prefix of rounds [0, ends[i]).

    Returns:
        `[G]` arrays "minimum", "rank", "condition", "gradient_norm", "range_residual",
        "ill_conditioned", "converged", "iterations".
    """
    solver = ExplicitLayerSolver(factors, len(ends))
    run_chain_pass(factors, [(0, solver)], ends)
    return solver.finish()


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
        return _kronecker_inverse(weighted_gram(self.table, self.input_weight), mean_jtj)


class InputSums:
    """Σκ M_e, Σκ ℓ_e and Σκ per distinct input of a layer whose inputs repeat (the first layer), added round by round.

    Grouped by input, H = Σ_d x̃_d x̃_dᵀ ⊗ M̄_d with M̄_d = Σ_{e∈d} κ_e M_e and g = Σ_d x̃_d ⊗ ℓ̄_d
    with ℓ̄_d = Σ_{e∈d} κ_e ℓ_e, so a layer-scale matvec (`InputGram`) costs one pass over the
    distinct inputs however often each was seen.
    The inputs of the rounds [0, `rounds`) are numbered by first appearance, which makes the
    inputs of every prefix a leading slice of these arrays.

    Memory: M̄ is float64 `[D, u, u]`, D the distinct inputs of the rounds [0, `rounds`): 1.2 GB
    for MNIST's 60,000 images × 50 units. Its pages are touched only as inputs appear.

    Attributes:
        input_order: `[D]` the ids (rows of `factors.input_table`) of the distinct inputs, by first appearance.
        input_jtj: `[D, u, u]` M̄_d over the rounds added so far.
        input_linear: `[D, u]` ℓ̄_d over the rounds added so far.
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
        self.input_linear = np.zeros((len(distinct), factors.units))
        self.input_weight = np.zeros(len(distinct))
        self.rounds, self.present = 0, 0

    def add(self, part: slice, jtj: np.ndarray, coefficient: np.ndarray) -> None:
        """Adds the examples of the rounds `part`, which start where the rounds added so far end.

        Args:
            part: The rounds [start, stop) to add, start = `rounds`, stop at most the constructor's `rounds`.
            jtj: `[r, B, u, u]` M_e of those rounds (`factors.jtj(part)`).
            coefficient: `[r, B, u]` ℓ_e = q_e − M_e z_e of those rounds (`example_coefficients`).

        Raises:
            ValueError: `part` does not continue the rounds added so far or goes past the constructor's `rounds`.
        """
        if part.start != self.rounds or not part.start <= part.stop <= self._capacity:
            raise ValueError(f"InputSums adds the rounds [{self.rounds}, {self._capacity}) in order. "
                             f"Received: part={part}")
        rows = self.factors.valid[part].reshape(-1)
        slots = self._slot[self.factors.input_id[part].reshape(-1)[rows]]
        weight = self.factors.weight[part].reshape(-1)[rows]
        units = self.factors.units
        linear = coefficient.reshape(rows.size, units)[rows]
        seen, local = np.unique(slots, return_inverse=True)
        if len(seen) == len(slots):  # each input at most once in the block (the rule within an epoch)
            weighted = jtj.reshape(rows.size, units, units)[rows]
            weighted *= weight[:, None, None]
            self.input_jtj[slots] += weighted
            self.input_linear[slots] += weight[:, None] * linear
            self.input_weight[slots] += weight
        else:  # one sparse product sums the κ M_e and κ ℓ_e of each input over the block's rows
            aggregator = scipy.sparse.csr_matrix((weight, (local, np.arange(len(slots)))), shape=(len(seen), len(slots)))
            self.input_jtj[seen] += (aggregator @ jtj.reshape(rows.size, units * units)[rows]).reshape(-1, units, units)
            self.input_linear[seen] += aggregator @ linear
            self.input_weight[seen] += np.asarray(aggregator.sum(axis=1)).reshape(-1)
        self.rounds = part.stop
        self.present = int(np.searchsorted(self._first_round, self.rounds))


class InputGram:
    """H of the rounds added to `sums` so far, as a matrix-free operator summed input by input.

    Hv = X̃ᵀ(M̄_d (X̃V)_d)_d on the columns of x̃ that are not always zero, a chunk of inputs at a
    time: per chunk one GEMM for X̃_cV `[c, u]`, one batched u × u product per input, one GEMM
    for X̃_cᵀ(·), the chunks' results summed in order. A chunk's rows stay in the CPU's cache
    between its two products, and with an `executor` the chunks run on its threads, BLAS on one
    thread each meanwhile, which also spreads the memory-bound u × u products, single-threaded
    in NumPy, over the cores. The table is dense: at MNIST's density (about 20% of the non-zero
    columns) a CSR table is no faster on one BLAS thread and slower on two
    (bench/bench_layer_cg.py). It reads the M̄_d of `sums` in place, so it describes the prefix
    it was made for only until `sums.add` is called again.

    Args:
        sums: The per-input sums of the prefix.
        executor: Runs the chunks (its `map`); None: one after another on this thread.
        chunk_inputs: Inputs per chunk.

    Attributes:
        columns: `[P']` the columns of x̃ that are non-zero in some input of the prefix.
        table: `[D', P']` the prefix's distinct x̃ restricted to `columns`, in float64.
        input_jtj: `[D', u, u]` the prefix's M̄_d (a view of `sums.input_jtj`).
        input_linear: `[D', u]` the prefix's ℓ̄_d (a view of `sums.input_linear`).
        input_weight: `[D']` Σκ of each distinct input of the prefix.
        shape: The operator's shape, `(P'·u, P'·u)`.
    """

    def __init__(self, sums: InputSums, executor=None, chunk_inputs: int = MATVEC_CHUNK_INPUTS):
        self._map = map if executor is None else executor.map
        self._chunk_inputs = chunk_inputs
        table = sums.factors.input_table[sums.input_order[:sums.present]]
        self.columns = np.flatnonzero(np.any(table != 0, axis=0))
        self.table = table[:, self.columns].astype(np.float64)
        self.input_jtj = sums.input_jtj[:sums.present]
        self.input_linear = sums.input_linear[:sums.present]
        self.input_weight = sums.input_weight[:sums.present].copy()
        self.units = sums.factors.units
        self.shape = (len(self.columns) * self.units,) * 2

    def matvec(self, vector: np.ndarray) -> np.ndarray:
        """`[P'·u]` Hv of v `[P'·u]` (V `[P', u]` flattened row by row)."""
        coefficients = vector.reshape(len(self.columns), self.units)

        def chunk_product(start: int) -> np.ndarray:
            rows = self.table[start:start + self._chunk_inputs]
            curvature = np.einsum("dkl,dl->dk", self.input_jtj[start:start + self._chunk_inputs], rows @ coefficients)
            return rows.T @ curvature

        starts = range(0, len(self.table), self._chunk_inputs)
        if self._map is map or len(starts) == 1:  # one chunk: BLAS's own threads serve it best
            return sum(map(chunk_product, starts), np.zeros_like(coefficients)).reshape(-1)
        with _blas_controller().limit(limits=1, user_api="blas"):  # else each thread's BLAS would spawn threads
            return sum(self._map(chunk_product, starts), np.zeros_like(coefficients)).reshape(-1)

    def kronecker_inverse(self, mean_jtj: np.ndarray) -> scipy.sparse.linalg.LinearOperator:
        """The Kronecker preconditioner (`_kronecker_inverse`) of this prefix, given (Σκ M)/(Σκ) `[u, u]`."""
        return _kronecker_inverse(weighted_gram(self.table, self.input_weight), mean_jtj)


def independent_inputs_minimizer(table: np.ndarray, input_jtj: np.ndarray, input_linear: np.ndarray) -> np.ndarray | None:
    """The exact minimizer of a layer's Taylor quadratic when its distinct inputs are linearly independent.

    Grouped by input the quadratic is f(V) = Σ_d y_dᵀM̄_d y_d + 2ℓ̄_dᵀy_d + s with y_d = (X̃V)_d.
    When X̃ `[D, P']` has rank D (at most as many distinct inputs as non-zero columns: a small
    dataset, or the first rounds of a run), V ↦ X̃V reaches every `[D, u]`, so the minimum is the
    sum of the inputs' own minima, at y_d = −M̄_d⁺ℓ̄_d (ℓ̄_d = Σκ J_eᵀ(r_e − J_e z_e) lies in M̄_d's
    range), and V = X̃⁺Y reaches it. H is singular there (rank at most D·u of P'·u), which is where
    conjugate gradients need the most steps.

    Args:
        table: `[D, P']` the distinct inputs x̃_d.
        input_jtj: `[D, u, u]` M̄_d.
        input_linear: `[D, u]` ℓ̄_d.

    Returns:
        `[P', u]` the least-norm minimizer, or None when the inputs are dependent (to rounding:
        numpy's `matrix_rank` tolerance) or outnumber the columns.
    """
    count, size = table.shape
    if count == 0 or count > size:
        return None
    left, singular, right = np.linalg.svd(table, full_matrices=False)
    if singular[-1] <= singular[0] * size * np.finfo(float).eps:
        return None
    values, vectors = np.linalg.eigh(input_jtj)
    kept = values > values[:, -1:] * input_jtj.shape[-1] * np.finfo(float).eps  # M̄_d's numerical range
    inverse = np.divide(1.0, values, out=np.zeros_like(values), where=kept)
    rotated = np.einsum("dkl,dk->dl", vectors, input_linear)
    outputs = -np.einsum("dkl,dl->dk", vectors, inverse * rotated)  # y_d = −M̄_d⁺ℓ̄_d
    return right.T @ ((left.T @ outputs) / singular[:, None])


def preconditioned_cg(matvec, target: np.ndarray, start: np.ndarray, preconditioner, tolerance: float,
                      maxiter: int, delay: int = 10) -> tuple[np.ndarray, int, float]:
    """Solves Hx = b (H ⪰ 0) by preconditioned conjugate gradients, with an estimate of the value's error.

    For f(x) = xᵀHx − 2bᵀx the error f(x_k) − min f is ‖x_k − x*‖²_H, and each step lowers it
    by exactly α_k r_kᵀz_k (Hestenes & Stiefel, 1952); summed over the `delay` steps after k,
    these give a lower estimate of the error at x_k (Strakoš & Tichý, 2002), which SciPy's cg
    does not expose. Stops when the true residual ‖b − Hx‖ is at most `tolerance` (the
    recursive one may drift below it: then the residual is recomputed and CG restarted).

    Args:
        matvec: x ↦ Hx.
        target: b.
        start: x_0.
        preconditioner: r ↦ M⁻¹r.
        tolerance: Absolute residual norm to reach.
        maxiter: Iteration limit.
        delay: Steps summed into the error estimate.

    Returns:
        `(x, iterations, error_estimate)`: the error estimate is Σ α_j r_jᵀz_j over the last
        `delay` steps (fewer if CG took fewer), the error of x `delay` steps before the last
        (an estimate of how far the returned x can be from the minimum, at most; 0 if no step
        was taken).
    """
    iterate = start.copy()
    decreases, iterations = [], 0
    while iterations < maxiter:
        residual = target - matvec(iterate)
        if np.linalg.norm(residual) <= tolerance:
            break
        preconditioned = preconditioner(residual)
        direction = preconditioned.copy()
        inner = residual @ preconditioned
        restart_at = iterations
        while iterations < maxiter:
            product = matvec(direction)
            curvature = direction @ product
            if curvature <= 0:  # H is singular along the direction: nothing left to lower
                break
            step = inner / curvature
            iterate += step * direction
            residual -= step * product
            decreases.append(step * inner)
            iterations += 1
            if np.linalg.norm(residual) <= tolerance:
                break
            preconditioned = preconditioner(residual)
            next_inner = residual @ preconditioned
            direction = preconditioned + (next_inner / inner) * direction
            inner = next_inner
        if iterations == restart_at:
            break
    return iterate, iterations, float(np.sum(decreases[-delay:]))


class CGLayerSolver:
    """g, s and Σκ M of a layer summed block by block, each grid point's Hv = −g solved by
    preconditioned conjugate gradients, warm-started from the previous point's solution.

    H is never formed. For the first layer the same blocks add M̄_d per distinct input
    (`InputSums`) and each matvec is one pass over the prefix's distinct inputs (`InputGram`),
    whatever the number of epochs; a hidden layer, or a first layer whose M̄ would exceed
    `max_input_sums_bytes`, applies M_e along the chain per example at every matvec
    (`ExampleGram`). The value reported is f(v) = vᵀHv + 2gᵀv + s = vᵀ(Hv + g) + gᵀv + s at
    the returned v, an upper bound of the minimum that meets it as the relative residual
    ‖Hv + g‖/‖g‖ goes to 0. Where the prefix's distinct inputs of the first layer are linearly
    independent, CG starts at the exact minimizer (`independent_inputs_minimizer`) and takes no
    step unless rounding left its residual above the tolerance.

    Args:
        factors: The layer's chain factors.
        ends: `[G]` the grid's prefixes of rounds [0, ends[i]).
        rtol: CG stops when ‖Hv + g‖ ≤ rtol·‖g‖.
        maxiter: CG iteration limit per grid point.
        max_input_sums_bytes: The largest float64 M̄ `[D, u, u]` (D the stored distinct inputs)
            held in memory for the per-input operator.
        workers: Threads of the per-input operator's matvec (default: the cores this process may
            use); while they run, BLAS runs on one thread each.
    """

    def __init__(self, factors: ChainFactors, ends: np.ndarray, rtol: float, maxiter: int,
                 max_input_sums_bytes: int = MAX_INPUT_SUMS_BYTES, workers: int | None = None):
        self.factors, self.ends, self.rtol, self.maxiter = factors, ends, rtol, maxiter
        self.workers = workers or available_cores()
        size, units = factors.size, factors.units
        self.linear, self.constant = np.zeros((size, units)), 0.0
        self.jtj_sum, self.weight_sum = np.zeros((units, units)), 0.0
        self.solution = np.zeros((size, units))
        self.results = {key: np.zeros(len(ends)) for key in ("minimum", "gradient_norm", "iterations",
                                                             "solve_seconds", "error_estimate")}
        self.results["converged"] = np.zeros(len(ends), bool)
        self.sums = None
        if factors.input_table is not None and len(factors.input_table) * units * units * 8 <= max_input_sums_bytes:
            self.sums = InputSums(factors, int(ends[-1]) if len(ends) else 0)

    def row_elements(self) -> int:
        return self.factors.size + 2 * self.factors.units ** 2

    def add(self, part: slice, jtj: np.ndarray, q: np.ndarray) -> None:
        _, _, linear, constant, coefficient = _layer_linear_terms(self.factors, part, jtj, q)
        self.linear += linear
        self.constant += constant
        weight = self.factors.weight[part]
        self.jtj_sum += np.einsum("rb,rbkl->kl", weight, jtj)
        self.weight_sum += np.sum(weight)
        if self.sums is not None:
            self.sums.add(part, jtj, coefficient)

    def close(self, position: int) -> None:
        start = time.perf_counter()
        if self.sums is None or self.workers == 1:
            self._solve(position, None)
        else:
            with ThreadPoolExecutor(self.workers) as executor:
                self._solve(position, executor)
        self.results["solve_seconds"][position] = time.perf_counter() - start

    def _solve(self, position: int, executor) -> None:
        results, units = self.results, self.factors.units
        gradient_scale = np.linalg.norm(self.linear)
        if gradient_scale == 0:  # no examples yet, or g = 0: v = 0 is a minimizer
            self.solution[:] = 0.0
            results["minimum"][position], results["converged"][position] = self.constant, True
            return
        if self.sums is not None:
            gram = InputGram(self.sums, executor)
        else:
            gram = ExampleGram(self.factors, int(self.ends[position]))
        start = self.solution[gram.columns]
        if self.sums is not None:
            exact = independent_inputs_minimizer(gram.table, gram.input_jtj, gram.input_linear)
            start = start if exact is None else exact
        preconditioner = gram.kronecker_inverse(self.jtj_sum / self.weight_sum)
        target = -self.linear[gram.columns].reshape(-1)
        iterate, iterations, error_estimate = preconditioned_cg(
            gram.matvec, target, start.reshape(-1), preconditioner.matvec, self.rtol * gradient_scale, self.maxiter)
        residual = gram.matvec(iterate) - target  # Hv + g
        relative = np.linalg.norm(residual) / gradient_scale
        self.solution[:] = 0.0
        self.solution[gram.columns] = iterate.reshape(-1, units)
        results["minimum"][position] = iterate @ residual - target @ iterate + self.constant
        results["gradient_norm"][position] = relative
        results["iterations"][position] = iterations
        results["error_estimate"][position] = error_estimate
        results["converged"][position] = relative <= self.rtol

    def finish(self) -> dict:
        results = dict(self.results)
        results["iterations"] = results["iterations"].astype(np.int64)
        return results


def cg_chain_minima(factors: ChainFactors, ends: np.ndarray, rtol: float, maxiter: int,
                    max_input_sums_bytes: int = MAX_INPUT_SUMS_BYTES, workers: int | None = None) -> dict:
    """Each grid point's minimum by `CGLayerSolver` (its Args), from one pass over the rounds.

    Returns:
        `[G]` arrays "minimum", "gradient_norm" (the relative residual), "iterations", "converged",
        "solve_seconds" (the wall time of each grid point's solve).
    """
    solver = CGLayerSolver(factors, ends, rtol, maxiter, max_input_sums_bytes, workers)
    run_chain_pass(factors, [(0, solver)], ends)
    return solver.finish()
