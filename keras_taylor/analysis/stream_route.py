"""Route STREAM: the per-example neuron factors of one dense layer, summed post hoc."""

import numpy as np

from keras_taylor import schema
from keras_taylor.analysis import grid as grids
from keras_taylor.analysis.neuron_sums import neuron_sums
from keras_taylor.analysis.route import RouteMinima, RouteSolver, exact_minima
from keras_taylor.schema import Route


class StreamRoute(RouteSolver):
    """Neuron scale only; no solver options.

    Each streamed example carries its weight κ, the neuron's z, q = Jᵀr, curvature
    c = (JᵀJ)_αα, ‖r‖², and the id of its (distinct) input row x̃ (see `neuron_sums`).
    """

    route = Route.STREAM
    options = ()

    def minima(self, reader, layer: str, neurons, rounds) -> RouteMinima:
        record = reader.layer(layer)
        members = [record.neurons.index(neuron) for neuron in neurons]
        grid = grids.select_rounds(len(reader.round_losses.steps), rounds, reader.logdir)
        stream = schema.neuron_stream(layer)
        reader.require(stream, schema.inputs_stream(layer))
        inputs = reader.input_table(layer).astype(np.float64)
        last_step = reader.last_step

        def rows():
            for chunk in reader.stream(stream).chunks():
                # A killed run can leave streamed rows ahead of its last written round: not part of the record yet.
                chunk = {key: value[chunk["step"] <= last_step] for key, value in chunk.items()}
                position = reader.round_positions(stream, chunk["step"])
                yield (position + 1, chunk["input_id"], chunk["weight"],
                       *(chunk[key][:, members] for key in ("z", "q", "curvature")), chunk["residual_sq"])

        return exact_minima(reader, grid, *neuron_sums(inputs, rows(), grid, len(members)))
