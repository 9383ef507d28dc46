"""What every route's post-hoc solver returns, and the diagnostics of the exact quadratic solves."""

import dataclasses

import numpy as np

from keras_taylor.analysis.results import MissingStatisticsError, SolverDiagnostics


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


class RouteSolver:
    """The post-hoc solver of one `schema.Route` (registered in `routes.SOLVERS`).

    Attributes:
        route: The route it reads.
        options: The keyword options its `minima` takes.
    """

    route = None
    options = ()

    def minima(self, reader, layer: str | None, neurons, rounds, **options) -> RouteMinima:
        """The Taylor optima of the network (`layer` None), a layer (`neurons` None) or some neurons.

        Raises:
            MissingStatisticsError: the run did not record what this scale needs.
        """
        raise NotImplementedError

    def minima_many(self, reader, requests, rounds, **options) -> list:
        """`minima` of each `(layer, neurons)` of `requests`, one at a time (a route that serves several
        scales from one pass over the run solves them together).

        Returns:
            Per request its `RouteMinima`, or the `MissingStatisticsError` saying why it has none.
        """
        results = []
        for layer, neurons in requests:
            try:
                results.append(self.minima(reader, layer, neurons, rounds, **options))
            except MissingStatisticsError as error:
                results.append(error)
        return results


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
