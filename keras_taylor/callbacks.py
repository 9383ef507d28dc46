"""Keras callbacks that record what the regret and exploration analyses need.

`TaylorRecorder` hooks the model's training step so that every recorded round
uses exactly the minibatch, pre-update weights W^n and dropout masks of the
optimizer's own step (`keras_taylor.recording`), and writes to a run directory
(`keras_taylor.storage`): the loss of every recorded round, and per layer the
data for the Taylor optimum at neuron, layer and network scale along the route
the plan chose (squared error: sufficient statistics accumulated in memory and
checkpointed; otherwise factored per-example Jacobian data).

`ActivationRecorder` records the activation configuration of every rectifier
on a fixed probe set, bit-packed.

Both work from `model.fit(callbacks=[...])` and from a custom training loop
(`attach`, `step`, `close`; see their docstrings).
"""

import contextlib
import hashlib
import dataclasses
import importlib.metadata
import importlib.util
import math
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_taylor import masks as kt_masks
from keras_taylor import network, recording, schedules, statistics, storage
from keras_taylor.losses import OUTPUT_ACTIVATIONS, MeanSquaredError, resolve_loss

_ROUND_KEY = "_keras_taylor_round"
_GIB = 2**30


def _versions() -> dict:
    versions = {"python": sys.version.split()[0], "tensorflow": tf.__version__, "keras": keras.__version__,
                "numpy": np.__version__}
    try:
        versions["keras_taylor"] = importlib.metadata.version("keras_taylor")
    except importlib.metadata.PackageNotFoundError:
        versions["keras_taylor"] = "unknown"
    return versions


def _optimizer_description(model) -> dict:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return {}
    return {"class": type(optimizer).__name__, "config": keras.saving.serialize_keras_object(optimizer)["config"]}


def _human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def _ends_in(model, last_dense: str, at_logits: bool) -> bool:
    """Whether the linearized output is the pre-activation of `last_dense` itself (J_L = I)."""
    layers = [layer for layer in network.model_layers(model) if network.classify_layer(layer) != "input"]
    activation = network.layer_activation(model.get_layer(last_dense))
    if layers[-1].name == last_dense:
        return activation == "linear" or (activation in OUTPUT_ACTIVATIONS and at_logits)
    return (
        at_logits and activation == "linear" and layers[-2].name == last_dense
        and network.classify_layer(layers[-1]) in OUTPUT_ACTIVATIONS
    )


def _layer_sizes(layer) -> tuple[int, int, int]:
    """(P: inputs per neuron incl. bias, u: units, spatial positions of the output)."""
    kernel_shape = tuple(layer.kernel.shape)
    per_neuron = int(np.prod(kernel_shape[:-1])) + (0 if layer.bias is None else 1)
    spatial = int(np.prod(layer.output.shape[1:-1])) if network.classify_layer(layer) == "conv2d" else 1
    return per_neuron, kernel_shape[-1], spatial


def _has_dropout(model) -> bool:
    """Whether dropout can scale the chain multipliers s (else they are rectifier masks, 0 or 1: one byte)."""
    return any(network.classify_layer(layer) == "dropout" and layer.rate > 0 for layer in network.model_layers(model))


def _layer_geometry(layer) -> dict:
    """What the post-hoc analysis needs to rebuild A(x; V) from a stored layer input."""
    geometry = {"kind": network.classify_layer(layer), "use_bias": layer.bias is not None}
    if geometry["kind"] == "conv2d":
        geometry.update(kernel_size=list(layer.kernel_size), strides=list(layer.strides),
                        padding=layer.padding, dilation_rate=list(layer.dilation_rate))
    return geometry


class TaylorRecorder(keras.callbacks.Callback):
    """Records the per-round loss and the Taylor-optimum data of training.

    Args:
        logdir: Run directory to create (or resume / overwrite, see `mode`).
        layers: Layers (names) to record; default every layer with weights.
        neurons: Neurons for the neuron scale: None for all, an int k for k fixed
            random units per layer (the paper uses 50; a squared-error output layer with
            J = I records all its units, which share one Gram), or {layer: [indices]}.
        schedule: Which rounds to record (`keras_taylor.schedules`); default every
            step for squared error, every 10th step otherwise. Regret is computed
            over the recorded rounds.
        checkpoints: When to write the running sufficient statistics (squared error);
            default `schedules.log_spaced(10)`, and always at the end.
        loss: The loss to linearize; default the model's compiled loss.
        convex: Declare an unknown loss convex in the outputs.
        mode: "new", "resume" or "overwrite" an existing run directory.
        storage_budget_bytes: Refuse at `on_train_begin` if the estimated disk use
            is larger.
        gram_budget_bytes: Largest in-memory sufficient statistic per layer and
            scale; larger ones use the streamed route.
        max_gram_cost: Accumulate a layer's neuron Grams during training only if that
            costs at most this many training steps' worth of multiply-adds; else stream.
        max_network_parameters: Record the network scale only up to this many
            parameters (its Gram is parameters²).
        dtype: Precision of the streamed per-example data ("float32" or "float16").
        seed: Seed for choosing sampled neurons.
        total_steps: Expected number of steps (custom loops; `fit` provides it).
        record_gradients: Also record each round's loss gradient (checks, tests).
        scales: Which of "network", "layer", "neuron" to record.
        jtj_route: "propagate" computes JᵀJ of dense chains backward through the masked
            weights (Observation 2); "batch_jacobian" forms J per output component
            (the naive route, kept for comparison).
        data_description: What the training data is (name, split, size...), stored
            in the manifest.
        tensorboard_dir: If given, the loss of every recorded round is also written
            there as a TensorBoard scalar ("taylor/round_loss", by global step).
        batch_size: The training batch size, for the storage estimate (Keras does not
            tell callbacks); default 32, Keras's own default.
        examples_per_round: For the factored (cross-entropy) routes, store the Taylor data
            of only the first k examples of each recorded minibatch (the Jacobians of a
            convolutional layer are large); the analysis then measures the loss incurred
            on the same k examples. None stores every example.
        verbose: Print the plan and storage estimate at the start.
    """

    def __init__(
        self,
        logdir,
        layers=None,
        neurons=None,
        schedule: schedules.Schedule | None = None,
        *,
        checkpoints: schedules.Schedule | None = None,
        loss=None,
        convex: bool = False,
        mode: str = "new",
        storage_budget_bytes: int = 4 * _GIB,
        gram_budget_bytes: int = 256 * 2**20,
        max_network_parameters: int = 3000,
        max_gram_cost: float = 1.0,
        dtype: str = "float32",
        seed: int = 0,
        total_steps: int | None = None,
        record_gradients: bool = False,
        batch_size: int | None = None,
        scales=("network", "layer", "neuron"),
        jtj_route: str = "propagate",
        data_description: dict | None = None,
        tensorboard_dir=None,
        examples_per_round: int | None = None,
        verbose: int = 1,
    ):
        super().__init__()
        if examples_per_round is not None and examples_per_round < 1:
            raise ValueError(f"examples_per_round must be positive. Received: examples_per_round={examples_per_round}")
        self.examples_per_round = examples_per_round
        if dtype not in ("float16", "float32", "float64"):
            raise ValueError(f"dtype must be float16, float32 or float64. Received: dtype={dtype!r}")
        self.logdir = logdir
        self.layer_names = None if layers is None else [getattr(l, "name", l) for l in layers]
        self.neurons = neurons
        self.schedule = schedule
        self.checkpoints = checkpoints or schedules.log_spaced(10)
        self.loss = loss
        self.convex = convex
        self.mode = mode
        self.storage_budget_bytes = storage_budget_bytes
        self.gram_budget_bytes = gram_budget_bytes
        self.max_network_parameters = max_network_parameters
        self.max_gram_cost = max_gram_cost
        self.dtype = dtype
        self.seed = seed
        self.total_steps = total_steps
        self.record_gradients = record_gradients
        self.batch_size = batch_size
        unknown = set(scales) - {"network", "layer", "neuron"}
        if unknown:
            raise ValueError(f"scales must be among network, layer, neuron. Received: {sorted(unknown)}")
        self.scales = tuple(scales)
        if jtj_route not in ("propagate", "batch_jacobian"):
            raise ValueError(f"jtj_route must be 'propagate' or 'batch_jacobian'. Received: {jtj_route!r}")
        self.jtj_route = jtj_route
        self.data_description = dict(data_description or {})
        self.tensorboard_dir = tensorboard_dir
        if tensorboard_dir is not None and importlib.util.find_spec("tensorboard") is None:
            raise ValueError(
                "tensorboard_dir needs TensorBoard, which is not installed: "
                "pip install 'keras_taylor[tensorboard]'."
            )
        self._summary_writer = None
        self.verbose = verbose
        self._resolved_schedule = schedule
        self._last_checkpoint = None
        self.plan = None
        self.writer = None
        self._sums = {}
        self._step = 0
        self._rounds = 0
        self._epoch = 0
        self._nonfinite = []
        self._plain_function = None

    # ----------------------------------------------------------------- planning

    def _choose_neurons(self, layer, units) -> tuple:
        if self.neurons is None:
            return tuple(range(units))
        if isinstance(self.neurons, int):
            if self.neurons >= units:
                return tuple(range(units))
            generator = np.random.default_rng([self.seed, units, len(layer.name)])
            return tuple(sorted(int(i) for i in generator.choice(units, self.neurons, replace=False)))
        chosen = tuple(int(i) for i in self.neurons.get(layer.name, ()))
        bad = [i for i in chosen if not 0 <= i < units]
        if bad:
            raise ValueError(f"Layer '{layer.name}' has {units} neurons. Received: neurons={bad}")
        return chosen

    def _build_plan(self, model, batch_size: int):
        """Chooses a route per layer and scale; returns (plan, per-round bytes, checkpoint bytes, notes)."""
        probe = np.zeros((1,) + tuple(model.inputs[0].shape[1:]), dtype=model.inputs[0].dtype)
        trace = network.forward(model, probe)
        loss = self.loss if self.loss is not None else getattr(model, "loss", None)
        resolved = resolve_loss(loss, output_activation=trace.output_activation, convex=self.convex)
        quadratic = isinstance(resolved.convex_loss, MeanSquaredError)
        chain = recording.dense_chain(model)
        weighted = network.weighted_layers(model)
        if self.layer_names is not None:
            known = {layer.name for layer in weighted}
            unknown = [name for name in self.layer_names if name not in known]
            if unknown:
                raise ValueError(f"Model '{model.name}' has no Dense/Conv2D layers {unknown}; it has {sorted(known)}.")
            if self.neurons is not None and not isinstance(self.neurons, int):
                extra = sorted(set(self.neurons) - set(self.layer_names))
                if extra:
                    raise ValueError(f"neurons names layers {extra} that are not in layers={self.layer_names}.")
        selected = [layer for layer in weighted if self.layer_names is None or layer.name in self.layer_names]
        num_outputs = int(trace.outputs.shape[-1] if resolved.at_logits else trace.model_outputs.shape[-1])
        item = np.dtype(self.dtype).itemsize
        output_identity = bool(chain) and _ends_in(model, chain[-1], resolved.at_logits)
        self._resolved_schedule = self.schedule or (
            schedules.every_step() if quadratic else schedules.every_k_steps(10)
        )
        rounds = max(1, self._expected_rounds())
        plans, per_round, per_checkpoint, costs = [], 0, 0, {}
        training_flops = 6 * batch_size * sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        for layer in selected:
            size, units, spatial = _layer_sizes(layer)
            chosen = self._choose_neurons(layer, units) if "neuron" in self.scales else ()
            kind = network.classify_layer(layer)
            reasons = []
            if quadratic and kind == "dense":
                is_identity_output = output_identity and layer.name == chain[-1]
                if is_identity_output and chosen and isinstance(self.neurons, int):
                    # Its neurons share one Gram, so all of them cost little more than k, and
                    # the layer scale (derived from all of them) stays exact.
                    chosen = tuple(range(units))
                streamable = (output_identity and self.jtj_route == "propagate" and layer.name in chain
                              and not is_identity_output)
                neuron_route = "gram" if chosen else "skipped"
                neuron_bytes = (1 if is_identity_output else len(chosen)) * size * size * 8
                neuron_flops = batch_size * (1 if is_identity_output else len(chosen)) * size * size
                streamed = "chain" if streamable else "stream"
                how = "chain factors streamed" if streamable else "streamed"
                if chosen and neuron_bytes > self.gram_budget_bytes:
                    neuron_route = streamed
                    reasons.append(f"neuron Grams need {_human_bytes(neuron_bytes)} > gram budget: {how}")
                elif chosen and neuron_flops > self.max_gram_cost * training_flops:
                    neuron_route = streamed
                    reasons.append(
                        f"accumulating neuron Grams costs {neuron_flops / training_flops:.0f}× a training "
                        f"step: {how}, summed post hoc"
                    )
                layer_bytes = size * size * 8 if is_identity_output else (size * units) ** 2 * 8
                layer_flops = batch_size * (size * units) ** 2
                layer_route = "skipped"
                if "layer" in self.scales:
                    if is_identity_output:
                        layer_route = "gram"
                        reasons.append("output layer with J = I: the layer Gram is I ⊗ Σ x̃x̃ᵀ (its neurons' sum)")
                    elif streamable and (layer_bytes > self.gram_budget_bytes
                                         or layer_flops > self.max_gram_cost * training_flops):
                        layer_route = "stream"
                        reasons.append(
                            f"layer Gram of {size * units} parameters costs {layer_flops / training_flops:.0f}× a "
                            "training step: chain factors streamed, Gram or matrix-free solve post hoc"
                        )
                    elif layer_bytes <= self.gram_budget_bytes:
                        layer_route = "gram"
                    else:
                        reasons.append(
                            f"layer Gram of {size * units} parameters needs {_human_bytes(layer_bytes)} > gram "
                            "budget, and the layer is not in a dense chain with a linear output (the only "
                            "factored route)"
                        )
                costs[layer.name] = (neuron_bytes, 0 if is_identity_output else layer_bytes,
                                     batch_size * (size + 4 * units) * item)
            else:
                stored = min(batch_size, self.examples_per_round or batch_size)
                neuron_route = "factors" if chosen else "skipped"
                layer_route = "factors" if "layer" in self.scales else "skipped"
                jacobian_all = stored * num_outputs * spatial * units * item
                jacobian_chosen = stored * num_outputs * spatial * len(chosen) * item
                input_bytes = stored * int(np.prod(layer.input.shape[1:])) * item
                if layer_route == "factors" and jacobian_all + input_bytes > self.storage_budget_bytes / rounds:
                    layer_route = "skipped"
                    reasons.append(
                        f"layer-scale factors take {_human_bytes(jacobian_all + input_bytes)} per round; "
                        "over the storage budget for the expected rounds"
                    )
                weight_bytes = sum(int(np.prod(w.shape)) for w in layer.trainable_weights) * item
                if layer_route == "factors":
                    per_round += jacobian_all + input_bytes + weight_bytes
                elif neuron_route == "factors":
                    per_round += jacobian_chosen + input_bytes + weight_bytes
            plans.append(recording.LayerPlan(layer.name, kind, chosen, neuron_route, layer_route, tuple(reasons)))
        total_parameters = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        network_route = "skipped"
        network_reason = ""
        if "network" not in self.scales:
            network_reason = "not requested"
        elif not quadratic:
            network_reason = "network scale for non-quadratic losses is not recorded (its factors are every layer's)"
        elif self.layer_names is not None:
            network_reason = "not every layer is recorded"
        elif total_parameters > self.max_network_parameters:
            network_reason = (
                f"{total_parameters} parameters > max_network_parameters={self.max_network_parameters} "
                "(the network Gram is parameters²)"
            )
        else:
            network_route = "gram"
            per_checkpoint += total_parameters**2 * 8
        if quadratic:
            per_round += 64  # the rounds stream
        streamed = [plan.name for plan in plans if plan.layer_route == "stream" or plan.neuron_route == "chain"]
        chain_stream = chain[min(chain.index(name) for name in streamed):] if streamed else ()
        for index, plan in enumerate(plans):
            if plan.name not in chain_stream[:-1]:
                continue
            # Its factors are in the chain stream already: summing its Grams here would only cost time.
            changes = {}
            if plan.layer_route == "gram":
                changes["layer_route"] = "stream"
            if plan.neuron_route == "gram":
                changes["neuron_route"] = "chain"
            if changes:
                plans[index] = dataclasses.replace(plan, reasons=plan.reasons + (
                    "Grams rebuilt post hoc from the chain factors streamed for a lower layer",), **changes)
        for plan in plans:
            if plan.name not in costs:
                continue
            neuron_bytes, layer_bytes, stream_bytes = costs[plan.name]
            per_checkpoint += neuron_bytes * (plan.neuron_route == "gram") + layer_bytes * (plan.layer_route == "gram")
            per_round += stream_bytes * (plan.neuron_route == "stream")
        if chain_stream:
            hidden = [model.get_layer(name) for name in chain_stream[:-1]]
            units = sum(_layer_sizes(layer)[1] for layer in hidden)
            mask_bytes = item if _has_dropout(model) else 1
            per_example = units * (item + mask_bytes) + _layer_sizes(hidden[-1])[1] * item + 32  # z, s, q, scalars
            per_round += batch_size * per_example + 8 * sum(
                int(np.prod(layer.kernel.shape)) for layer in hidden[1:]) + 8 * _layer_sizes(hidden[-1])[1] ** 2
            # The table of distinct inputs: one row per example, except that the model's own inputs
            # (the first layer's) repeat every epoch, so at most an epoch's worth of rows.
            table_rows = rounds * batch_size
            epoch_steps = (self.params or {}).get("steps")
            if chain_stream[0] == weighted[0].name and epoch_steps:
                table_rows = min(table_rows, epoch_steps * batch_size)
            per_round += table_rows * _layer_sizes(hidden[0])[0] * item / rounds
        plan = recording.RecordingPlan(
            quadratic=quadratic,
            at_logits=resolved.at_logits,
            layers=tuple(plans),
            network_route=network_route,
            dense_chain=chain if output_identity and self.jtj_route == "propagate" else (),
            output_identity=output_identity,
            identity_layer=chain[-1] if output_identity else None,
            record_gradients=self.record_gradients,
            chain_stream=chain_stream,
            examples_per_round=self.examples_per_round,
        )
        return plan, resolved, num_outputs, per_round, per_checkpoint, network_reason

    def _expected_rounds(self) -> int:
        total = self.total_steps
        if total is None and self.params:
            steps, epochs = self.params.get("steps"), self.params.get("epochs")
            if steps and epochs:
                total = steps * epochs
        if total is None:
            return 1
        schedule = self._schedule()
        return sum(1 for step in range(total) if schedule(step))

    def _schedule(self) -> schedules.Schedule:
        return self._resolved_schedule

    # ------------------------------------------------------------------- set-up

    def attach(self, model, batch_size: int | None = None, total_steps: int | None = None) -> None:
        """Set-up for a custom training loop (what `on_train_begin` does under `fit`)."""
        self.set_model(model)
        if total_steps is not None:
            self.total_steps = total_steps
        self._begin(batch_size or self.batch_size or 32)

    def on_train_begin(self, logs=None):
        self._begin(self.batch_size or 32)
        self._install_train_step()

    def _begin(self, batch_size: int) -> None:
        model = self.model
        network.check_full_precision(model)
        self.plan, self.resolved, self.num_outputs, per_round, per_checkpoint, network_reason = self._build_plan(
            model, batch_size
        )
        rounds = self._expected_rounds()
        checkpoints = sum(1 for step in range(rounds) if self.checkpoints(step)) + 1
        estimate = per_round * rounds + per_checkpoint * checkpoints
        routes = {
            plan.name: {
                "neuron": plan.neuron_route, "layer": plan.layer_route, "neurons": list(plan.neurons),
                "reasons": list(plan.reasons), "jacobian_is_identity": plan.name == self.plan.identity_layer,
                **_layer_geometry(model.get_layer(plan.name)),
            }
            for plan in self.plan.layers
        }
        if self.verbose:
            print(f"TaylorRecorder: {rounds} rounds expected; estimated disk use {_human_bytes(estimate)} "
                  f"(budget {_human_bytes(self.storage_budget_bytes)}) in {self.logdir}")
            for name, route in routes.items():
                print(f"  {name}: neuron scale {route['neuron']} ({len(route['neurons'])} neurons), "
                      f"layer scale {route['layer']}" + "".join(f"; {r}" for r in route["reasons"]))
            print(f"  network scale: {self.plan.network_route}" + (f" ({network_reason})" if network_reason else ""))
        if estimate > self.storage_budget_bytes:
            raise ValueError(
                f"TaylorRecorder would write about {_human_bytes(estimate)} to {self.logdir}, more than "
                f"storage_budget_bytes={self.storage_budget_bytes} ({_human_bytes(self.storage_budget_bytes)}). "
                "Record fewer layers or neurons, use a sparser schedule or dtype='float16', or raise the budget."
            )
        manifest = {
            "kind": "taylor",
            "model": {"name": model.name, "config": model.get_config()},
            "loss": {"name": self.resolved.convex_loss.name, "reduction": self.resolved.convex_loss.reduction,
                     "at_logits": self.resolved.at_logits, "num_outputs": self.num_outputs,
                     "quadratic": self.plan.quadratic, **self.resolved.convex_loss.config()},
            "optimizer": _optimizer_description(model),
            "schedule": self._schedule().to_config(),
            "checkpoints": self.checkpoints.to_config(),
            "layers": routes,
            "layer_order": [plan.name for plan in self.plan.layers],  # "layers" is stored with sorted keys
            "chain": {"layers": list(self.plan.chain_stream),
                      "use_bias": {name: model.get_layer(name).bias is not None for name in self.plan.chain_stream}},
            "network": {"route": self.plan.network_route, "reason": network_reason,
                        "parameter_slots": [[v.path] for v in model.trainable_weights]},
            "dtype": self.dtype,
            "examples_per_round": self.examples_per_round,
            "data": self.data_description,
            "estimated_bytes": estimate,
            "versions": _versions(),
        }
        # Rows are rounds (flushed at every checkpoint) or streamed examples.
        self.writer = storage.RunWriter(self.logdir, manifest, mode=self.mode, chunk_rows=4096)
        self._step = self.writer.manifest.get("next_step", 0)
        self._rounds = 0
        self._sums = {}
        self._known_inputs = {}
        self._round_ids = {}
        self._multiplier_dtype = self.dtype if _has_dropout(model) else "uint8"
        if self.mode == "resume":
            self._restore_sums()
        self._capture = recording.ForwardCapture(model)
        self._capture.install()
        if self.tensorboard_dir is not None:
            self._summary_writer = tf.summary.create_file_writer(str(self.tensorboard_dir))

    def _restore_sums(self) -> None:
        run = storage.load_run(self.logdir)
        for name in run.streams:
            if name.startswith("inputs."):
                known = self._known_inputs.setdefault(name[len("inputs."):], {})
                for chunk in run.stream(name).chunks():
                    for input_id, row in zip(chunk["input_id"], chunk["inputs"]):
                        known[hashlib.blake2b(row.tobytes(), digest_size=16).digest()] = int(input_id)
            if not name.startswith("gram."):
                continue
            sums = run.stream(name)
            last = {key: value[-1] for key, value in sums.chunk(-1).items()} if sums.chunk_paths else None
            if last is not None:
                key = name[len("gram."):]
                self._sums[key] = statistics.QuadraticSums(
                    last["gram"], last["linear"], last["constant"], int(last["rounds"])
                )
                self._rounds = max(self._rounds, int(last["rounds"]))

    def _install_train_step(self) -> None:
        model = self.model
        if getattr(model, "steps_per_execution", 1) != 1:
            raise ValueError(
                "TaylorRecorder needs steps_per_execution=1 (it records every executed step). "
                f"Received: steps_per_execution={model.steps_per_execution}"
            )
        original_step = model.train_step
        plan, capture, keras_loss = self.plan, self._capture, self.resolved.keras_loss

        def recording_train_step(data):
            _, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            with capture.capturing():
                logs = original_step(data)
            values = recording.round_tensors(model, plan, capture, y, keras_loss)
            return {**logs, _ROUND_KEY: values}

        self._plain_function = model.train_function
        jit_compile = model.jit_compile
        model.train_step = recording_train_step
        model.jit_compile = False
        try:
            model.make_train_function(force=True)
        finally:
            del model.train_step
            model.jit_compile = jit_compile
        recording_function = model.train_function
        plain_function = self._plain_function

        def train_function(iterator):
            if self._schedule()(self._step):
                logs = dict(recording_function(iterator))
                self._consume(recording.numpy_round(logs.pop(_ROUND_KEY)))
            else:
                logs = plain_function(iterator)
            self._step += 1
            return logs

        model.train_function = train_function

    # ------------------------------------------------------------- custom loops

    @contextlib.contextmanager
    def step(self, x, y):
        """Records one step of a custom training loop if the schedule says so.

        Wrap the whole step, forward pass to optimizer update::

            with recorder.step(x, y):
                with tf.GradientTape() as tape:
                    loss = loss_fn(y, model(x, training=True))
                optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights),
                                              model.trainable_weights))
        """
        del x
        if not self._schedule()(self._step):
            yield
            self._step += 1
            return
        with self._capture.capturing():
            yield
        if self._capture.trace is None:
            raise RuntimeError("TaylorRecorder.step: the model was not called inside the block.")
        values = recording.round_tensors(self.model, self.plan, self._capture, y, self.resolved.keras_loss)
        self._consume(recording.numpy_round(values))
        self._step += 1

    def close(self) -> None:
        """Ends a custom-loop recording (what `on_train_end` does under `fit`)."""
        self._finish()

    # ------------------------------------------------------------------ writing

    def _consume(self, values: dict) -> None:
        loss = float(values["loss"])
        batch_size = int(values["batch_size"])
        finite = bool(np.isfinite(loss))
        self.writer.append("rounds", step=self._step, epoch=self._epoch, loss=loss, batch_size=batch_size,
                           finite=finite)
        if self.plan.record_gradients:
            gradients = {key.split("/")[1]: value for key, value in values.items() if key.startswith("gradient/")}
            self.writer.write_chunk("gradients", step=np.array([self._step]),
                                    **{f"w{k}": v[None] for k, v in gradients.items()})
        if self._summary_writer is not None:
            with self._summary_writer.as_default(step=self._step):
                tf.summary.scalar("taylor/round_loss", loss)
        if not finite:
            self._nonfinite.append(self._step)
            self.writer.write_manifest(nonfinite_rounds=self._nonfinite)
        if self.plan.quadratic:
            if finite:
                self._accumulate(values, batch_size)
        self._write_factors(values)
        self._rounds += 1
        if self.plan.quadratic and self.checkpoints(self._rounds - 1):
            self._checkpoint()

    def _accumulate(self, values: dict, batch_size: int) -> None:
        weight = statistics.reduction_weight(batch_size, self.num_outputs, self.resolved.convex_loss.reduction)
        residual_sq = values["residual_sq"].astype(np.float64)
        for plan in self.plan.layers:
            if plan.neuron_route == "gram":
                self._add(f"{plan.name}.neuron", tuple(
                    weight * values[f"{plan.name}/neuron_{part}"].astype(np.float64)
                    for part in ("gram", "linear", "constant")
                ))
            identity = plan.name == self.plan.identity_layer
            layer_gram = plan.layer_route == "gram" and not identity  # J = I: the sum of its neurons
            if not layer_gram and plan.neuron_route != "stream":
                continue
            inputs, z, q = (values[f"{plan.name}/{key}"].astype(np.float64) for key in ("inputs", "z", "q"))
            if plan.neuron_route == "stream":
                curvature = values[f"{plan.name}/curvature"]
                input_ids = self._input_ids(plan.name, inputs.astype(self.dtype))
                if self.writer.buffered_rows(f"stream.{plan.name}") + len(z) >= self.writer.chunk_rows:
                    self.writer.flush(f"inputs.{plan.name}")  # every id in a written chunk resolves
                self.writer.extend(
                    f"stream.{plan.name}", step=np.full(len(z), self._step), weight=np.full(len(z), weight),
                    input_id=input_ids,
                    z=z[:, plan.neurons].astype(self.dtype),
                    q=q[:, plan.neurons].astype(self.dtype),
                    curvature=curvature[:, plan.neurons].astype(self.dtype), residual_sq=residual_sq,
                )
            if layer_gram:
                jtj = self._jtj(values, plan.name)
                self._add(f"{plan.name}.layer", statistics.layer_terms(inputs, z, q, residual_sq, jtj, weight))
        if self.plan.chain_stream:
            self._stream_chain(values, batch_size, weight, residual_sq)
        if self.plan.network_route == "gram":
            names = [layer.name for layer in network.weighted_layers(self.model)]
            self._add("network", statistics.network_terms(
                [values[f"{n}/inputs"].astype(np.float64) for n in names],
                [values[f"{n}/z"].astype(np.float64) for n in names],
                [values[f"{n}/jacobian"].astype(np.float64) for n in names],
                values["residual"].astype(np.float64), weight,
            ))

    def _stream_chain(self, values: dict, batch_size: int, weight: float, residual_sq: np.ndarray) -> None:
        """Appends the round's chain factors (see `recording._chain_factors`) to streams
        "chain" (per example) and "chain.weights" (per round)."""
        chain = self.plan.chain_stream
        if self.writer.buffered_rows("chain") + batch_size >= self.writer.chunk_rows:
            # Every id and every round's weights that a written chunk refers to are on disk first.
            self.writer.flush(f"inputs.{chain[0]}")
            self.writer.flush("chain.weights")
        self.writer.append("chain.weights", step=self._step, output_gram=values["chain/output_gram"],
                           **{f"{name}/kernel": values[f"chain/{name}/kernel"] for name in chain[1:-1]})
        examples = {}
        for name in chain[:-1]:
            examples[f"{name}/z"] = values[f"chain/{name}/z"].astype(self.dtype)
            examples[f"{name}/s"] = values[f"chain/{name}/s"].astype(self._multiplier_dtype)
        self.writer.extend(
            "chain", step=np.full(batch_size, self._step), weight=np.full(batch_size, weight),
            residual_sq=residual_sq, input_id=self._input_ids(chain[0], values["chain/inputs"].astype(self.dtype)),
            q=values["chain/q"].astype(self.dtype), **examples,
        )

    def _input_ids(self, name: str, inputs: np.ndarray) -> np.ndarray:
        """Ids of the rows of x̃, writing each distinct row once to the stream "inputs.<name>".

        A layer whose input does not depend on the weights (the first layer) sees the
        same training examples every epoch: storing an id per example instead of x̃
        shrinks the stream by the input width, and lets the analysis sum each
        distinct row's weights before forming its Gram.
        """
        cached_step, cached_ids = self._round_ids.get(name, (None, None))
        if cached_step == self._step:  # the neuron and layer streams of one layer share them
            return cached_ids
        known = self._known_inputs.setdefault(name, {})
        ids = np.empty(len(inputs), np.int64)
        new_rows, new_ids = [], []
        for index, row in enumerate(inputs):
            digest = hashlib.blake2b(row.tobytes(), digest_size=16).digest()
            if digest not in known:
                known[digest] = len(known)
                new_rows.append(row)
                new_ids.append(known[digest])
            ids[index] = known[digest]
        if new_rows:
            self.writer.extend(f"inputs.{name}", input_id=np.array(new_ids), inputs=np.stack(new_rows))
        self._round_ids[name] = (self._step, ids)
        return ids

    def _jtj(self, values: dict, name: str):
        if f"{name}/jtj" in values:
            return values[f"{name}/jtj"].astype(np.float64)
        if f"{name}/jacobian" in values:
            jacobian = values[f"{name}/jacobian"].astype(np.float64)
            return np.einsum("bpk,bpl->bkl", jacobian, jacobian)
        return None  # J = I at the output layer

    def _add(self, key: str, terms) -> None:
        gram, linear, constant = terms
        if key not in self._sums:
            self._sums[key] = statistics.QuadraticSums(
                np.zeros_like(gram), np.zeros_like(linear), np.zeros_like(constant)
            )
        self._sums[key].add(gram, linear, constant)

    def _write_factors(self, values: dict) -> None:
        factored = [plan for plan in self.plan.layers if "factors" in (plan.neuron_route, plan.layer_route)]
        if not factored:
            return
        examples = slice(0, self.examples_per_round)
        arrays = {"step": np.array([self._step]), "outputs": values["outputs"][examples][None],
                  "targets": values["targets"][examples][None]}
        for plan in factored:
            for key in ("inputs", "z", "jacobian"):
                arrays[f"{plan.name}/{key}"] = values[f"{plan.name}/{key}"][examples][None].astype(self.dtype)
            for key in ("kernel", "bias"):  # W^n, not per example
                if f"{plan.name}/{key}" in values:
                    arrays[f"{plan.name}/{key}"] = values[f"{plan.name}/{key}"][None].astype(self.dtype)
        self.writer.write_chunk("factors", **arrays)

    def _checkpoint(self) -> None:
        if self._last_checkpoint == self._rounds:
            return
        self._last_checkpoint = self._rounds
        # Everything up to this round reaches the disk, distinct inputs before the ids that use them.
        for stream in sorted(self.writer.buffered_streams(), key=lambda name: not name.startswith("inputs.")):
            self.writer.flush(stream)
        for key, sums in self._sums.items():
            self.writer.write_chunk(
                f"gram.{key}", step=np.array([self._step]), rounds=np.array([self._rounds]),
                rounds_in_sums=np.array([sums.rounds]),
                gram=sums.gram[None], linear=sums.linear[None], constant=sums.constant[None],
            )
        self.writer.write_manifest(next_step=self._step + 1, rounds_recorded=self._rounds)

    # --------------------------------------------------------------- callbacks

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_end(self, logs=None):
        if self._plain_function is not None:
            self.model.train_function = self._plain_function
            self._plain_function = None
        self._finish()

    def _finish(self) -> None:
        if self.writer is None:
            return
        self._capture.uninstall()
        if self._summary_writer is not None:
            self._summary_writer.close()
        if self.plan.quadratic and self._sums:
            self._checkpoint()
        self.writer.close(status="complete", next_step=self._step, rounds_recorded=self._rounds,
                          nonfinite_rounds=self._nonfinite)
        self.writer = None


class ActivationRecorder(keras.callbacks.Callback):
    """Records the activation configuration of every rectifier on a fixed probe set.

    Each record is the `[D, M]` boolean matrix (D probe points, M recorded units,
    layers concatenated in model order) packed to bits along M. Layers with more
    than `max_units_per_layer` units are subsampled to a fixed random set of units,
    listed in the manifest (the paper's sampling).

    Args:
        logdir: Run directory.
        probe_x: The probe inputs `[D, ...]` (e.g. a fixed fraction of the training set).
        schedule: `schedules.every_epoch()` (default) or a step schedule.
        max_units_per_layer: Units recorded per layer at most.
        seed: Seed of the unit sampling.
        mode: "new", "resume" or "overwrite".
        batch_size: Probe batch size.
        record_initial: Also record before the first step.
    """

    def __init__(self, logdir, probe_x, schedule: schedules.Schedule | None = None, max_units_per_layer: int = 10000,
                 *, seed: int = 0, mode: str = "new", batch_size: int = 1024, record_initial: bool = True):
        super().__init__()
        if max_units_per_layer < 1:
            raise ValueError(f"max_units_per_layer must be positive. Received: {max_units_per_layer}")
        self.logdir = logdir
        self.probe_x = np.asarray(probe_x)
        self.schedule = schedule or schedules.every_epoch()
        self.max_units_per_layer = max_units_per_layer
        self.seed = seed
        self.mode = mode
        self.batch_size = batch_size
        self.record_initial = record_initial
        self.writer = None
        self._step = 0
        self._epoch = 0

    def attach(self, model) -> None:
        """Set-up for a custom training loop; then call `record(step, epoch)` when you like."""
        self.set_model(model)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        model = self.model
        layers = kt_masks.rectifier_layers(model)
        if not layers:
            raise ValueError(
                f"Model '{model.name}' has no rectifier (ReLU) layer: there is no activation configuration to "
                f"record. Its layers are {[layer.name for layer in model.layers]}."
            )
        self._layers = layers
        self._probe_model = self._build_probe(model, layers)
        sample = self.probe_x[:1]
        shapes = {name: mask.shape[1:] for name, mask in self._masks(sample).items()}
        self._units = {}
        generator = np.random.default_rng(self.seed)
        for layer in layers:
            total = int(np.prod(shapes[layer.name]))
            if total > self.max_units_per_layer:
                self._units[layer.name] = np.sort(generator.choice(total, self.max_units_per_layer, replace=False))
            else:
                self._units[layer.name] = np.arange(total)
        manifest = {
            "kind": "activations",
            "model": {"name": model.name},
            "probe": {"num_points": len(self.probe_x), "shape": list(self.probe_x.shape[1:])},
            "layers": {layer.name: {"shape": list(shapes[layer.name]), "units": self._units[layer.name].tolist()}
                       for layer in layers},
            "num_units": int(sum(len(units) for units in self._units.values())),
            "layer_order": [layer.name for layer in layers],  # "layers" is stored with sorted keys
            "schedule": self.schedule.to_config(),
            "optimizer": _optimizer_description(model),
            "versions": _versions(),
        }
        self.writer = storage.RunWriter(self.logdir, manifest, mode=self.mode, chunk_rows=1)
        if self.record_initial and self.mode != "resume":
            self.record(step=-1, epoch=-1)

    @staticmethod
    def _build_probe(model, layers):
        try:
            return keras.Model(model.inputs, [layer.output for layer in layers])
        except (AttributeError, ValueError):
            return None  # subclassed models: fall back to activation_masks

    def _masks(self, x) -> dict:
        if self._probe_model is None:
            return kt_masks.activation_masks(self.model, x)
        outputs = self._probe_model([x], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return {layer.name: np.asarray(output) > 0 for layer, output in zip(self._layers, outputs)}

    def configuration(self) -> np.ndarray:
        """The current `[D, M]` boolean configuration of the recorded units."""
        parts = []
        for start in range(0, len(self.probe_x), self.batch_size):
            batch_masks = self._masks(self.probe_x[start:start + self.batch_size])
            parts.append(np.concatenate(
                [batch_masks[layer.name].reshape(len(batch_masks[layer.name]), -1)[:, self._units[layer.name]]
                 for layer in self._layers], axis=1))
        return np.concatenate(parts)

    def record(self, step: int, epoch: int) -> None:
        """Writes one configuration record."""
        packed = np.packbits(self.configuration(), axis=1)
        self.writer.append("configurations", step=step, epoch=epoch, packed=packed)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.schedule(self._step):
            self.record(self._step, self._epoch)
        self._step += 1

    def on_epoch_end(self, epoch, logs=None):
        if self.schedule.epoch_due(epoch):
            self.record(self._step - 1, epoch)

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def close(self) -> None:
        self.on_train_end()
