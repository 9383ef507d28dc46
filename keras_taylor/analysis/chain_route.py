"""Route CHAIN: neuron and layer scales rebuilt post hoc from a dense chain's streamed factors.

The recorder streams, per example, κ, ‖r‖², the layer's z, the multipliers s_k of
every chain layer from l up, q of the top hidden layer and (per round) the kernels
above l and K = W_L W_Lᵀ; x̃ is the stored input row of the lowest streamed layer,
else s_{l−1} ⊙ z_{l−1} (and a 1). From these J_lᵀ J_l = M_l and q_l follow down the
chain (Observation 2; `keras_taylor.quadratic_terms` notation):

    M_{L−1} = S_{L−1} K S_{L−1},  M_k = S_k W_{k+1} M_{k+1} W_{k+1}ᵀ S_k,
    q_k = s_k ⊙ (W_{k+1} q_{k+1}),

and each example adds κ (x̃x̃ᵀ) ⊗ M to H, κ x̃ ⊗ (q − Mz) to g and
κ (‖r‖² − 2zᵀq + zᵀMz) to s.
"""

import warnings

import numpy as np

from keras_taylor.analysis import grid as grids
from keras_taylor.analysis.chain_factors import BLOCK_ELEMENTS, load_chain_factors, round_blocks
from keras_taylor.analysis.chain_solvers import cg_chain_minima, explicit_chain_minima
from keras_taylor.analysis.neuron_sums import neuron_sums
from keras_taylor.analysis.results import SolverDiagnostics, TaylorOptimumWarning
from keras_taylor.analysis.route import RouteMinima, exact_minima
from keras_taylor.schema import Route

LAYER_SOLVERS = ("auto", "explicit", "cg")


class ChainRoute:
    """Neuron scale summed per distinct input; layer scale solved explicitly or by CG.

    Options (layer scale only):
        layer_solver: "explicit", "cg", or "auto": explicit when P·u ≤ `max_explicit_parameters`.
        max_explicit_parameters: The largest P·u that "auto" solves explicitly (H is (P·u)²).
        cg_rtol: CG stops when ‖Hv + g‖ ≤ cg_rtol·‖g‖ (bench/README.md has its measured error).
        cg_maxiter: CG iteration limit per grid point.
    """

    route = Route.CHAIN
    options = ("layer_solver", "max_explicit_parameters", "cg_rtol", "cg_maxiter")

    def minima(self, reader, layer: str, neurons, rounds, **options) -> RouteMinima:
        if neurons is None:
            return layer_minima(reader, layer, rounds, **options)
        return neuron_minima(reader, layer, neurons, rounds)


def neuron_minima(reader, layer: str, neurons, rounds) -> RouteMinima:
    """Per example the neuron's z, q_α = (Jᵀr)_α, curvature c = (JᵀJ)_αα and the layer input x̃
    follow from the chain factors; they are then summed as the STREAM route sums its rows."""
    grid = grids.select_rounds(len(reader.round_losses.steps), rounds, reader.logdir)
    factors = load_chain_factors(reader, layer, int(grid[-1]) if grid.size else 0)
    members = np.asarray(neurons, np.int64)
    if factors is None:  # no finite round streamed anything: every sum is zero
        return exact_minima(reader, grid, *neuron_sums(np.zeros((0, 1)), iter(()), grid, len(members)))
    rounds_total, batch = factors.valid.shape
    if factors.input_table is not None:
        inputs = factors.input_table.astype(np.float64)
    else:  # each example's x̃ = s ⊙ z of the layer below is its own row
        inputs = factors.features(slice(0, rounds_total))[factors.valid]
    per_block = max(1, BLOCK_ELEMENTS // (batch * factors.units**2))

    def rows():
        start = 0
        for part in round_blocks(0, rounds_total, per_block):
            valid = factors.valid[part]
            count = int(valid.sum())
            ids = factors.input_id[part][valid] if factors.input_table is not None else np.arange(start, start + count)
            start += count
            curvature = np.einsum("rbii->rbi", factors.jtj(part))
            yield (np.repeat(factors.round_counts[part], valid.sum(axis=1)), ids, factors.weight[part][valid],
                   factors.z[part][valid][:, members], factors.q(part)[valid][:, members],
                   curvature[valid][:, members], factors.residual_sq[part][valid])

    return exact_minima(reader, grid, *neuron_sums(inputs, rows(), grid, len(members)))


def layer_minima(reader, layer: str, rounds, *, layer_solver: str = "auto", max_explicit_parameters: int = 4096,
                 cg_rtol: float = 1e-4, cg_maxiter: int = 3000) -> RouteMinima:
    """Layer-scale Taylor optima of a hidden dense-chain layer from its chain factors.

    The minimum of vᵀHv + 2gᵀv + s is found exactly from H ("explicit", pivoted Cholesky)
    or matrix-free ("cg", conjugate gradients with a Kronecker preconditioner, for a layer
    whose H does not fit in memory). For CG the diagnostics' "gradient_norm" is the relative
    residual ‖Hv + g‖/‖g‖, "rank" −1, "condition" NaN.

    Raises:
        MissingStatisticsError: the run lacks the chain streams or the layer is not in its chain.
        ValueError: an unknown `layer_solver`.
    """
    if layer_solver not in LAYER_SOLVERS:
        raise ValueError(f"layer_solver must be 'auto', 'explicit' or 'cg'. Received: layer_solver={layer_solver!r}")
    grid = grids.select_rounds(len(reader.round_losses.steps), rounds, reader.logdir)
    factors = load_chain_factors(reader, layer, int(grid[-1]) if grid.size else 0)
    if factors is None:  # no round up to the grid's end streamed a row: every prefix sums to 0
        results = {"minimum": np.zeros(len(grid)), "gradient_norm": np.zeros(len(grid)),
                   "iterations": np.zeros(len(grid), np.int64), "converged": np.ones(len(grid), bool)}
        solver, method = "none", "none (no recorded round up to the grid's end streamed an example)"
    else:
        ends = np.searchsorted(factors.round_counts, grid, side="right")  # the row blocks of each prefix
        solver = layer_solver
        if solver == "auto":
            solver = "explicit" if factors.size * factors.units <= max_explicit_parameters else "cg"
        if solver == "explicit":
            results = explicit_chain_minima(factors, ends)
            method = "pivoted Cholesky of the layer Gram summed from streamed chain factors"
        else:
            results = cg_chain_minima(factors, ends, cg_rtol, cg_maxiter)
            method = f"Kronecker-preconditioned conjugate gradients (cg_rtol={cg_rtol:g}) on streamed chain factors"
    for key, value in (("rank", -1), ("condition", np.nan), ("range_residual", 0.0), ("ill_conditioned", False)):
        results.setdefault(key, np.full(len(grid), value))
    failed = ~results["converged"]
    if solver == "cg" and failed.any():
        warnings.warn(
            f"{reader.logdir}: conjugate gradients for the layer-scale Taylor optimum of {layer!r} did not reach "
            f"cg_rtol={cg_rtol:g} within cg_maxiter={cg_maxiter} at rounds {grid[failed].tolist()} (relative "
            f"residuals {results['gradient_norm'][failed].tolist()}); those minima are upper bounds.",
            TaylorOptimumWarning, stacklevel=5,
        )
    diagnostics = SolverDiagnostics(
        method=method if grid.size else "none", converged=np.asarray(results["converged"]).astype(bool),
        gradient_norm=np.asarray(results["gradient_norm"]), iterations=np.asarray(results["iterations"]).astype(np.int64),
        rank=np.asarray(results["rank"]).astype(np.int64), condition=np.asarray(results["condition"]).astype(np.float64),
        ill_conditioned=np.asarray(results["ill_conditioned"]).astype(bool),
    )
    return RouteMinima(grid, results["minimum"][None], [diagnostics], reader.round_losses.finite_cumulative[grid - 1])
