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
from keras_taylor.analysis.chain_factors import chain_position, load_chain_factors
from keras_taylor.analysis.chain_pass import NeuronChainSolver, run_chain_pass
from keras_taylor.analysis.chain_solvers import CGLayerSolver, ExplicitLayerSolver
from keras_taylor.analysis.neuron_sums import neuron_sums
from keras_taylor.analysis.results import MissingStatisticsError, SolverDiagnostics, TaylorOptimumWarning
from keras_taylor.analysis.route import RouteMinima, RouteSolver, exact_minima
from keras_taylor.schema import Route

LAYER_SOLVERS = ("auto", "explicit", "cg")


class ChainRoute(RouteSolver):
    """Neuron scale summed per distinct input; layer scale solved explicitly or by CG.

    Every (layer, scale) asked together is served by one pass over the rounds (`chain_pass`).

    Options (layer scale only):
        layer_solver: "explicit", "cg", or "auto": explicit when P·u ≤ `max_explicit_parameters`.
        max_explicit_parameters: The largest P·u that "auto" solves explicitly (H is (P·u)²).
        cg_rtol: CG stops when ‖Hv + g‖ ≤ cg_rtol·‖g‖ (bench/README.md has its measured error).
        cg_maxiter: CG iteration limit per grid point.
    """

    route = Route.CHAIN
    options = ("layer_solver", "max_explicit_parameters", "cg_rtol", "cg_maxiter")

    def minima(self, reader, layer: str, neurons, rounds, **options) -> RouteMinima:
        return self.minima_together(reader, [(layer, neurons)], rounds, **options)[0]

    def minima_many(self, reader, requests, rounds, **options) -> list:
        """`minima_together`; if a request cannot be served (a missing stream, a layer outside the
        chain), each request alone, so that each gets its own reason and the others their minima."""
        if len(requests) > 1:
            try:
                return self.minima_together(reader, requests, rounds, **options)
            except MissingStatisticsError:
                pass
        return super().minima_many(reader, requests, rounds, **options)

    def minima_together(self, reader, requests, rounds, *, layer_solver: str = "auto",
                        max_explicit_parameters: int = 4096, cg_rtol: float = 1e-4, cg_maxiter: int = 3000) -> list:
        """The `RouteMinima` of each `(layer, neurons)` request (neurons None: the layer scale), from one pass.

        The layer scale's minimum of vᵀHv + 2gᵀv + s is found exactly from H ("explicit",
        pivoted Cholesky) or matrix-free ("cg", conjugate gradients with a Kronecker
        preconditioner, for a layer whose H does not fit in memory). For CG the diagnostics'
        "gradient_norm" is the relative residual ‖Hv + g‖/‖g‖, "rank" −1, "condition" NaN.

        Raises:
            MissingStatisticsError: the run lacks the chain streams or a layer is not in its chain.
            ValueError: an unknown `layer_solver`.
        """
        if layer_solver not in LAYER_SOLVERS:
            raise ValueError(f"layer_solver must be 'auto', 'explicit' or 'cg'. Received: layer_solver={layer_solver!r}")
        grid = grids.select_rounds(len(reader.round_losses.steps), rounds, reader.logdir)
        chain = reader.manifest.chain_layers
        positions = [chain_position(reader, layer) for layer, _ in requests]
        lowest = min(positions)
        factors = load_chain_factors(reader, chain[lowest], int(grid[-1]) if grid.size else 0,
                                     upper=max(positions) > lowest)
        # The row blocks of each prefix (every layer of the chain streams the same rows).
        ends = None if factors is None else np.searchsorted(factors.round_counts, grid, side="right")
        solvers = []
        for (layer, neurons), position in zip(requests, positions):
            layer_factors = None if factors is None else factors.above(position - lowest)
            if neurons is not None:
                solver = _NeuronRequest(reader, layer_factors, grid, neurons)
            else:
                solver = _LayerRequest(reader, layer, layer_factors, grid, ends, layer_solver,
                                       max_explicit_parameters, cg_rtol, cg_maxiter)
            solvers.append((position - lowest, solver))
        if factors is not None:
            run_chain_pass(factors, [(offset, solver.solver) for offset, solver in solvers if solver.solver], ends)
        return [solver.minima() for _, solver in solvers]


class _NeuronRequest:
    """Per example the neuron's z, q_α = (Jᵀr)_α, curvature c = (JᵀJ)_αα and the layer input x̃
    follow from the chain factors; they are then summed as the STREAM route sums its rows."""

    def __init__(self, reader, factors, grid, neurons):
        self.reader, self.grid, self.count = reader, grid, len(neurons)
        self.solver = None if factors is None else NeuronChainSolver(factors, neurons, len(grid))

    def minima(self) -> RouteMinima:
        if self.solver is None:  # no finite round streamed anything: every sum is zero
            return exact_minima(self.reader, self.grid, *neuron_sums(np.zeros((0, 1)), iter(()), self.grid, self.count))
        return exact_minima(self.reader, self.grid, self.solver.minima, self.solver.info)


class _LayerRequest:
    """A hidden dense-chain layer's layer-scale Taylor optima from its chain factors."""

    def __init__(self, reader, layer, factors, grid, ends, layer_solver, max_explicit_parameters, cg_rtol,
                 cg_maxiter):
        self.reader, self.layer, self.grid, self.cg_rtol, self.cg_maxiter = reader, layer, grid, cg_rtol, cg_maxiter
        self.kind, self.solver = "none", None
        if factors is not None:
            self.kind = layer_solver
            if layer_solver == "auto":
                self.kind = "explicit" if factors.size * factors.units <= max_explicit_parameters else "cg"
            self.solver = (ExplicitLayerSolver(factors, len(grid)) if self.kind == "explicit"
                           else CGLayerSolver(factors, ends, cg_rtol, cg_maxiter))

    def minima(self) -> RouteMinima:
        grid, cg_rtol = self.grid, self.cg_rtol
        if self.solver is None:  # no round up to the grid's end streamed a row: every prefix sums to 0
            results = {"minimum": np.zeros(len(grid)), "gradient_norm": np.zeros(len(grid)),
                       "iterations": np.zeros(len(grid), np.int64), "converged": np.ones(len(grid), bool)}
            method = "none (no recorded round up to the grid's end streamed an example)"
        else:
            results = self.solver.finish()
            method = ("pivoted Cholesky of the layer Gram summed from streamed chain factors" if self.kind == "explicit"
                      else f"Kronecker-preconditioned conjugate gradients (cg_rtol={cg_rtol:g}) on streamed chain factors")
            if self.kind == "cg" and self.solver.sums is not None:
                method += ", started at the exact minimizer where the distinct inputs are linearly independent"
        for key, value in (("rank", -1), ("condition", np.nan), ("range_residual", 0.0), ("ill_conditioned", False)):
            results.setdefault(key, np.full(len(grid), value))
        failed = ~results["converged"]
        if self.kind == "cg" and failed.any():
            warnings.warn(
                f"{self.reader.logdir}: conjugate gradients for the layer-scale Taylor optimum of {self.layer!r} did not "
                f"reach cg_rtol={cg_rtol:g} within cg_maxiter={self.cg_maxiter} at rounds {grid[failed].tolist()} "
                f"(relative residuals {results['gradient_norm'][failed].tolist()}); those minima are upper bounds.",
                TaylorOptimumWarning, stacklevel=6,
            )
        diagnostics = SolverDiagnostics(
            method=method if grid.size else "none", converged=np.asarray(results["converged"]).astype(bool),
            gradient_norm=np.asarray(results["gradient_norm"]), iterations=np.asarray(results["iterations"]).astype(np.int64),
            rank=np.asarray(results["rank"]).astype(np.int64), condition=np.asarray(results["condition"]).astype(np.float64),
            ill_conditioned=np.asarray(results["ill_conditioned"]).astype(bool),
            solve_seconds=results.get("solve_seconds"), value_error=results.get("error_estimate"),
        )
        return RouteMinima(grid, results["minimum"][None], [diagnostics],
                           self.reader.round_losses.finite_cumulative[grid - 1])
