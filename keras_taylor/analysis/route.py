"""What every route's post-hoc solver returns, and the diagnostics of the exact quadratic solves."""

import dataclasses

import numpy as np

from keras_taylor.analysis.results import SolverDiagnostics


@dataclasses.dataclass(frozen=True)
class RouteMinima:
    """Hindsight Taylor optima of U members (one at network and layer scale, one per neuron) on a grid.

    Attributes:
        grid: `[K]` the round counts N.
        minima: `[U, K]` min_V Σ_{n≤N} 𝒯^n(V).
        diagnostics: U `SolverDiagnostics`.
        cumulative_loss: `[K]` Σ_{n≤N} ℓ^n(W^n), the loss incurred on the data the Taylor losses use.
    """

    grid: np.ndarray
    minima: np.ndarray
    diagnostics: list
    cumulative_loss: np.ndarray


QUADRATIC_INFO = ("rank", "condition", "gradient_norm", "range_residual", "ill_conditioned")


def empty_quadratic_info(members: int, points: int) -> dict:
    """Zeroed `[members, points]` arrays of `minimize_quadratic`'s diagnostics."""
    return {key: np.zeros((members, points)) for key in QUADRATIC_INFO}


def quadratic_diagnostics(method: str, info: dict, member: int, iterations=None) -> SolverDiagnostics:
    """The `SolverDiagnostics` of one member from `[U, K]` arrays of `minimize_quadratic` diagnostics."""
    gradient_norm = info["gradient_norm"][member]
    return SolverDiagnostics(
        method=method,
        converged=(gradient_norm < 1e-6) & (info["range_residual"][member] < 1e-6),
        gradient_norm=gradient_norm,
        iterations=np.zeros(len(gradient_norm), np.int64) if iterations is None else iterations,
        rank=info["rank"][member].astype(np.int64),
        condition=info["condition"][member],
        ill_conditioned=info["ill_conditioned"][member].astype(bool),
    )


def exact_minima(reader, grid: np.ndarray, minima: np.ndarray, info: dict) -> RouteMinima:
    """A squared-error route's `RouteMinima` from pivoted-Cholesky solves (`minimize_quadratic` diagnostics)."""
    diagnostics = [quadratic_diagnostics("pivoted Cholesky", info, member) for member in range(len(minima))]
    return RouteMinima(grid, minima, diagnostics, reader.round_losses.finite_cumulative[grid - 1])
