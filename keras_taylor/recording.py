"""What one recorded training round computes, inside the training step (TensorFlow).

`ForwardCapture` routes the model's own forward pass of a training step
through `keras_taylor.network.forward` on a persistent tape, so the recorder
sees the exact minibatch, pre-update weights W^n and dropout masks that the
optimizer's gradient came from (the ops are the same as Keras's, so training
is unchanged bit for bit).

`round_tensors` then computes, from that one pass, what the post-hoc Taylor
optimum needs (see `keras_taylor.taylor` for the notation):

- for every round: the real loss ℓ(f_{W^n}(x^n), y^n) (the Keras loss and
  reduction) and the batch size;
- squared error, dense layers: per example the layer input x̃ (with a 1 for the
  bias), the pre-activation z, q = J^T r (r = f − y, from one extra VJP) and
  M = J^T J. For chains of dense layers M is propagated backward through the
  masked weights (Observation 2: J_l = J_{l+1} W_{l+1}^T diag(s_l), with s_l
  the rectifier-times-dropout multiplier), without forming J; elsewhere J comes
  from `batch_jacobian`;
- factored routes (cross-entropy, convolutions): the layer input and
  J = ∂f/∂z restricted to the recorded neurons, plus f, y and the weights.
"""

import contextlib
import dataclasses
import threading

import keras
import numpy as np
import tensorflow as tf

from keras_taylor import network
from keras_taylor.schema import Route


class ForwardCapture:
    """Runs `model(x)` through the walker on a persistent tape while capturing.

    `install` replaces the model's `call` for the duration of training; the
    replacement defers to the original except inside `capturing()`, which is
    per thread, so that every replica of a `tf.distribute` strategy captures its
    own pass. The walker executes the same ops as Keras, so the captured pass is
    the step's pass.
    """

    def __init__(self, model: keras.Model):
        self.model = model
        self._local = threading.local()
        self._installed = False

    def install(self) -> None:
        if self._installed:
            return
        original = self.model.call

        def call(inputs, training=None, mask=None, **kwargs):
            if not getattr(self._local, "active", False):
                return original(inputs, training=training, mask=mask, **kwargs)
            with tf.GradientTape(persistent=True) as tape:
                trace = network.forward(self.model, inputs, training=bool(training))
            self._local.tape, self._local.trace, self._local.inputs = tape, trace, inputs
            return trace.model_outputs

        self.model.call = call
        self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            del self.model.call
            self._installed = False

    @contextlib.contextmanager
    def capturing(self):
        """Within the block, this thread's model calls are captured (the last one is kept)."""
        self._local.active, self._local.trace, self._local.tape = True, None, None
        try:
            yield self
        finally:
            self._local.active = False

    @property
    def trace(self):
        return getattr(self._local, "trace", None)

    @property
    def tape(self):
        return getattr(self._local, "tape", None)

    def subset(self, count: int):
        """The captured pass redone on its first `count` examples: `(trace, persistent tape)`.

        Same weights W^n (the captured values) and dropout masks, so its values are the
        captured pass's rows; Jacobians of a few examples then cost a few examples'
        backward passes instead of the whole batch's.
        """
        trace = self.trace
        weights = dict(trace.weight_values)
        masks = {name: mask[:count] for name, mask in trace.dropout_masks.items()}
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([value for pair in weights.values() for value in pair if value is not None])
            subset = network.forward(self.model, self._local.inputs[:count], training=True, dropout_masks=masks,
                                     weights=weights)
        return subset, tape


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
    layers = network.model_layers(model)
    names = []
    previous = None
    for layer in layers:
        kind = network.classify_layer(layer)
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


def _flat(tensor):
    return tf.reshape(tensor, [tf.shape(tensor)[0], -1])


def _with_ones(inputs):
    return tf.concat([inputs, tf.ones_like(inputs[:, :1])], axis=1)


def _gather_replicas(values: dict) -> dict:
    """Under tf.distribute, concatenates per-example tensors of all replicas (same on each)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    return {key: context.all_gather(value, axis=0) for key, value in values.items()}


def _chain_multipliers(model, capture: ForwardCapture, chain: tuple) -> dict:
    """s_l = ∂x_{l+1}/∂z_l along a dense chain: the product of the rectifier masks and
    dropout keep masks between dense layer l and dense layer l + 1."""
    trace = capture.trace
    layers = [layer for layer in network.model_layers(model) if network.classify_layer(layer) != "input"]
    positions = {layer.name: index for index, layer in enumerate(layers)}
    multipliers = {}
    for name, next_name in zip(chain[:-1], chain[1:]):
        dtype = trace.preactivations[name].dtype
        multiplier = tf.ones_like(trace.preactivations[name])
        for layer in layers[positions[name]: positions[next_name]]:
            if layer.name in trace.masks:
                multiplier = multiplier * tf.cast(trace.masks[layer.name], dtype)
            if layer.name in trace.dropout_masks:
                multiplier = multiplier * tf.cast(trace.dropout_masks[layer.name], dtype)
        multipliers[name] = multiplier
    return multipliers


def _chain_jtj(model, plan: RecordingPlan, capture: ForwardCapture, wanted: set) -> dict:
    """M_l = J_l^T J_l `[B, u_l, u_l]` for the wanted dense-chain layers below the output.

    Starts from J_L = I at the output layer (linear output or logits) and applies
    M_l = diag(s_l) W_{l+1} M_{l+1} W_{l+1}^T diag(s_l) downward; J is never formed.
    """
    chain = plan.dense_chain
    lowest = min(chain.index(name) for name in wanted)
    multipliers = _chain_multipliers(model, capture, chain[lowest:])
    jtj = {}
    current = None
    for index in range(len(chain) - 2, lowest - 1, -1):
        name = chain[index]
        kernel = capture.trace.weight_values[chain[index + 1]][0]
        if current is None:
            projected = tf.matmul(kernel, kernel, transpose_b=True)[None]
        else:
            projected = tf.einsum("ij,bjk,lk->bil", kernel, current, kernel)
        s = multipliers[name]
        current = projected * s[:, :, None] * s[:, None, :]
        if name in wanted:
            jtj[name] = current
    return jtj


def _chain_factors(model, plan: RecordingPlan, capture: ForwardCapture, residual, per_example: dict,
                   values: dict) -> None:
    """The factors that rebuild the layer Grams of `plan.chain_stream` post hoc.

    Per example: the lowest chain layer's input x̃ ("chain/inputs"), z_k and the
    multiplier s_k of every hidden chain layer ("chain/<k>/z", "chain/<k>/s") and
    q of the top hidden layer, s ⊙ (W_L r) ("chain/q"). Per round: the kernels of
    the hidden chain layers above the lowest ("chain/<k>/kernel") and K = W_L W_Lᵀ
    ("chain/output_gram"). Every M_k = J_kᵀJ_k and q_k follow from these
    (Observation 2); see `keras_taylor.analysis`.
    """
    chain, trace = plan.chain_stream, capture.trace
    multipliers = _chain_multipliers(model, capture, chain)
    output_kernel = trace.weight_values[chain[-1]][0]
    per_example["chain/inputs"] = _input_features(model, trace, chain[0])
    for name in chain[:-1]:
        per_example[f"chain/{name}/z"] = trace.preactivations[name]
        per_example[f"chain/{name}/s"] = multipliers[name]
    per_example["chain/q"] = multipliers[chain[-2]] * tf.matmul(residual, output_kernel, transpose_b=True)
    for name in chain[1:-1]:
        values[f"chain/{name}/kernel"] = trace.weight_values[name][0]
    values["chain/output_gram"] = tf.matmul(output_kernel, output_kernel, transpose_b=True)


def _chain_backward(model, plan: RecordingPlan, capture: ForwardCapture, residual, wanted: list):
    """q = Jᵀr and diag(JᵀJ) of the wanted dense-chain layers, by explicit products.

    Along the chain (Observation 2) q_k = s_k ⊙ (W_{k+1} q_{k+1}) from q_L = r, and
    M_k = A_kᵀ K A_k with K = W_L W_Lᵀ and A_k = S_{L−1} W_{L−1}ᵀ ⋯ W_{k+1}ᵀ S_k
    `[B, u_{L−1}, u_k]`, carried upward by one matrix product per layer, so
    diag(M_k) = Σ_i A_k ⊙ (K A_k) needs neither J nor the u_k × u_k blocks of M_k.

    Returns:
        `(q per wanted layer, in order; {hidden layer: diag(M) [B, u]})`.
    """
    chain, trace = plan.dense_chain, capture.trace
    lowest = min(chain.index(name) for name in wanted)
    multipliers = _chain_multipliers(model, capture, chain[lowest:])
    q_values, diagonals = {chain[-1]: residual}, {}
    output_gram = None  # K, formed only if a hidden layer is wanted
    q, carried, top = residual, None, None  # carried: A_{k+1}
    for index in range(len(chain) - 2, lowest - 1, -1):
        name, kernel_above = chain[index], trace.weight_values[chain[index + 1]][0]
        s = multipliers[name]
        q = s * tf.matmul(q, kernel_above, transpose_b=True)
        q_values[name] = q
        if top is None:  # A_{L−1} = S_{L−1}: diag(M) = s² ⊙ diag(K)
            output_gram = tf.matmul(kernel_above, kernel_above, transpose_b=True)
            top = s
            diagonals[name] = s**2 * tf.linalg.diag_part(output_gram)[None]
            continue
        if carried is None:
            carried = top[:, :, None] * tf.transpose(kernel_above)[None] * s[:, None, :]
        else:
            carried = tf.einsum("bij,kj->bik", carried, kernel_above) * s[:, None, :]
        diagonals[name] = tf.reduce_sum(carried * tf.einsum("ij,bjk->bik", output_gram, carried), axis=1)
    return [q_values[name] for name in wanted], diagonals


def _input_features(model, trace, name):
    """x̃: the layer input flattened, with a trailing 1 for the bias."""
    inputs = _flat(trace.layer_inputs[name])
    return inputs if model.get_layer(name).bias is None else _with_ones(inputs)


def round_tensors(model: keras.Model, plan: RecordingPlan, capture: ForwardCapture, y, keras_loss) -> dict:
    """The per-round quantities of the captured step, as a flat dict of tensors.

    Keys: "loss" (scalar, the Keras loss and reduction), "batch_size"; for squared
    error "residual_sq" `[B]` and per quadratic layer `name`: "name/inputs" (x̃),
    "name/z", "name/q" (J^T r), and "name/jtj" (J^T J, dense chain) or
    "name/jacobian" (J, elsewhere; none for an identity output layer); for factored
    routes "outputs", "targets" and per layer "name/inputs" (raw layer input),
    "name/z" and "name/jacobian", restricted to the recorded neurons unless the
    layer scale is recorded. Per-example tensors are gathered across replicas.
    """
    trace, tape = capture.trace, capture.tape
    outputs = trace.outputs if plan.at_logits else trace.model_outputs
    values = {}
    if not plan.record_gradients:
        loss = keras_loss(y, trace.model_outputs)
    else:
        with tf.GradientTape() as loss_tape:
            loss_tape.watch(trace.model_outputs)
            loss = keras_loss(y, trace.model_outputs)
        gradients = tape.gradient(
            trace.model_outputs, model.trainable_weights,
            output_gradients=loss_tape.gradient(loss, trace.model_outputs),
        )
        values.update({f"gradient/{index}": gradient for index, gradient in enumerate(gradients)})
    per_example = {}
    quadratic = [layer.name for layer in plan.layers
                 if layer.neuron_route in (Route.GRAM, Route.STREAM) or layer.layer_route is Route.GRAM]
    factored = [layer for layer in plan.layers if Route.FACTORS in (layer.neuron_route, layer.layer_route)]
    if plan.network_route is Route.GRAM:
        quadratic = [layer.name for layer in network.weighted_layers(model)]
    if plan.quadratic:
        targets = tf.cast(tf.reshape(y, tf.shape(outputs)), outputs.dtype)
        residual = outputs - targets
        per_example["residual_sq"] = tf.reduce_sum(residual**2, axis=1)
        if plan.network_route is Route.GRAM:
            per_example["residual"] = residual
        if plan.chain_stream:
            _chain_factors(model, plan, capture, residual, per_example, values)
        if quadratic:
            identity_output = plan.identity_layer
            on_chain = (bool(plan.dense_chain) and plan.network_route is not Route.GRAM
                        and set(quadratic) <= set(plan.dense_chain))
            if on_chain:  # Observation 2: q and diag(JᵀJ) by explicit products, no tape
                q_values, diagonals = _chain_backward(model, plan, capture, residual, quadratic)
            else:
                q_values = tape.gradient(
                    outputs, [trace.preactivations[name] for name in quadratic], output_gradients=residual,
                    unconnected_gradients=tf.UnconnectedGradients.ZERO,
                )
                diagonals = {}
            full_jtj = {layer.name for layer in plan.layers if layer.layer_route is Route.GRAM}
            below_output = {name for name in quadratic if name in plan.dense_chain and name != identity_output
                            and (name in full_jtj or not on_chain)}
            jtj = {}
            if plan.dense_chain and plan.output_identity and below_output and plan.network_route is not Route.GRAM:
                jtj = _chain_jtj(model, plan, capture, below_output)
            for name, q in zip(quadratic, q_values):
                per_example[f"{name}/inputs"] = _input_features(model, trace, name)
                per_example[f"{name}/z"] = trace.preactivations[name]
                per_example[f"{name}/q"] = q
                if name in diagonals:
                    per_example[f"{name}/jtj_diagonal"] = diagonals[name]
                if name in jtj:
                    per_example[f"{name}/jtj"] = jtj[name]
                elif name not in diagonals and (name != identity_output or plan.network_route is Route.GRAM):
                    per_example[f"{name}/jacobian"] = tape.batch_jacobian(
                        outputs, trace.preactivations[name],
                        unconnected_gradients=tf.UnconnectedGradients.ZERO,
                    )
    if factored:
        subset, subset_tape, targets = trace, tape, tf.convert_to_tensor(y)
        if plan.examples_per_round is not None:
            subset, subset_tape = capture.subset(plan.examples_per_round)
            targets = targets[:plan.examples_per_round]
        subset_outputs = subset.outputs if plan.at_logits else subset.model_outputs
        per_example["outputs"] = subset_outputs
        per_example["targets"] = targets
        for layer in factored:
            jacobian = subset_tape.batch_jacobian(
                subset_outputs, subset.preactivations[layer.name],
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )
            preactivation = subset.preactivations[layer.name]
            if layer.layer_route is not Route.FACTORS:
                jacobian = tf.gather(jacobian, list(layer.neurons), axis=-1)
                preactivation = tf.gather(preactivation, list(layer.neurons), axis=-1)
            per_example[f"{layer.name}/jacobian"] = jacobian
            per_example[f"{layer.name}/z"] = preactivation
            per_example[f"{layer.name}/inputs"] = subset.layer_inputs[layer.name]
            kernel, bias = trace.weight_values[layer.name]  # W^n, read before the update
            values[f"{layer.name}/kernel"] = kernel
            if bias is not None:
                values[f"{layer.name}/bias"] = bias
    values.update(_gather_replicas(per_example))
    if plan.quadratic:
        _neuron_gram_terms(plan, values)
    batch_size = tf.shape(outputs)[0]
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        # Keras losses divide by the number of replicas inside a replica context (so
        # that summed gradients average); undo that, then take the example-weighted
        # mean of the replicas' losses.
        loss = loss * context.num_replicas_in_sync
        local = tf.cast(batch_size, loss.dtype)
        batch_size = context.all_reduce("sum", batch_size)
        loss = context.all_reduce("sum", loss * local) / tf.cast(batch_size, loss.dtype)
    values["loss"] = loss
    values["batch_size"] = batch_size
    return values


def _neuron_gram_terms(plan: RecordingPlan, values: dict) -> None:
    """Replaces per-example data of GRAM neuron routes by the round's unweighted sums.

    For each recorded neuron α (see `keras_taylor.statistics`):
    Σ_b M_αα x̃x̃ᵀ, Σ_b (q_α − M_αα z_α) x̃ and Σ_b (‖r‖² − 2 z_α q_α + M_αα z_α²);
    with J = I (the output layer) one Gram Σ_b x̃x̃ᵀ serves every neuron. Computed in
    the step, so only these sums cross to the host.
    """
    for layer in plan.layers:
        if layer.neuron_route is Route.STREAM:
            _stream_curvature(plan, layer, values)
        if layer.neuron_route is not Route.GRAM:
            continue
        name, neurons = layer.name, list(layer.neurons)
        inputs = values[f"{name}/inputs"]
        z = tf.gather(values[f"{name}/z"], neurons, axis=1)
        q = tf.gather(values[f"{name}/q"], neurons, axis=1)
        if name == plan.identity_layer:
            curvature = tf.ones_like(z)
            gram = tf.matmul(inputs, inputs, transpose_a=True)[None]
        else:
            curvature = tf.gather(_jtj_diagonal(values, name), neurons, axis=1)
            size = tf.shape(inputs)[1]
            outer = tf.reshape(inputs[:, :, None] * inputs[:, None, :], [tf.shape(inputs)[0], -1])
            gram = tf.reshape(tf.matmul(curvature, outer, transpose_a=True), [len(neurons), size, size])
        values[f"{name}/neuron_gram"] = gram
        values[f"{name}/neuron_linear"] = tf.matmul(q - curvature * z, inputs, transpose_a=True)
        values[f"{name}/neuron_constant"] = tf.reduce_sum(
            values["residual_sq"][:, None] - 2 * z * q + curvature * z**2, axis=0
        )
        layer_gram = layer.layer_route is Route.GRAM and name != plan.identity_layer
        if not layer_gram and plan.network_route is not Route.GRAM:
            for key in ("inputs", "z", "q", "jtj", "jtj_diagonal", "jacobian"):
                values.pop(f"{name}/{key}", None)


def _jtj_diagonal(values: dict, name: str):
    """diag(JᵀJ) `[B, u]` from the chain's explicit products, the propagated JᵀJ or J."""
    if f"{name}/jtj_diagonal" in values:
        return values[f"{name}/jtj_diagonal"]
    if f"{name}/jtj" in values:
        return tf.linalg.diag_part(values[f"{name}/jtj"])
    return tf.reduce_sum(values[f"{name}/jacobian"] ** 2, axis=1)


def _stream_curvature(plan: RecordingPlan, layer: LayerPlan, values: dict) -> None:
    """For streamed neuron factors, ships diag(JᵀJ) of the recorded neurons, not JᵀJ."""
    name = layer.name
    if name == plan.identity_layer:
        diagonal = tf.ones_like(values[f"{name}/z"])
    else:
        diagonal = _jtj_diagonal(values, name)
    values[f"{name}/curvature"] = diagonal
    values.pop(f"{name}/jtj_diagonal", None)
    if layer.layer_route is not Route.GRAM and plan.network_route is not Route.GRAM:
        values.pop(f"{name}/jtj", None)
        values.pop(f"{name}/jacobian", None)


def numpy_round(values: dict) -> dict:
    """Converts the round's tensors to NumPy."""
    return {key: np.asarray(value) for key, value in values.items()}
