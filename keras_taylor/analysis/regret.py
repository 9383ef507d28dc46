"""Regret(N) against the hindsight Taylor optimum, at network, layer and neuron scale (paper, Theorem 2)."""

import numpy as np

from keras_taylor.analysis.reader import RoundLosses, open_reader
from keras_taylor.analysis.results import LayerRegrets, MissingStatisticsError, NeuronRegretBand, RegretCurve
from keras_taylor.analysis.routes import route_minima, route_minima_many
from keras_taylor.schema import Scale


def round_losses(run) -> RoundLosses:
    """The losses incurred on each recorded round of a TaylorRecorder run."""
    return open_reader(run).round_losses


def checkpoint_rounds(run) -> np.ndarray:
    """`[K]` the round counts N at which the run's running sums were written (its exact grid)."""
    return open_reader(run).checkpoint_rounds()


def _curve(result, layer, neuron) -> RegretCurve:
    cumulative_loss = result.cumulative_loss
    return RegretCurve(
        scale=(Scale.NETWORK if layer is None else (Scale.LAYER if neuron is None else Scale.NEURON)).value,
        layer=layer, neuron=neuron, rounds=result.grid, cumulative_loss=cumulative_loss,
        cumulative_taylor_optimum=result.minima[0], regret=cumulative_loss - result.minima[0],
        diagnostics=result.diagnostics[0],
    )


def _band(result, layer, neurons) -> NeuronRegretBand:
    grid, minima, cumulative_loss = result.grid, result.minima, result.cumulative_loss
    curves = tuple(
        RegretCurve(Scale.NEURON.value, layer, neuron, grid, cumulative_loss, minima[index],
                    cumulative_loss - minima[index], result.diagnostics[index])
        for index, neuron in enumerate(neurons)
    )
    return NeuronRegretBand(layer, np.array(neurons), grid, cumulative_loss, minima, cumulative_loss[None] - minima,
                            curves)


def _chosen_neurons(reader, layer: str, neurons, sample, seed) -> list:
    recorded = list(reader.layer(layer).neurons)
    neurons = recorded if neurons is None else [int(n) for n in neurons]
    if not neurons:
        raise MissingStatisticsError(f"{reader.logdir} recorded no neurons of layer {layer!r}.")
    if sample is not None and sample < len(neurons):
        neurons = sorted(np.random.default_rng(seed).choice(neurons, sample, replace=False).tolist())
    return neurons


def regret_curve(run, layer: str | None = None, neuron: int | None = None, rounds=None,
                 **solver_options) -> RegretCurve:
    """Regret(N) of the network, one layer or one neuron (paper, Theorem 2).

    Args:
        run: A run directory (path), an opened `storage.Run` or a `RunReader` of a TaylorRecorder.
        layer: None for the network scale, else a recorded layer's name.
        neuron: With `layer`, a recorded neuron (unit or filter index) for the neuron scale.
        rounds: The grid of N. Default: the checkpoints the recorder wrote its running
            sums at (squared error; log-spaced by default), a log-spaced grid of about 20
            points for streamed and cross-entropy routes.
        **solver_options: For cross-entropy runs, options of the bounded solver (`radius`,
            `radius_scale`, `tolerance`, `max_iterations`; see `factored_taylor_optimum`); for a
            layer whose chain factors were streamed, `layer_solver`, `max_explicit_parameters`,
            `cg_rtol`, `cg_maxiter` (see `analysis.chain_route`; ignored by every other route, so
            one set of options can serve a whole run).

    Returns:
        The `RegretCurve`.

    Raises:
        MissingStatisticsError: the run did not record that scale (the message says what it did record).
    """
    reader = open_reader(run)
    result = route_minima(reader, layer, None if neuron is None else [neuron], rounds, **solver_options)
    return _curve(result, layer, neuron)


def neuron_regret_band(run, layer: str, neurons=None, rounds=None, *, sample: int | None = None,
                       seed: int = 0, **solver_options) -> NeuronRegretBand:
    """Neuron-scale regret of several neurons of one layer, solved together.

    Args:
        run: A run directory, opened run or `RunReader`.
        layer: The layer's name.
        neurons: Neuron indices; default every recorded neuron of the layer.
        rounds: The grid of N (as `regret_curve`).
        sample: Take a fixed random sample of this many of those neurons (the paper uses 50).
        seed: Seed of the sample.
        **solver_options: As `regret_curve`.

    Returns:
        The `NeuronRegretBand` (mean and standard deviation across neurons as properties).
    """
    reader = open_reader(run)
    neurons = _chosen_neurons(reader, layer, neurons, sample, seed)
    return _band(route_minima(reader, layer, neurons, rounds, **solver_options), layer, neurons)


def layer_regrets(run, layers=None, rounds=None, *, scales=(Scale.LAYER, Scale.NEURON), sample: int | None = None,
                  seed: int = 0, **solver_options) -> LayerRegrets:
    """The layer- and neuron-scale regret of several layers, from as few passes over the run as its routes allow.

    The same curves as `regret_curve(run, layer)` and `neuron_regret_band(run, layer, sample=...)`
    for each layer, but the scales streamed as chain factors are all served by one pass over
    the rounds, which multiplies the chain out once instead of once per layer and scale.

    Args:
        run: A run directory, opened run or `RunReader`.
        layers: Layer names; default every recorded layer, in model order.
        rounds: The grid of N (as `regret_curve`).
        scales: Which of "layer" and "neuron" to compute.
        sample: At neuron scale, a fixed random sample of this many of each layer's recorded
            neurons (as `neuron_regret_band`).
        seed: Seed of the sample.
        **solver_options: As `regret_curve`.

    Returns:
        The `LayerRegrets`; a scale the run did not record is in its `missing` with the reason.
    """
    reader = open_reader(run)
    layers = list(reader.manifest.layer_order if layers is None else layers)
    scales = [Scale(scale) for scale in scales]
    missing, requests, keys = {}, [], []
    for layer in layers:
        for scale in scales:
            try:
                neurons = _chosen_neurons(reader, layer, None, sample, seed) if scale is Scale.NEURON else None
            except MissingStatisticsError as error:
                missing[(layer, scale.value)] = str(error)
                continue
            requests.append((layer, neurons))
            keys.append((layer, scale))
    curves, bands = {}, {}
    for (layer, scale), (_, neurons), result in zip(keys, requests, route_minima_many(reader, requests, rounds,
                                                                                       **solver_options)):
        if isinstance(result, MissingStatisticsError):
            missing[(layer, scale.value)] = str(result)
        elif scale is Scale.LAYER:
            curves[layer] = _curve(result, layer, None)
        else:
            bands[layer] = _band(result, layer, neurons)
    return LayerRegrets(curves, bands, missing)
