"""Route GRAM: running sums (H, g, s) accumulated during training, minimized exactly at each checkpoint."""

import numpy as np

from keras_taylor import schema
from keras_taylor.analysis import grid as grids
from keras_taylor.analysis.quadratic import minimize_quadratic
from keras_taylor.analysis.results import MissingStatisticsError
from keras_taylor.analysis.route import RouteMinima, RouteSolver, empty_quadratic_info, exact_minima
from keras_taylor.schema import Route, Scale


class GramRoute(RouteSolver):
    """Network, layer and neuron scales from the checkpointed sums; no solver options."""

    route = Route.GRAM
    options = ()

    def minima(self, reader, layer: str | None, neurons, rounds) -> RouteMinima:
        if layer is not None and neurons is None and reader.layer(layer).jacobian_is_identity:
            grid, minima, info = identity_layer_minima(reader, layer, rounds)
        else:
            grid, minima, info = checkpoint_minima(reader, layer, neurons, rounds)
        return exact_minima(reader, grid, minima, info)


def checkpoint_minima(reader, layer: str | None, neurons, rounds):
    """Taylor-optimum sums at the requested scale from the checkpointed running sums.

    Returns:
        `(grid [K], minima [U, K], diagnostics dict of [U, K])`, U = 1 at layer and network scale.
    """
    if layer is None:
        stream, members, shared = schema.gram_stream(Scale.NETWORK), [0], False
    elif neurons is None:
        stream, members, shared = schema.gram_stream(Scale.LAYER, layer), [0], False
    else:
        record = reader.layer(layer)
        stream, shared = schema.gram_stream(Scale.NEURON, layer), record.jacobian_is_identity
        members = [record.neurons.index(neuron) for neuron in neurons]
    grid = grids.select_checkpoints(reader.checkpoint_rounds(), rounds)
    minima = np.full((len(members), len(grid)), np.nan)
    diagnostics = empty_quadratic_info(len(members), len(grid))
    position = {count: index for index, count in enumerate(grid)}
    found = set()
    for count, gram, linear, constant in reader.gram_rows(stream, grid):
        if shared:  # J = I: one Gram Σ x̃x̃ᵀ serves every output neuron
            gram = np.broadcast_to(gram[0], (len(members),) + gram.shape[1:])
        else:
            gram = gram[members]
        minimum, _, info = minimize_quadratic(gram, linear[members], constant[members])
        minima[:, position[count]] = minimum
        for key in diagnostics:
            diagnostics[key][:, position[count]] = info[key]
        found.add(count)
    missing = sorted(set(grid.tolist()) - found)
    if missing:
        raise MissingStatisticsError(f"{reader.logdir}: stream {stream!r} has no sums at rounds {missing}.")
    return grid, minima, diagnostics


def identity_layer_minima(reader, layer: str, rounds):
    """Layer scale of an output layer with J = I, from its neurons' sums.

    The layer's Taylor loss is Σ_α (neuron α's) minus (u − 1) copies of the shared
    Σ κ‖r‖² = Σ_n ℓ^n(W^n) (each neuron's constant holds the whole residual), and
    its neurons decouple, so min = Σ_α min_α − (u − 1) Σ_{finite n≤N} ℓ^n.
    """
    record = reader.layer(layer)
    units = len(record.neurons)
    if record.neuron_route is not Route.GRAM or sorted(record.neurons) != list(range(units)) or units == 0:
        raise MissingStatisticsError(
            f"The layer scale of output layer {layer!r} is derived from all its neurons' sums; "
            f"{reader.logdir} recorded neurons {list(record.neurons)} by route {record.neuron_route.value!r}."
        )
    grid, minima, diagnostics = checkpoint_minima(reader, layer, list(record.neurons), rounds)
    losses = reader.round_losses
    finite_loss = np.cumsum(np.where(losses.finite, losses.losses, 0.0))[grid - 1]
    layer_minima = minima.sum(axis=0) - (units - 1) * finite_loss
    summary = {key: (value.max(axis=0) if key != "rank" else value.sum(axis=0))[None]
               for key, value in diagnostics.items()}
    return grid, layer_minima[None], summary
