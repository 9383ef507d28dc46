"""What one recorded training round computes, inside the training step (TensorFlow).

`round_tensors` computes, from the captured pass (`recording.capture`), what the
post-hoc Taylor optimum needs (see `keras_taylor.quadratic_terms` for the notation):

- for every round: the real loss ℓ(f_{W^n}(x^n), y^n) (the Keras loss and
  reduction) and the batch size;
- squared error, dense layers: per example the layer input x̃ (with a 1 for the
  bias), the pre-activation z, q = J^T r (r = f − y) and M = J^T J. Along a chain of
  dense layers q and M come from Observation 2 (`recording.chain`) without forming
  J; elsewhere q from one VJP and J from `batch_jacobian`. Routes GRAM reduce these
  to the round's sums in the step; CHAIN ships the chain factors instead;
- route FACTORS (cross-entropy, convolutions): the layer input and J = ∂f/∂z
  restricted to the recorded neurons, plus f, y and the weights.

The quantities are shared between routes (one q serves a layer's neuron and layer
scales), so the step computes them once for the plan rather than once per route.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_taylor import walker
from keras_taylor.recording import chain
from keras_taylor.recording.capture import ForwardCapture, input_features
from keras_taylor.recording.plan import LayerPlan, RecordingPlan
from keras_taylor.schema import Route


def _gather_replicas(values: dict) -> dict:
    """Under tf.distribute, concatenates per-example tensors of all replicas (same on each)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    return {key: context.all_gather(value, axis=0) for key, value in values.items()}


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
        quadratic = [layer.name for layer in walker.weighted_layers(model)]
    if plan.quadratic:
        targets = tf.cast(tf.reshape(y, tf.shape(outputs)), outputs.dtype)
        residual = outputs - targets
        per_example["residual_sq"] = tf.reduce_sum(residual**2, axis=1)
        if plan.network_route is Route.GRAM:
            per_example["residual"] = residual
        if plan.chain_stream:
            chain.chain_factors(model, trace, plan.chain_stream, residual, per_example, values)
        if quadratic:
            identity_output = plan.identity_layer
            on_chain = (bool(plan.dense_chain) and plan.network_route is not Route.GRAM
                        and set(quadratic) <= set(plan.dense_chain))
            if on_chain:  # Observation 2: q and diag(JᵀJ) by explicit products, no tape
                q_values, diagonals = chain.chain_backward(model, trace, plan.dense_chain, residual, quadratic)
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
                jtj = chain.chain_jtj(model, trace, plan.dense_chain, below_output)
            for name, q in zip(quadratic, q_values):
                per_example[f"{name}/inputs"] = input_features(model, trace, name)
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

    For each recorded neuron α (see `keras_taylor.quadratic_terms`):
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
        identity = name == plan.identity_layer
        curvature = tf.ones_like(z) if identity else tf.gather(_jtj_diagonal(values, name), neurons, axis=1)
        (values[f"{name}/neuron_gram"], values[f"{name}/neuron_linear"],
         values[f"{name}/neuron_constant"]) = neuron_gram_sums(inputs, z, q, curvature, values["residual_sq"],
                                                               shared_gram=identity)
        layer_gram = layer.layer_route is Route.GRAM and name != plan.identity_layer
        if not layer_gram and plan.network_route is not Route.GRAM:
            for key in ("inputs", "z", "q", "jtj", "jtj_diagonal", "jacobian"):
                values.pop(f"{name}/{key}", None)


def neuron_gram_sums(inputs, z, q, curvature, residual_sq, shared_gram: bool = False):
    """One round's unweighted (H, g, s) of K neurons, summed over the batch in the step.

    The TensorFlow version of `quadratic_terms.neuron_terms` (tested against it): Σ_b c x̃x̃ᵀ,
    Σ_b ℓ x̃ and Σ_b s with `quadratic_terms.neuron_coefficients`' ℓ and s.

    Args:
        inputs: x̃ `[B, P]`.
        z, q, curvature: `[B, K]`.
        residual_sq: ‖r‖² `[B]`.
        shared_gram: c = 1 for every neuron (J = I): one Gram Σ_b x̃x̃ᵀ `[1, P, P]` serves them all.

    Returns:
        `(gram [K or 1, P, P], linear [K, P], constant [K])`.
    """
    if shared_gram:
        gram = tf.matmul(inputs, inputs, transpose_a=True)[None]
    else:
        size = tf.shape(inputs)[1]
        outer = tf.reshape(inputs[:, :, None] * inputs[:, None, :], [tf.shape(inputs)[0], -1])
        gram = tf.reshape(tf.matmul(curvature, outer, transpose_a=True), [tf.shape(z)[1], size, size])
    linear = tf.matmul(q - curvature * z, inputs, transpose_a=True)
    constant = tf.reduce_sum(residual_sq[:, None] - 2 * z * q + curvature * z**2, axis=0)
    return gram, linear, constant


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
