"""The registry of post-hoc solvers, one per `schema.Route`."""

from keras_taylor.analysis.chain_route import ChainRoute
from keras_taylor.analysis.factors_route import FactorsRoute
from keras_taylor.analysis.gram_route import GramRoute
from keras_taylor.analysis.results import MissingStatisticsError
from keras_taylor.analysis.route import RouteMinima
from keras_taylor.analysis.stream_route import StreamRoute

SOLVERS = {solver.route: solver for solver in (GramRoute(), StreamRoute(), ChainRoute(), FactorsRoute())}
# Options any squared-error route accepts and ignores unless it solves a layer from chain factors, so
# that one set of options can serve a whole run.
SHARED_OPTIONS = frozenset(ChainRoute.options)


def _solver(reader, layer: str | None, neurons, options: dict):
    """The solver of one scale and the options it takes (see `route_minima`)."""
    route = reader.route(layer, None if neurons is None else neurons[0])
    for neuron in neurons or ():
        reader.route(layer, neuron)
    solver = SOLVERS.get(route)
    if solver is None:
        raise MissingStatisticsError(f"{reader.logdir}: no post-hoc solver reads route {route.value!r}.")
    unknown = sorted(set(options) - set(solver.options) - SHARED_OPTIONS)
    if unknown:
        kind = "squared-error" if reader.manifest.quadratic else "non-quadratic"
        raise TypeError(f"Unknown solver options for a {kind} run: {unknown} (route {route.value!r} takes "
                        f"{list(solver.options)}).")
    return solver, {name: value for name, value in options.items() if name in solver.options}


def route_minima(reader, layer: str | None, neurons, rounds, **options) -> RouteMinima:
    """The Taylor optima of the network (`layer` None), a layer (`neurons` None) or some neurons.

    Raises:
        MissingStatisticsError: the run did not record that scale (the message says what it did record).
        TypeError: an option that the scale's route does not take.
    """
    solver, accepted = _solver(reader, layer, neurons, options)
    return solver.minima(reader, layer, neurons, rounds, **accepted)


def route_minima_many(reader, requests, rounds, **options) -> list:
    """`route_minima` of each `(layer, neurons)` of `requests`, grouped by route: each route's
    `minima_many` solves its group (CHAIN in one pass over the run).

    Returns:
        Per request its `RouteMinima`, or the `MissingStatisticsError` saying why that scale has none.

    Raises:
        TypeError: an option that a scale's route does not take.
    """
    results, groups = [None] * len(requests), {}
    for index, (layer, neurons) in enumerate(requests):
        try:
            solver, accepted = _solver(reader, layer, neurons, options)
        except MissingStatisticsError as error:
            results[index] = error
            continue
        groups.setdefault(solver.route, (solver, accepted, []))[2].append(index)
    for solver, accepted, indices in groups.values():
        solved = solver.minima_many(reader, [requests[index] for index in indices], rounds, **accepted)
        for index, result in zip(indices, solved):
            results[index] = result
    return results
