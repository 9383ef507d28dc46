"""What is recorded, by which route, at what cost: the plan, fixed when training starts.

`plan_recording` is a pure function of the model and the recorder's options: it walks the
model, resolves the loss, picks a `schema.Route` per layer and scale from a cost model
(bytes in memory, multiply-adds per step against a training step's, bytes on disk), and
says why. The training step (`recording.step`), the host side (`recording.host`) and the
manifest all read the plan it returns.
"""

import dataclasses

import keras
import numpy as np

from keras_taylor import schedules, walker
from keras_taylor.losses import OUTPUT_ACTIVATIONS, MeanSquaredError, ResolvedLoss, resolve_loss
from keras_taylor.schema import Route, Scale

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class RecorderOptions:
    """The options of `TaylorRecorder` (documented there), validated."""

    layers: tuple | None = None
    neurons: object = None
    schedule: schedules.Schedule | None = None
    checkpoints: schedules.Schedule | None = None
    loss: object = None
    convex: bool = False
    storage_budget_bytes: int = 4 * GIB
    gram_budget_bytes: int = 256 * 2**20
    max_network_parameters: int = 3000
    max_gram_cost: float = 1.0
    dtype: str = "float32"
    seed: int = 0
    record_gradients: bool = False
    scales: tuple = (Scale.NETWORK, Scale.LAYER, Scale.NEURON)
    jtj_route: str = "propagate"
    examples_per_round: int | None = None
    layer_scale_layers: tuple | None = None

    def __post_init__(self):
        if self.examples_per_round is not None and self.examples_per_round < 1:
            raise ValueError(
                f"examples_per_round must be positive. Received: examples_per_round={self.examples_per_round}")
        if self.dtype not in ("float16", "float32", "float64"):
            raise ValueError(f"dtype must be float16, float32 or float64. Received: dtype={self.dtype!r}")
        unknown = sorted(set(map(str, self.scales)) - {scale.value for scale in Scale})
        if unknown:
            raise ValueError(f"scales must be among network, layer, neuron. Received: {unknown}")
        object.__setattr__(self, "scales", tuple(Scale(scale) for scale in self.scales))
        if self.jtj_route not in ("propagate", "batch_jacobian"):
            raise ValueError(f"jtj_route must be 'propagate' or 'batch_jacobian'. Received: {self.jtj_route!r}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(getattr(layer, "name", layer) for layer in self.layers))
        if self.layer_scale_layers is not None:
            if Scale.LAYER not in self.scales:
                raise ValueError("layer_scale_layers names layers for the layer scale, which scales does not "
                                 f"include. Received: scales={[scale.value for scale in self.scales]}")
            object.__setattr__(self, "layer_scale_layers",
                               tuple(getattr(layer, "name", layer) for layer in self.layer_scale_layers))

    def records_layer_scale(self, layer_name: str) -> bool:
        """Whether the layer scale of layer `layer_name` is asked for."""
        return Scale.LAYER in self.scales and (self.layer_scale_layers is None
                                               or layer_name in self.layer_scale_layers)


@dataclasses.dataclass(frozen=True)
class LayerPlan:
    """What is recorded for one layer.

    Attributes:
        name: The layer.
        kind: "dense" or "conv2d".
        neurons: Unit indices recorded at neuron scale (possibly empty).
        neuron_route: The neuron scale's `schema.Route`; CHAIN means rebuilt post
            hoc from the chain factors of `RecordingPlan.chain_stream`.
        layer_route: The layer scale's `schema.Route` (never STREAM)
            means the chain factors of `RecordingPlan.chain_stream`.
        reasons: Why a scale was skipped or routed as it was.
    """

    name: str
    kind: str
    neurons: tuple
    neuron_route: Route
    layer_route: Route
    reasons: tuple = ()


@dataclasses.dataclass(frozen=True)
class RecordingPlan:
    """Everything `round_tensors` needs to know, fixed at the start of training.

    Attributes:
        quadratic: True for squared error (sufficient statistics exist).
        at_logits: Linearize the logits before a final softmax.
        layers: One `LayerPlan` per recorded layer, in model order.
        network_route: Route.GRAM or Route.SKIPPED.
        dense_chain: Names of the dense layers if the model is a chain of dense
            layers with elementwise ops between them (fast M propagation), else ().
        output_identity: Whether f = z_L (linear output or logits), so J_L = I.
        identity_layer: That output layer's name (None if not `output_identity`).
        record_gradients: Also record the loss gradient (for checks).
        chain_stream: The dense chain from the lowest layer whose layer scale is streamed
            up to the output layer (empty if none): its per-example factors (z, s, the
            top layer's Jᵀr) and per-round weights rebuild every layer Gram post hoc.
        examples_per_round: Factored routes keep only the first k examples of a batch
            (their Jacobians come from a pass over those k alone).
    """

    quadratic: bool
    at_logits: bool
    layers: tuple
    network_route: Route
    dense_chain: tuple
    output_identity: bool
    identity_layer: str | None = None
    record_gradients: bool = False
    chain_stream: tuple = ()
    examples_per_round: int | None = None


def dense_chain(model: keras.Model) -> tuple:
    """The dense layers of `model` if it is a chain of Dense layers joined by elementwise ops.

    Such a chain has J_l = J_{l+1} W_{l+1}^T diag(s_l) between consecutive dense
    layers, which `round_tensors` uses to propagate J^T J without forming J.
    """
    layers = walker.model_layers(model)
    names = []
    previous = None
    for layer in layers:
        kind = walker.classify_layer(layer)
        if kind == "input":
            continue
        if kind == "conv2d" or (kind == "passthrough" and names):
            return ()
        if previous is not None and not _consumes(layer, previous):
            return ()
        if kind == "dense":
            names.append(layer.name)
        previous = layer
    return tuple(names)


def _consumes(layer, previous) -> bool:
    try:
        return layer.input is previous.output
    except (AttributeError, ValueError):
        return False



def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def ends_in(model, last_dense: str, at_logits: bool) -> bool:
    """Whether the linearized output is the pre-activation of `last_dense` itself (J_L = I)."""
    layers = [layer for layer in walker.model_layers(model) if walker.classify_layer(layer) != "input"]
    activation = walker.layer_activation(model.get_layer(last_dense))
    if layers[-1].name == last_dense:
        return activation == "linear" or (activation in OUTPUT_ACTIVATIONS and at_logits)
    return (
        at_logits and activation == "linear" and layers[-2].name == last_dense
        and walker.classify_layer(layers[-1]) in OUTPUT_ACTIVATIONS
    )


def layer_sizes(layer) -> tuple[int, int, int]:
    """(P: inputs per neuron incl. bias, u: units, spatial positions of the output)."""
    kernel_shape = tuple(layer.kernel.shape)
    per_neuron = int(np.prod(kernel_shape[:-1])) + (0 if layer.bias is None else 1)
    spatial = int(np.prod(layer.output.shape[1:-1])) if walker.classify_layer(layer) == "conv2d" else 1
    return per_neuron, kernel_shape[-1], spatial


def has_dropout(model) -> bool:
    """Whether dropout can scale the chain multipliers s (else they are rectifier masks, 0 or 1: one byte)."""
    return any(walker.classify_layer(layer) == "dropout" and layer.rate > 0 for layer in walker.model_layers(model))


def layer_geometry(layer) -> dict:
    """What the post-hoc analysis needs to rebuild A(x; V) from a stored layer input."""
    geometry = {"kind": walker.classify_layer(layer), "use_bias": layer.bias is not None}
    if geometry["kind"] == "conv2d":
        geometry.update(kernel_size=list(layer.kernel_size), strides=list(layer.strides),
                        padding=layer.padding, dilation_rate=list(layer.dilation_rate))
    return geometry



@dataclasses.dataclass(frozen=True)
class PlannedRecording:
    """The plan and its costs.

    Attributes:
        plan: The `RecordingPlan`.
        resolved_loss: The loss as linearized (`losses.ResolvedLoss`).
        num_outputs: p_L, the width of the linearized output.
        schedule: Which steps are recorded.
        expected_rounds: Rounds the schedule records in the expected steps (0 if unknown).
        bytes_per_round: Estimated disk use of one recorded round.
        bytes_per_checkpoint: Estimated disk use of one checkpoint of the running sums.
        network_reason: Why the network scale is skipped ("" if recorded).
    """

    plan: "RecordingPlan"
    resolved_loss: ResolvedLoss
    num_outputs: int
    schedule: schedules.Schedule
    expected_rounds: int
    bytes_per_round: float
    bytes_per_checkpoint: float
    network_reason: str


def count_rounds(schedule: schedules.Schedule, total_steps: int | None) -> int:
    """How many of `total_steps` steps the schedule records (1 if the total is unknown)."""
    if total_steps is None:
        return 1
    return sum(1 for step in range(total_steps) if schedule(step))


def choose_neurons(layer, units: int, neurons, seed: int) -> tuple:
    """The unit indices recorded at neuron scale: all (`neurons` None), k fixed random ones, or the given ones."""
    if neurons is None:
        return tuple(range(units))
    if isinstance(neurons, int):
        if neurons >= units:
            return tuple(range(units))
        generator = np.random.default_rng([seed, units, len(layer.name)])
        return tuple(sorted(int(i) for i in generator.choice(units, neurons, replace=False)))
    chosen = tuple(int(i) for i in neurons.get(layer.name, ()))
    bad = [i for i in chosen if not 0 <= i < units]
    if bad:
        raise ValueError(f"Layer '{layer.name}' has {units} neurons. Received: neurons={bad}")
    return chosen


def plan_recording(model, options: RecorderOptions, batch_size: int, total_steps: int | None = None,
                   epoch_steps: int | None = None) -> PlannedRecording:
    """Chooses a route per layer and scale, and estimates what recording them costs.

    Args:
        model: The Keras model (its layers are walked, not run but on one zero input).
        options: The recorder's options.
        batch_size: The training batch size.
        total_steps: The number of training steps expected (None: unknown, counted as one round).
        epoch_steps: Steps per epoch, if known (bounds the table of the first layer's distinct inputs).

    Returns:
        The `PlannedRecording`.

    Raises:
        ValueError: layers or neurons that the model does not have.
        NonConvexLossError: a loss not known to be convex in the outputs.
    """
    probe = np.zeros((1,) + tuple(model.inputs[0].shape[1:]), dtype=model.inputs[0].dtype)
    trace = walker.forward(model, probe)
    loss = options.loss if options.loss is not None else getattr(model, "loss", None)
    resolved = resolve_loss(loss, output_activation=trace.output_activation, convex=options.convex)
    quadratic = isinstance(resolved.convex_loss, MeanSquaredError)
    chain = dense_chain(model)
    weighted = walker.weighted_layers(model)
    if options.layers is not None:
        known = {layer.name for layer in weighted}
        unknown = [name for name in options.layers if name not in known]
        if unknown:
            raise ValueError(f"Model '{model.name}' has no Dense/Conv2D layers {unknown}; it has {sorted(known)}.")
        if options.neurons is not None and not isinstance(options.neurons, int):
            extra = sorted(set(options.neurons) - set(options.layers))
            if extra:
                raise ValueError(f"neurons names layers {extra} that are not in layers={list(options.layers)}.")
    selected = [layer for layer in weighted if options.layers is None or layer.name in options.layers]
    if options.layer_scale_layers is not None:
        outside = sorted(set(options.layer_scale_layers) - {layer.name for layer in selected})
        if outside:
            raise ValueError(f"layer_scale_layers names layers {outside} that are not recorded; the recorded "
                             f"layers are {[layer.name for layer in selected]}.")
    num_outputs = int(trace.outputs.shape[-1] if resolved.at_logits else trace.model_outputs.shape[-1])
    item = np.dtype(options.dtype).itemsize
    output_identity = bool(chain) and ends_in(model, chain[-1], resolved.at_logits)
    schedule = options.schedule or (schedules.every_step() if quadratic else schedules.every_k_steps(10))
    expected_rounds = count_rounds(schedule, total_steps)
    rounds = max(1, expected_rounds)
    plans, per_round, per_checkpoint, costs = [], 0, 0, {}
    training_flops = 6 * batch_size * sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    for layer in selected:
        size, units, spatial = layer_sizes(layer)
        chosen = choose_neurons(layer, units, options.neurons, options.seed) if Scale.NEURON in options.scales else ()
        kind = walker.classify_layer(layer)
        reasons = []
        if quadratic and kind == "dense":
            is_identity_output = output_identity and layer.name == chain[-1]
            if is_identity_output and chosen and isinstance(options.neurons, int):
                # Its neurons share one Gram, so all of them cost little more than k, and
                # the layer scale (derived from all of them) stays exact.
                chosen = tuple(range(units))
            streamable = (output_identity and options.jtj_route == "propagate" and layer.name in chain
                          and not is_identity_output)
            neuron_route = Route.GRAM if chosen else Route.SKIPPED
            neuron_bytes = (1 if is_identity_output else len(chosen)) * size * size * 8
            neuron_flops = batch_size * (1 if is_identity_output else len(chosen)) * size * size
            streamed = Route.CHAIN if streamable else Route.STREAM
            how = "chain factors streamed" if streamable else "streamed"
            if chosen and neuron_bytes > options.gram_budget_bytes:
                neuron_route = streamed
                reasons.append(f"neuron Grams need {human_bytes(neuron_bytes)} > gram budget: {how}")
            elif chosen and neuron_flops > options.max_gram_cost * training_flops:
                neuron_route = streamed
                reasons.append(
                    f"accumulating neuron Grams costs {neuron_flops / training_flops:.0f}× a training "
                    f"step: {how}, summed post hoc"
                )
            layer_bytes = size * size * 8 if is_identity_output else (size * units) ** 2 * 8
            layer_flops = batch_size * (size * units) ** 2
            layer_route = Route.SKIPPED
            if options.records_layer_scale(layer.name):
                if is_identity_output:
                    layer_route = Route.GRAM
                    reasons.append("output layer with J = I: the layer Gram is I ⊗ Σ x̃x̃ᵀ (its neurons' sum)")
                elif streamable and (layer_bytes > options.gram_budget_bytes
                                     or layer_flops > options.max_gram_cost * training_flops):
                    layer_route = Route.CHAIN
                    reasons.append(
                        f"layer Gram of {size * units} parameters costs {layer_flops / training_flops:.0f}× a "
                        "training step: chain factors streamed, Gram or matrix-free solve post hoc"
                    )
                elif layer_bytes <= options.gram_budget_bytes:
                    layer_route = Route.GRAM
                else:
                    reasons.append(
                        f"layer Gram of {size * units} parameters needs {human_bytes(layer_bytes)} > gram "
                        "budget, and the layer is not in a dense chain with a linear output (the only "
                        "factored route)"
                    )
            costs[layer.name] = (neuron_bytes, 0 if is_identity_output else layer_bytes,
                                 batch_size * (size + 4 * units) * item)
        else:
            stored = min(batch_size, options.examples_per_round or batch_size)
            neuron_route = Route.FACTORS if chosen else Route.SKIPPED
            layer_route = Route.FACTORS if options.records_layer_scale(layer.name) else Route.SKIPPED
            jacobian_all = stored * num_outputs * spatial * units * item
            jacobian_chosen = stored * num_outputs * spatial * len(chosen) * item
            input_bytes = stored * int(np.prod(layer.input.shape[1:])) * item
            if layer_route is Route.FACTORS and jacobian_all + input_bytes > options.storage_budget_bytes / rounds:
                layer_route = Route.SKIPPED
                reasons.append(
                    f"layer-scale factors take {human_bytes(jacobian_all + input_bytes)} per round; "
                    "over the storage budget for the expected rounds"
                )
            weight_bytes = sum(int(np.prod(w.shape)) for w in layer.trainable_weights) * item
            if layer_route is Route.FACTORS:
                per_round += jacobian_all + input_bytes + weight_bytes
            elif neuron_route is Route.FACTORS:
                per_round += jacobian_chosen + input_bytes + weight_bytes
        plans.append(LayerPlan(layer.name, kind, chosen, neuron_route, layer_route, tuple(reasons)))
    total_parameters = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    network_route = Route.SKIPPED
    network_reason = ""
    if Scale.NETWORK not in options.scales:
        network_reason = "not requested"
    elif not quadratic:
        network_reason = "network scale for non-quadratic losses is not recorded (its factors are every layer's)"
    elif options.layers is not None:
        network_reason = "not every layer is recorded"
    elif total_parameters > options.max_network_parameters:
        network_reason = (
            f"{total_parameters} parameters > max_network_parameters={options.max_network_parameters} "
            "(the network Gram is parameters²)"
        )
    else:
        network_route = Route.GRAM
        per_checkpoint += total_parameters**2 * 8
    if quadratic:
        per_round += 64  # the rounds stream
    streamed = [plan.name for plan in plans if Route.CHAIN in (plan.layer_route, plan.neuron_route)]
    chain_stream = chain[min(chain.index(name) for name in streamed):] if streamed else ()
    for index, plan in enumerate(plans):
        if plan.name not in chain_stream[:-1]:
            continue
        # Its factors are in the chain stream already: summing its Grams here would only cost time.
        changes = {}
        if plan.layer_route is Route.GRAM:
            changes["layer_route"] = Route.CHAIN
        if plan.neuron_route is Route.GRAM:
            changes["neuron_route"] = Route.CHAIN
        if changes:
            plans[index] = dataclasses.replace(plan, reasons=plan.reasons + (
                "Grams rebuilt post hoc from the chain factors streamed for a lower layer",), **changes)
    for plan in plans:
        if plan.name not in costs:
            continue
        neuron_bytes, layer_bytes, stream_bytes = costs[plan.name]
        per_checkpoint += neuron_bytes * (plan.neuron_route is Route.GRAM) + layer_bytes * (plan.layer_route is Route.GRAM)
        per_round += stream_bytes * (plan.neuron_route is Route.STREAM)
    if chain_stream:
        hidden = [model.get_layer(name) for name in chain_stream[:-1]]
        units = sum(layer_sizes(layer)[1] for layer in hidden)
        mask_bytes = item if has_dropout(model) else 1
        per_example = units * (item + mask_bytes) + layer_sizes(hidden[-1])[1] * item + 32  # z, s, q, scalars
        per_round += batch_size * per_example + 8 * sum(
            int(np.prod(layer.kernel.shape)) for layer in hidden[1:]) + 8 * layer_sizes(hidden[-1])[1] ** 2
        # The table of distinct inputs: one row per example, except that the model's own inputs
        # (the first layer's) repeat every epoch, so at most an epoch's worth of rows.
        table_rows = rounds * batch_size
        if chain_stream[0] == weighted[0].name and epoch_steps:
            table_rows = min(table_rows, epoch_steps * batch_size)
        per_round += table_rows * layer_sizes(hidden[0])[0] * item / rounds
    plan = RecordingPlan(
        quadratic=quadratic,
        at_logits=resolved.at_logits,
        layers=tuple(plans),
        network_route=network_route,
        dense_chain=chain if output_identity and options.jtj_route == "propagate" else (),
        output_identity=output_identity,
        identity_layer=chain[-1] if output_identity else None,
        record_gradients=options.record_gradients,
        chain_stream=chain_stream,
        examples_per_round=options.examples_per_round,
    )
    return PlannedRecording(plan=plan, resolved_loss=resolved, num_outputs=num_outputs, schedule=schedule,
                            expected_rounds=expected_rounds, bytes_per_round=per_round,
                            bytes_per_checkpoint=per_checkpoint, network_reason=network_reason)
