"""TaylorRecorder: records the per-round loss and the Taylor-optimum data of training (Keras glue).

It hooks the model's training step so that every recorded round uses exactly the
minibatch, pre-update weights W^n and dropout masks of the optimizer's own step
(`recording.capture`), plans the routes (`recording.plan`), computes each round's
tensors in the step (`recording.step`) and hands them to the host-side writer
(`recording.host`). Works from `model.fit(callbacks=[...])` and from a custom training
loop (`attach`, then `step` eagerly or `step_function` compiled and under any
`tf.distribute` strategy, then `close`). Under a multi-worker strategy only the chief
writes `logdir`; the other workers, which must run the same steps for the collectives,
write to a temporary directory that `close` removes.
"""

import contextlib
import importlib.util
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_taylor import schedules, schema, storage, walker
from keras_taylor.callbacks.run_description import optimizer_description, versions
from keras_taylor.recording.capture import ForwardCapture
from keras_taylor.recording.host import RoundWriter
from keras_taylor.recording.plan import (GIB, RecorderOptions, count_rounds, has_dropout, human_bytes,
                                         layer_geometry, plan_recording)
from keras_taylor.recording.step import numpy_round, round_tensors
from keras_taylor.schema import Scale

_ROUND_KEY = "_keras_taylor_round"


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
        layer_scale_layers: The layers recorded at layer scale (if "layer" is in
            `scales`); default every recorded layer. A convnet's convolutional layers
            are large at layer scale; their neuron scale is cheap.
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
        storage_budget_bytes: int = 4 * GIB,
        gram_budget_bytes: int = 256 * 2**20,
        max_network_parameters: int = 3000,
        max_gram_cost: float = 1.0,
        dtype: str = "float32",
        seed: int = 0,
        total_steps: int | None = None,
        record_gradients: bool = False,
        batch_size: int | None = None,
        scales=(Scale.NETWORK, Scale.LAYER, Scale.NEURON),
        jtj_route: str = "propagate",
        data_description: dict | None = None,
        tensorboard_dir=None,
        examples_per_round: int | None = None,
        layer_scale_layers=None,
        verbose: int = 1,
    ):
        super().__init__()
        self.options = RecorderOptions(
            layers=layers, neurons=neurons, schedule=schedule, checkpoints=checkpoints or schedules.log_spaced(10),
            loss=loss, convex=convex, storage_budget_bytes=storage_budget_bytes, gram_budget_bytes=gram_budget_bytes,
            max_network_parameters=max_network_parameters, max_gram_cost=max_gram_cost, dtype=dtype, seed=seed,
            record_gradients=record_gradients, scales=scales, jtj_route=jtj_route,
            examples_per_round=examples_per_round, layer_scale_layers=layer_scale_layers,
        )
        if tensorboard_dir is not None and importlib.util.find_spec("tensorboard") is None:
            raise ValueError(
                "tensorboard_dir needs TensorBoard, which is not installed: "
                "pip install 'keras_taylor[tensorboard]'."
            )
        self.logdir = logdir
        self.mode = mode
        self.total_steps = total_steps
        self.batch_size = batch_size
        self.data_description = dict(data_description or {})
        self.tensorboard_dir = tensorboard_dir
        self.verbose = verbose
        self.planned = None
        self.writer = None
        self._rounds = None
        self._summary_writer = None
        self._capture = None
        self._step = 0
        self._epoch = 0
        self._nonfinite = []
        self._plain_function = None
        self._worker_dir = None

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

    def _total_steps(self) -> int | None:
        if self.total_steps is None and self.params:
            steps, epochs = self.params.get("steps"), self.params.get("epochs")
            if steps and epochs:
                return steps * epochs
        return self.total_steps

    def _begin(self, batch_size: int) -> None:
        model = self.model
        walker.check_full_precision(model)
        # A non-chief worker of a multi-worker strategy computes every round (the replicas'
        # statistics are gathered collectively) but only the chief keeps them.
        chief = model.distribute_strategy.extended.should_checkpoint
        if not chief and self.mode == "resume":
            raise ValueError(
                "TaylorRecorder cannot resume on a non-chief worker of a multi-worker strategy: it keeps no "
                "run directory to learn the step from. Start a new run (mode='new' or 'overwrite')."
            )
        verbose = self.verbose and chief
        planned = plan_recording(model, self.options, batch_size, self._total_steps(),
                                 (self.params or {}).get("steps"))
        self.planned = plan = planned
        rounds = planned.expected_rounds
        checkpoints = count_rounds(self.options.checkpoints, rounds) + 1
        estimate = planned.bytes_per_round * rounds + planned.bytes_per_checkpoint * checkpoints
        routes = {
            layer.name: {
                "neuron": layer.neuron_route.value, "layer": layer.layer_route.value, "neurons": list(layer.neurons),
                "reasons": list(layer.reasons), "jacobian_is_identity": layer.name == plan.plan.identity_layer,
                **layer_geometry(model.get_layer(layer.name)),
            }
            for layer in plan.plan.layers
        }
        if verbose:
            print(f"TaylorRecorder: {rounds} rounds expected; estimated disk use {human_bytes(estimate)} "
                  f"(budget {human_bytes(self.options.storage_budget_bytes)}) in {self.logdir}")
            for name, route in routes.items():
                print(f"  {name}: neuron scale {route['neuron']} ({len(route['neurons'])} neurons), "
                      f"layer scale {route['layer']}" + "".join(f"; {r}" for r in route["reasons"]))
            print(f"  network scale: {plan.plan.network_route.value}"
                  + (f" ({plan.network_reason})" if plan.network_reason else ""))
        if estimate > self.options.storage_budget_bytes:
            raise ValueError(
                f"TaylorRecorder would write about {human_bytes(estimate)} to {self.logdir}, more than "
                f"storage_budget_bytes={self.options.storage_budget_bytes} "
                f"({human_bytes(self.options.storage_budget_bytes)}). "
                "Record fewer layers or neurons, use a sparser schedule or dtype='float16', or raise the budget."
            )
        convex_loss = plan.resolved_loss.convex_loss
        manifest = {
            "kind": schema.TAYLOR_KIND,
            "model": {"name": model.name, "config": model.get_config()},
            "loss": {"name": convex_loss.name, "reduction": convex_loss.reduction,
                     "at_logits": plan.resolved_loss.at_logits, "num_outputs": plan.num_outputs,
                     "quadratic": plan.plan.quadratic, **convex_loss.config()},
            "optimizer": optimizer_description(model),
            "schedule": plan.schedule.to_config(),
            "checkpoints": self.options.checkpoints.to_config(),
            "layers": routes,
            "layer_order": [layer.name for layer in plan.plan.layers],  # "layers" is stored with sorted keys
            "chain": {"layers": list(plan.plan.chain_stream),
                      "use_bias": {name: model.get_layer(name).bias is not None for name in plan.plan.chain_stream}},
            "network": {"route": plan.plan.network_route.value, "reason": plan.network_reason,
                        "parameter_slots": [[v.path] for v in model.trainable_weights]},
            "dtype": self.options.dtype,
            "examples_per_round": self.options.examples_per_round,
            "data": self.data_description,
            "estimated_bytes": estimate,
            "versions": versions(),
        }
        # Rows are rounds (flushed at every checkpoint) or streamed examples.
        logdir = self.logdir
        if not chief:
            self._worker_dir = tempfile.mkdtemp(prefix="keras_taylor_worker_")
            logdir = os.path.join(self._worker_dir, "run")
        self.writer = storage.RunWriter(logdir, manifest, mode=self.mode, chunk_rows=4096)
        self._step = self.writer.manifest.get("next_step", 0)
        self._rounds = RoundWriter(self.writer, planned, self.options.checkpoints, self.options.dtype,
                                   self.options.dtype if has_dropout(model) else "uint8",
                                   [layer.name for layer in walker.weighted_layers(model)])
        if self.mode == "resume":
            self._rounds.restore()
        self._capture = ForwardCapture(model)
        self._capture.install()
        if self.tensorboard_dir is not None:
            self._summary_writer = tf.summary.create_file_writer(str(self.tensorboard_dir))

    def _install_train_step(self) -> None:
        model = self.model
        if getattr(model, "steps_per_execution", 1) != 1:
            raise ValueError(
                "TaylorRecorder needs steps_per_execution=1 (it records every executed step). "
                f"Received: steps_per_execution={model.steps_per_execution}"
            )
        original_step = model.train_step
        plan, capture, keras_loss = self.planned.plan, self._capture, self.planned.resolved_loss.keras_loss

        def recording_train_step(data):
            _, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            with capture.capturing():
                logs = original_step(data)
            values = round_tensors(model, plan, capture, y, keras_loss)
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
            if self.planned.schedule(self._step):
                logs = dict(recording_function(iterator))
                self._consume(numpy_round(logs.pop(_ROUND_KEY)))
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
        if not self.planned.schedule(self._step):
            yield
            self._step += 1
            return
        with self._capture.capturing():
            yield
        if self._capture.trace is None:
            raise RuntimeError("TaylorRecorder.step: the model was not called inside the block.")
        values = round_tensors(self.model, self.planned.plan, self._capture, y,
                               self.planned.resolved_loss.keras_loss)
        self._consume(numpy_round(values))
        self._step += 1

    def step_function(self, replica_step, strategy: tf.distribute.Strategy | None = None):
        """A compiled step for a custom training loop, recorded when the schedule says so.

        `replica_step(x, y)` is one replica's whole step, forward pass to optimizer
        update (what `strategy.run` takes). The returned `step(x, y)` runs it on every
        replica of `strategy` in a `tf.function`, with the recording pass on the rounds
        the schedule picks, and returns `strategy.run`'s result. The recorded round is
        the global batch: per-example data is gathered across replicas (and workers) in
        replica order, the loss is the example-weighted mean of the replicas'::

            recorder.attach(model, batch_size=global_batch, total_steps=steps)
            step = recorder.step_function(replica_step, strategy)
            for epoch in range(epochs):
                recorder.on_epoch_begin(epoch)  # labels the rounds with their epoch
                for x, y in strategy.experimental_distribute_dataset(dataset):
                    step(x, y)
            recorder.close()

        Args:
            replica_step: `(x, y) -> result`, one replica's training step.
            strategy: The model's strategy; default the one it was built under.

        Returns:
            `step(x, y)`, taking what `strategy.run` takes (global tensors or
            distributed values).

        Raises:
            RuntimeError: If called before `attach`.
        """
        if self.planned is None:
            raise RuntimeError("TaylorRecorder.step_function: call attach(model, ...) first.")
        strategy = strategy or self.model.distribute_strategy
        model, plan, capture = self.model, self.planned.plan, self._capture
        keras_loss = self.planned.resolved_loss.keras_loss

        def recording_replica_step(x, y):
            with capture.capturing():
                result = replica_step(x, y)
            return result, round_tensors(model, plan, capture, y, keras_loss)

        plain = tf.function(lambda x, y: strategy.run(replica_step, args=(x, y)))
        recording = tf.function(lambda x, y: strategy.run(recording_replica_step, args=(x, y)))

        def step(x, y):
            if not self.planned.schedule(self._step):
                result = plain(x, y)
            else:
                result, values = recording(x, y)
                # Every replica holds the same gathered round; keep the first's.
                self._consume(numpy_round({key: strategy.experimental_local_results(value)[0]
                                           for key, value in values.items()}))
            self._step += 1
            return result

        return step

    def close(self) -> None:
        """Ends a custom-loop recording (what `on_train_end` does under `fit`)."""
        self._finish()

    # ------------------------------------------------------------------ writing

    def _consume(self, values: dict) -> None:
        loss, finite = self._rounds.consume(values, self._step, self._epoch)
        if self._summary_writer is not None:
            with self._summary_writer.as_default(step=self._step):
                tf.summary.scalar("taylor/round_loss", loss)
        if not finite:
            self._nonfinite.append(self._step)
            self.writer.write_manifest(nonfinite_rounds=self._nonfinite)

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
        self._rounds.finish(self._step)
        self.writer.close(status="complete", next_step=self._step, rounds_recorded=self._rounds.rounds,
                          nonfinite_rounds=self._nonfinite)
        self.writer = None
        if self._worker_dir is not None:
            shutil.rmtree(self._worker_dir, ignore_errors=True)
            self._worker_dir = None
